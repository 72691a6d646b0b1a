"""Signed input end to end: the SDK signs, a running gate verifies against the keyring, replay agrees."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from agentlog import events as ev
from agentlog.client import AgentlogClient
from agentlog.keyring import KEYRING_HEADER
from agentlog.keyring_admin import publish_key, read_keyring, revoke_key
from agentlog.processors.policy import load_default_policy, requiring_signatures
from agentlog.producer import Producer
from agentlog.projections import drop_schema
from agentlog.projections.migrate import migrate
from agentlog.projections.projector import Projector, ProjectorOptions
from agentlog.replay import read_topic
from agentlog.replay.runs import decisions_report
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.signing import SIGNATURE_HEADER, SigningKey, sign_batch
from agentlog.topics import POLICY_DECISIONS, SPAWN_REQUESTS
from tests.support import agentlog_env

from .gate_harness import Worker, running_gate

_R = ev.DenialReason


def _key(settings: Settings, path: Path, principal: str, tenant: str | None, agent: str | None = None) -> Settings:
    """A key on the keyring, and settings that sign with it."""
    key = SigningKey.generate()
    key.save(path)
    publish_key(settings, key, principal=principal, tenant_id=tenant, agent_id=agent)
    return settings.model_copy(update={"signing_key": path})


@pytest.fixture
def strict_gate(settings: Settings) -> Iterator[Worker]:
    """A running gate whose policy requires signatures."""
    with running_gate(settings, "signed", requiring_signatures(load_default_policy())) as worker:
        yield worker


@pytest.mark.timeout(240)
def test_signed_requests_pass_unsigned_and_revoked_do_not_and_replay_agrees(
    settings: Settings, strict_gate: Worker, tmp_path: Path
) -> None:
    signed = _key(settings, tmp_path / "acme.pem", "acme-runtime", "acme")
    with AgentlogClient("acme", signed, timeout=60) as acme, AgentlogClient("acme", settings, timeout=60) as bare:
        root = acme.new_root_id()
        assert isinstance(acme.register_root(root, "orchestrator", 100_000, 10), ev.RootAdmitted)
        child = acme.spawn(root, root, "researcher", "find", 10_000, 1)
        assert isinstance(child, ev.SpawnApproved), child
        unsigned = bare.spawn(root, root, "researcher", "find", 10_000, 1)
        assert isinstance(unsigned, ev.SpawnDenied) and unsigned.reason is _R.UNSIGNED, unsigned
        assert "requires signatures" in unsigned.message

        # A key published while the gate runs is found for the first record signed with it.
        child_key = _key(settings, tmp_path / "child.pem", "child-runtime", "acme", child.child_agent_id)
        with AgentlogClient("acme", child_key, timeout=60) as child_runtime:
            grandchild = child_runtime.spawn(root, child.child_agent_id, "researcher", "deeper", 1_000)
            assert isinstance(grandchild, ev.SpawnApproved), grandchild
            as_root = child_runtime.spawn(root, root, "researcher", "not mine", 1_000)
            assert isinstance(as_root, ev.SpawnDenied) and as_root.reason is _R.SIGNER_NOT_AUTHORIZED

        acme_key = SigningKey.load(tmp_path / "acme.pem")
        forged = _forged(acme, root, child.child_agent_id, acme_key)  # the gate refuses it: BAD_SIGNATURE
        key_id = SigningKey.load(tmp_path / "acme.pem").key_id
        revoke_key(settings, key_id, reason="rotated")
        assert read_keyring(settings).keys[key_id].revoked
        deadline = time.monotonic() + 60
        while True:  # the gate applies a revocation from the batch after it reads it
            answer = acme.spawn(root, root, "researcher", "after revocation", 100)
            if isinstance(answer, ev.SpawnDenied) and answer.reason is _R.KEY_REVOKED:
                break
            assert time.monotonic() < deadline, answer
    strict_gate.stop()

    requests = list(read_topic(settings, settings.topic_prefix + SPAWN_REQUESTS.name))
    assert any(dict(r.headers or []).get(SIGNATURE_HEADER) for r in requests)
    decisions = list(read_topic(settings, settings.topic_prefix + POLICY_DECISIONS.name))
    positions = {dict(r.headers or [])[KEYRING_HEADER] for r in decisions}
    assert len(positions) >= 2, positions  # decided at several keyring positions: replay must follow them
    report = decisions_report(settings)
    assert report.clean, [o.as_json() for o in report.outcomes]
    assert report.reproduced == len(decisions)
    refusals = [d for d in map(Serde().decode, (r.value or b"" for r in decisions)) if d.meta.causation_id == forged]
    assert [getattr(d, "reason", None) for d in refusals] == [_R.BAD_SIGNATURE]

    _check_the_audit(settings, root, child.child_agent_id)


def _check_the_audit(settings: Settings, root: str, child_id: str) -> None:
    """Every signed row attributed to its key, the refused forgery named, the chain covering signatures."""
    schema = f"t_{settings.topic_prefix.strip('.').lower()}"
    migrate(settings, schema)
    try:
        Projector(settings, ProjectorOptions(schema=schema, group_id=f"p-{schema}", idle_exit_s=2.0)).run()
        verified = _verify(settings, schema)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "acme-runtime, tenant acme): " in verified.stdout and "child-runtime" in verified.stdout
        assert "refused" in verified.stdout and "unsigned: " in verified.stdout
        assert "every signature too" in verified.stdout
        with AgentlogClient("acme", settings, timeout=5) as late:
            _forged(late, root, child_id, SigningKey.generate())  # no gate decides it: no key can be held to it
        Projector(settings, ProjectorOptions(schema=schema, group_id=f"p-{schema}", idle_exit_s=2.0)).run()
        caught = _verify(settings, schema)
        assert caught.returncode == 1 and "invalid " in caught.stdout and "UNKNOWN_KEY" in caught.stdout
        with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("UPDATE {}.audit_log SET signature = NULL WHERE signature IS NOT NULL AND topic = %s").format(
                    sql.Identifier(schema)
                ),
                (settings.topic_prefix + SPAWN_REQUESTS.name,),
            )
        stripped = _verify(settings, schema)
        assert stripped.returncode == 1 and "differs from the Kafka record in signature" in stripped.stdout
    finally:
        with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
            drop_schema(conn, schema)


def _forged(client: AgentlogClient, root: str, agent: str, key: SigningKey) -> uuid.UUID:
    """A usage report sent with a signature by ``key`` over other bytes; returns its event id."""
    event = ev.TokensConsumed(meta=client.meta(root), agent_id=agent, tokens=1)
    (signature,) = sign_batch(key, [("elsewhere", None, b"other bytes")])
    with Producer(client.settings, signing_key=None) as producer:
        producer.send(event, headers=[(SIGNATURE_HEADER, signature.encode())])
    return event.meta.event_id


def _verify(settings: Settings, schema: str) -> subprocess.CompletedProcess[str]:
    command = ["agentlog", "replay", "verify", "--signatures", "--quiet", "--schema", schema]
    return subprocess.run(command, check=False, env=agentlog_env(settings), capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(120)
def test_keys_cli_creates_lists_and_revokes_and_refuses_bad_input(settings: Settings, tmp_path: Path) -> None:
    env = agentlog_env(settings)

    def agentlog(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["agentlog", *args], check=False, env=env, capture_output=True, text=True, timeout=90)

    out = tmp_path / "ops.pem"
    created = agentlog("keys", "create", "--out", str(out), "--principal", "ops", "--platform", "--valid-days", "30")
    assert created.returncode == 0, created.stderr
    key_id = SigningKey.load(out).key_id
    assert key_id in created.stdout and "platform" in created.stdout
    again = agentlog("keys", "create", "--out", str(out), "--principal", "ops", "--tenant", "acme")
    assert again.returncode == 2 and "cannot create" in again.stderr
    both = agentlog("keys", "create", "--out", str(tmp_path / "x.pem"), "--principal", "p", "--platform", "--tenant=a")
    assert both.returncode == 2 and not (tmp_path / "x.pem").exists()
    listed = agentlog("keys", "list")
    assert listed.returncode == 0 and key_id in listed.stdout and "active" in listed.stdout
    assert len(read_keyring(settings).keys) == 1
    unsaved = agentlog("keys", "create", "--out", str(tmp_path / "nodir" / "k.pem"), "--principal", "p", "--platform")
    assert unsaved.returncode == 2 and len(read_keyring(settings).keys) == 1  # nothing half-done
    revoked = agentlog("keys", "revoke", key_id, "--reason", "left the team")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in agentlog("keys", "list").stdout
    generated = agentlog("keys", "generate", "--out", str(tmp_path / "rt.pem"))  # offline: nothing published
    assert generated.returncode == 0, generated.stderr
    runtime_id = SigningKey.load(tmp_path / "rt.pem").key_id
    assert runtime_id not in read_keyring(settings).keys
    added = agentlog("keys", "add", str(tmp_path / "rt.pem.pub"), "--tenant", "acme", "--principal", "rt")
    assert added.returncode == 0 and runtime_id in added.stdout, added.stderr
    assert read_keyring(settings).keys[runtime_id].tenant_id == "acme"
    (tmp_path / "junk.pub").write_text("junk")
    junk = agentlog("keys", "add", str(tmp_path / "junk.pub"), "--tenant", "acme", "--principal", "rt")
    assert junk.returncode == 2 and "junk.pub" in junk.stderr
    unknown = agentlog("keys", "revoke", "ed25519:00", "--reason", "x")
    assert unknown.returncode == 1 and "not on the keyring" in unknown.stderr
