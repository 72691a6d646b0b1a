"""The secure stack: who is refused, who may write what, and the main paths under least privilege."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from agentlog import events as ev
from agentlog.client import AgentlogClient
from agentlog.errors import DeliveryError
from agentlog.kafka_check import KafkaUnreachableError, ensure_reachable
from agentlog.keyring_admin import publish_key
from agentlog.processors.policy import load_default_policy, requiring_signatures, to_event
from agentlog.producer import Producer
from agentlog.projections import drop_schema
from agentlog.projections.migrate import migrate
from agentlog.projections.projector import Projector, ProjectorOptions
from agentlog.replay.runs import decisions_report
from agentlog.replay.topic_reader import read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.signing import SigningKey
from agentlog.topics import AGENT_LIFECYCLE, MESSAGE_EVENTS, POLICY_DECISIONS
from tests.processors.gate_harness import Worker
from tests.support import agentlog_env

from .support import Deployment, SecureStack

pytestmark = pytest.mark.secure


def _agentlog(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**agentlog_env(settings), "AGENTLOG_CONNECT_TIMEOUT_S": "15"}
    return subprocess.run(
        ["agentlog", *args], check=False, env=env, capture_output=True, text=True, timeout=120, input=stdin
    )


def _meta(root: str, tenant: str = "acme") -> ev.Meta:
    return ev.Meta(root_id=root, tenant_id=tenant, producer="tests")


def _root(root: str, tenant: str = "acme") -> ev.RootAgentRegistered:
    return ev.RootAgentRegistered(
        meta=_meta(root, tenant), agent_id=root, config="orchestrator", token_budget=1000, spawn_budget=1
    )


@pytest.mark.timeout(120)
def test_clients_without_tls_or_the_right_password_are_refused(secure_stack: SecureStack) -> None:
    admin = secure_stack.settings("admin")
    plaintext = admin.model_copy(update={"security_protocol": "PLAINTEXT", "connect_timeout_s": 5.0})
    with pytest.raises(KafkaUnreachableError):
        ensure_reachable(plaintext)
    no_ca = admin.model_copy(update={"ssl_ca_location": None, "connect_timeout_s": 5.0})
    with pytest.raises(KafkaUnreachableError, match=r"certificate verify failed|SSL handshake failed"):
        ensure_reachable(no_ca)  # the stack's CA is not in the system's trust store

    wrong = admin.model_copy(update={"sasl_password": SecretStr("not-the-password-of-admin")})
    refused = _agentlog(wrong, "access", "users")
    assert refused.returncode == 1 and "Authentication failed" in refused.stderr, refused.stderr
    assert "not-the-password-of-admin" not in refused.stdout + refused.stderr
    assert admin.sasl_password is not None
    assert admin.sasl_password.get_secret_value() not in repr(admin) + str(admin)

    unsigned_url = admin.database_url.get_secret_value().split("?")[0] + "?sslmode=disable"
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(unsigned_url, connect_timeout=10).close()
    with psycopg.connect(admin.database_url.get_secret_value(), connect_timeout=10) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)


@pytest.mark.timeout(180)
def test_each_principal_writes_only_what_its_role_allows(deployment: Deployment, tmp_path: Path) -> None:
    tenant = deployment.as_user("tenant-acme")
    forged = ev.SpawnDenied(
        meta=_meta("root-forged"),
        request_id=uuid.uuid4(),
        parent_agent_id="root-forged",
        child_config="researcher",
        reason=ev.DenialReason.DEPTH_EXCEEDED,
        policy_version=1,
        message="forged",
    )
    with (
        Producer(tenant) as producer,
        pytest.raises(
            DeliveryError, match=r"Topic authorization failed: User:tenant-acme may not write to .*decisions"
        ),
    ):
        producer.publish(forged)  # a decision: only the gate writes them

    payload = forged.model_dump_json(exclude={"meta": {"event_id", "occurred_at"}})
    by_cli = _agentlog(tenant, "publish", "SpawnDenied", "--json", payload)
    assert by_cli.returncode == 1, by_cli.stderr
    assert f"User:tenant-acme may not write to {deployment.prefix}agentlog.policy.decisions" in by_cli.stderr
    assert "nothing was published" in by_cli.stderr

    published = _agentlog(tenant, "policy", "publish", "--published-by", "tenant-acme")
    assert published.returncode == 1 and "authoriz" in published.stderr.lower(), published.stderr
    key_file = tmp_path / "mine.pem"
    keyed = _agentlog(tenant, "keys", "create", "--out", str(key_file), "--principal", "me", "--tenant", "acme")
    assert keyed.returncode == 1 and "authoriz" in keyed.stderr.lower(), keyed.stderr
    assert not key_file.exists()  # nothing half-done: no private key whose public half is not on the keyring

    root = _root("root-globex", "globex")
    with (
        Producer(deployment.as_user("tenant-globex")) as producer,
        pytest.raises(DeliveryError, match="authorization failed"),
    ):
        producer.publish(root)  # a user without a role writes nothing
    with Producer(deployment.as_user("gate")) as producer, pytest.raises(DeliveryError, match="authorization failed"):
        producer.publish(to_event(load_default_policy(), published_by="gate"))  # only the admin publishes policy

    listed = _agentlog(deployment.as_user("admin"), "access", "list", "--user", "tenant-acme")
    assert listed.returncode == 0, listed.stderr
    assert f"WRITE            topic            name   {deployment.prefix}agentlog.spawn.requests" in listed.stdout
    assert f"{deployment.prefix}agentlog.policy.decisions" in listed.stdout
    assert f"WRITE            topic            name   {deployment.prefix}agentlog.policy.decisions" not in listed.stdout


@pytest.mark.timeout(300)
def test_publish_gate_projector_and_replay_pass_as_their_own_users(deployment: Deployment, tmp_path: Path) -> None:
    admin = deployment.as_user("admin")
    policy = load_default_policy()
    strict = requiring_signatures(policy)
    with Producer(admin) as producer:
        producer.publish(to_event(strict, published_by="admin"))
    key = SigningKey.generate()
    key.save(tmp_path / "acme.pem")
    publish_key(admin, key, principal="acme-runtime", tenant_id="acme")

    gate = Worker(deployment.as_user("gate"), "secure")
    gate.start()
    try:
        tenant = deployment.as_user("tenant-acme", signing_key=tmp_path / "acme.pem")
        # a client_id: the client keeps its positions in its group, which the tenant role may commit to
        with AgentlogClient("acme", tenant, timeout=30, retries=1, client_id="acme-runtime") as acme:
            handle = acme.start_root("orchestrator", 100_000, 10)
            root = handle.root_id
            child = handle.spawn("researcher", "find", 10_000, 1)
            child.report_usage(500)
            child.complete("done", tokens_used=500)
            assert child.result(60).status.value == "completed"
            acme.release(child)
        with AgentlogClient("acme", tenant, timeout=30, retries=1, client_id="acme-runtime") as again:
            assert again.kept_position(root) == handle.next_offset  # the root handle held its position
            assert again.attach(root, root).next_offset == handle.next_offset
        with AgentlogClient("acme", deployment.as_user("tenant-acme"), timeout=30, retries=1) as unsigned:
            denied = unsigned.spawn(root, root, "researcher", "unsigned", 1_000, 1)
            assert isinstance(denied, ev.SpawnDenied) and denied.reason is ev.DenialReason.UNSIGNED, denied
    finally:
        gate.stop()

    projector = deployment.as_user("projector")
    schema = f"s_{deployment.prefix.strip('.').lower()}"[:63]
    migrate(projector, schema)
    try:
        options = ProjectorOptions(
            schema=schema, group_id=f"{deployment.prefix}agentlog-projector-{schema}", idle_exit_s=2.0
        )
        Projector(projector, options).run()
        auditor = deployment.as_user("auditor")
        verified = _agentlog(auditor, "replay", "verify", "--signatures", "--quiet", "--schema", schema)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "acme-runtime, tenant acme): " in verified.stdout
        report = decisions_report(auditor)
        assert report.clean and report.reproduced >= 3, [o.as_json() for o in report.outcomes]
    finally:
        with psycopg.connect(admin.database_url.get_secret_value(), autocommit=True) as conn:
            drop_schema(conn, schema)


@pytest.mark.timeout(120)
def test_access_cli_adds_a_user_who_can_do_nothing_until_granted(deployment: Deployment, tmp_path: Path) -> None:
    admin = deployment.as_user("admin")
    name = f"tenant-{deployment.prefix.strip('.')[-8:]}"
    password_file = tmp_path / "password"
    added = _agentlog(admin, "access", "user-add", name, "--password-file", str(password_file))
    assert added.returncode == 0, added.stderr
    password = password_file.read_text().strip()
    assert password not in added.stdout + added.stderr and oct(password_file.stat().st_mode & 0o777) == "0o600"
    try:
        newcomer = deployment.as_user("tenant-acme").model_copy(
            update={"sasl_username": name, "sasl_password": SecretStr(password)}
        )
        root = _root("root-new")
        with Producer(newcomer) as producer, pytest.raises(DeliveryError, match="authorization failed"):
            producer.publish(root)
        granted = _agentlog(admin, "access", "grant", "tenant", name)
        assert granted.returncode == 0, granted.stderr
        with Producer(newcomer) as producer:
            producer.publish(root)
        revoked = _agentlog(admin, "access", "revoke", "tenant", name)
        assert revoked.returncode == 0 and "ACLs deleted" in revoked.stdout, revoked.stderr
        short = _agentlog(admin, "access", "user-add", "someone", stdin="short\n")
        assert short.returncode == 2 and "at least 16" in short.stderr
    finally:
        removed = _agentlog(admin, "access", "user-remove", name)
        assert removed.returncode == 0, removed.stderr


@pytest.mark.timeout(120)
def test_bootstrap_creates_topics_grants_roles_and_publishes_a_policy_that_requires_signatures(
    deployment: Deployment,
) -> None:
    admin = deployment.as_user("admin")
    first = _agentlog(admin, "access", "bootstrap")
    assert first.returncode == 0, first.stderr
    assert "granted    tenant to tenant-globex" in first.stdout and "granted    gate to gate" in first.stdout
    assert "published  policy default version 1 with limits.require_signatures: true" in first.stdout
    shown = _agentlog(deployment.as_user("auditor"), "policy", "show")
    assert shown.returncode == 0 and "require_signatures: true" in shown.stdout, shown.stderr
    again = _agentlog(admin, "access", "bootstrap")
    assert again.returncode == 0 and "policy     default version 1 is in force; left as it is" in again.stdout
    tenant = _agentlog(deployment.as_user("tenant-acme"), "access", "bootstrap")
    assert tenant.returncode == 1 and "may not" in tenant.stderr, tenant.stderr


def test_the_mission_processor_runs_as_its_own_user(deployment: Deployment) -> None:
    """The missions user answers a tenant's commands (and writes nothing else); the auditor replays its facts."""
    admin = deployment.as_user("admin")
    with Producer(admin) as producer:
        producer.publish(to_event(load_default_policy(), published_by="admin"))
    gate = Worker(deployment.as_user("gate"), "secure")
    missions = Worker(deployment.as_user("missions"), "secure-missions", args=("--processor", "missions"))
    gate.start()
    missions.start()
    try:
        with AgentlogClient("acme", deployment.as_user("tenant-acme"), timeout=60, retries=1) as acme:
            root = acme.start_root("orchestrator", 100_000, 10)
            created = acme.missions.create(root.root_id, "collect", "collect sources")
            assert isinstance(created, ev.MissionTransitioned) and created.to_state is ev.MissionState.READY, created
            started = acme.missions.start(root.root_id, "collect", requested_by=root.agent_id)
            assert isinstance(started, ev.MissionTransitioned) and started.agent_id == root.agent_id, started
        with Producer(deployment.as_user("missions")) as producer, pytest.raises(DeliveryError, match="authorization"):
            producer.publish(
                to_event(load_default_policy(), published_by="missions")
            )  # only the admin publishes policy
    finally:
        missions.stop()
        gate.stop()
    report = decisions_report(deployment.as_user("auditor"), processor="missions")
    assert report.clean and report.reproduced == report.recorded >= 2, [o.as_json() for o in report.outcomes]


def _facts_of(settings: Settings, base: str, causes: set[uuid.UUID], timeout_s: float = 90) -> list[ev.Event]:
    """The records of topic ``base`` caused by ``causes``, once each cause has one."""
    serde = Serde()
    deadline = time.monotonic() + timeout_s
    while True:
        records = read_topic(settings, settings.topic_prefix + base)
        facts = [e for r in records if (e := serde.decode(r.value or b"")).meta.causation_id in causes]
        if {f.meta.causation_id for f in facts} >= causes or time.monotonic() > deadline:
            return facts
        time.sleep(0.5)


def test_the_bus_runs_as_its_own_user_and_hands_a_freeze_to_the_gate(deployment: Deployment) -> None:
    """The bus user answers a tenant's messages and writes a CRITICAL alert's freeze onto the gate's lifecycle topic,
    which the gate decides; it may not publish policy; the auditor replays the bus's facts and hand-overs."""
    admin = deployment.as_user("admin")
    policy = load_default_policy()
    policy = policy.model_copy(update={"limits": policy.limits.model_copy(update={"freeze_on_critical_alert": True})})
    with Producer(admin) as producer:
        producer.publish(to_event(policy, published_by="admin"))
    gate = Worker(deployment.as_user("gate"), "secure")
    bus = Worker(deployment.as_user("bus"), "secure-bus", args=("--processor", "bus"))
    gate.start()
    bus.start()
    try:
        with AgentlogClient("acme", deployment.as_user("tenant-acme"), timeout=60, retries=1) as acme:
            root = acme.start_root("orchestrator", 100_000, 10)
        meta = _meta(root.root_id)
        alert = ev.AgentAlert(meta=meta, from_agent_id=root.agent_id, text="leak", priority=ev.Priority.CRITICAL)
        with Producer(deployment.as_user("tenant-acme")) as producer:
            producer.publish(alert)
        auditor = deployment.as_user("auditor")
        (accepted,) = _facts_of(auditor, MESSAGE_EVENTS.name, {alert.meta.event_id})
        assert isinstance(accepted, ev.MessageAccepted) and accepted.broadcast
        (freeze,) = _facts_of(auditor, AGENT_LIFECYCLE.name, {alert.meta.event_id})
        assert isinstance(freeze, ev.TreeFreezeRequested) and freeze.meta.producer == "agentlog.bus"
        (frozen,) = _facts_of(auditor, POLICY_DECISIONS.name, {freeze.meta.event_id})
        assert isinstance(frozen, ev.TreeFrozen) and frozen.alert_id == alert.message_id
        with Producer(deployment.as_user("bus")) as producer, pytest.raises(DeliveryError, match="authorization"):
            producer.publish(to_event(policy, published_by="bus"))  # only the admin publishes policy
    finally:
        bus.stop()
        gate.stop()
    report = decisions_report(deployment.as_user("auditor"), processor="bus")
    assert report.clean and report.reproduced == report.recorded >= 2, [o.as_json() for o in report.outcomes]
