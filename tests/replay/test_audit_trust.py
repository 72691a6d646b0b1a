"""Whom the audit trusts: checkpoints the projector's key signed, and verifications only an auditor records.

With a platform key of the ``projector`` principal on the keyring, a checkpoint counts only
when that key signed it: an insider's unsigned checkpoint, or one signed with a tenant's key,
is named and ignored. ``replay verify --record`` is refused to a login that is not an auditor
role, and the table it writes is closed to every other role and to changes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from agentlog.keyring_admin import publish_key
from agentlog.producer import Producer
from agentlog.projections import connect, drop_schema
from agentlog.replay.check_export import check_export, check_export_report
from agentlog.replay.export import export, manifest_path
from agentlog.replay.selection import Selection
from agentlog.replay.verify import live_anchors, verify
from agentlog.settings import Settings
from agentlog.signing import SigningKey
from agentlog.topics import AUDIT_CHECKPOINTS, POLICY_DECISIONS
from tests.support import agentlog_env

from .tampering import busiest_partition, cut_and_rewind, forged_checkpoint, projected_schema, superuser

pytestmark = pytest.mark.timeout(240)
PASSWORD = "auditor-password-1"


@pytest.fixture
def projector_key(settings: Settings, tmp_path: Path) -> SigningKey:
    """The projector's platform key, on the keyring."""
    key = SigningKey.generate()
    key.save(tmp_path / "projector.pem")
    publish_key(settings, key, principal="projector", tenant_id=None)
    return key


@pytest.fixture
def signed_schema(settings: Settings, unique_name: str, projector_key: SigningKey, tmp_path: Path) -> Iterator[str]:
    """A schema whose projector signs its checkpoints with the projector's key."""
    projector = settings.model_copy(update={"signing_key": tmp_path / "projector.pem"})
    with projected_schema(settings, "ct_" + unique_name.lower(), projector) as name:
        yield name


def test_checkpoints_signed_by_the_projectors_key_are_the_anchors(
    settings: Settings, signed_schema: str, projector_key: SigningKey
) -> None:
    report = verify(settings, signed_schema)
    assert report.clean, [str(d) for d in report.differences]
    assert report.anchors is not None and report.anchors.signed_mode
    assert report.anchors.newest and {a.signer for a in report.anchors.newest.values()} == {projector_key.key_id}
    assert "signed by a projector key" in report.anchors.describe()


@pytest.mark.parametrize("signed_by", ["nobody", "a tenant's key"])
def test_a_checkpoint_the_projectors_key_did_not_sign_is_named_and_not_held_to(
    settings: Settings, signed_schema: str, signed_by: str, tmp_path: Path
) -> None:
    """The insider's checkpoint would make the audit expect a chain that Kafka's records do not make; it is named
    as not the projector's, and the partition is held to the projector's own checkpoint."""
    with connect(settings, signed_schema) as conn:
        anchor = next(iter(sorted(live_anchors(settings, conn, signed_schema).newest.values(), key=str)))
    key = None
    if signed_by != "nobody":
        key = SigningKey.generate()
        publish_key(settings, key, principal="acme-runtime", tenant_id="acme")
    with Producer(settings, signing_key=key) as producer:
        delivery = producer.publish(forged_checkpoint(signed_schema, anchor))
    report = verify(settings, signed_schema)
    checkpoint_topic = settings.topic_prefix + AUDIT_CHECKPOINTS.name
    (named,) = report.differences
    assert (named.kind, named.topic, named.offset) == ("checkpoint", checkpoint_topic, delivery.offset)
    assert "not signed by a projector key" in named.detail
    assert ("acme-runtime" in named.detail) == (key is not None)
    assert report.anchors is not None and report.anchors.newest[(anchor.topic, anchor.partition)] == anchor


def test_truncation_is_found_against_signed_checkpoints(settings: Settings, signed_schema: str) -> None:
    with superuser(settings, signed_schema) as db:
        topic, partition, offsets = busiest_partition(settings, db)
        cut_and_rewind(db, topic, partition, keep=len(offsets) - 2)
    found = [(d.kind, d.topic, d.partition, d.offset) for d in verify(settings, signed_schema).differences]
    assert found == [("truncated", topic, partition, offsets[-2])]


@pytest.fixture
def schema(settings: Settings, unique_name: str) -> Iterator[str]:
    with projected_schema(settings, "cr_" + unique_name.lower()) as name:
        yield name


@pytest.fixture
def logins(settings: Settings, schema: str, unique_name: str) -> Iterator[dict[str, str]]:
    """Database URLs of an auditor role and of a tenant role of the schema (dropped afterwards)."""
    names = {"auditor": f"a_{unique_name}"[:63], "tenant": f"t_{unique_name}"[:63]}
    env = {**agentlog_env(settings), "AGENTLOG_ROLE_PASSWORD": PASSWORD}
    for kind, option in (("auditor", ["--auditor"]), ("tenant", ["--tenant", "acme"])):
        created = cli(env, "db", "role", "create", names[kind], *option, "--schema", schema)
        assert created.returncode == 0, created.stderr
    owner = settings.database_url.get_secret_value()
    yield {kind: psycopg.conninfo.make_conninfo(owner, user=n, password=PASSWORD) for kind, n in names.items()}
    with psycopg.connect(owner, autocommit=True) as conn:
        drop_schema(conn, schema)  # first: the roles' grants go with it
        for name in names.values():
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentlog.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def as_login(settings: Settings, url: str) -> dict[str, str]:
    return {**agentlog_env(settings), "AGENTLOG_DATABASE_URL": url}


def recorded_rows(settings: Settings, schema: str) -> list[tuple[Any, ...]]:
    with superuser(settings, schema) as db:
        return db.execute(
            "SELECT recorded_by, clean, differences, partitions FROM audit_verifications ORDER BY id"
        ).fetchall()


def test_only_an_auditor_records_a_verification(settings: Settings, schema: str, logins: dict[str, str]) -> None:
    owner = cli(agentlog_env(settings), "replay", "verify", "--record", "-q", "--schema", schema)
    assert owner.returncode == 1
    assert "is not an auditor role" in owner.stderr and "agentlog db role create NAME --auditor" in owner.stderr
    assert recorded_rows(settings, schema) == []  # refused before it ran: nothing written

    auditor = as_login(settings, logins["auditor"])
    done = cli(auditor, "replay", "verify", "--record", "-q", "--schema", schema)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"in {schema}.audit_verifications" in done.stdout
    ((recorded_by, clean, differences, partitions),) = recorded_rows(settings, schema)
    assert recorded_by == psycopg.conninfo.conninfo_to_dict(logins["auditor"])["user"] and clean
    assert differences == {} and partitions and all(p["lag"] == 0 for p in partitions.values())

    listed = cli(auditor, "replay", "verifications", "--schema", schema)
    assert listed.returncode == 0, listed.stderr
    assert f"by {recorded_by}: clean" in listed.stdout
    shown = cli(auditor, "audit", "show", "--record", "SpawnApproved", "--limit", "3", "-o", "json", "--schema", schema)
    assert shown.returncode == 0, shown.stderr
    assert len(json.loads(shown.stdout)) == 3


def test_a_failed_verification_is_recorded_with_what_it_found(
    settings: Settings, schema: str, logins: dict[str, str]
) -> None:
    with superuser(settings, schema) as db:
        topic, partition, offsets = busiest_partition(settings, db)
        cut_and_rewind(db, topic, partition, keep=len(offsets) - 2)
    done = cli(
        as_login(settings, logins["auditor"]), "replay", "verify", "--record", "--json", "-q", "--schema", schema
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["recorded_as"] is not None
    ((_, clean, differences, partitions),) = recorded_rows(settings, schema)
    assert not clean and differences == {"truncated": 1}
    assert partitions[f"{topic}[{partition}]"]["differences"] == {"truncated": 1}


def test_no_other_role_adds_to_changes_or_deletes_the_verifications(
    settings: Settings, schema: str, logins: dict[str, str]
) -> None:
    auditor = as_login(settings, logins["auditor"])
    assert cli(auditor, "replay", "verify", "--record", "-q", "--schema", schema).returncode == 0
    insert = (
        "INSERT INTO audit_verifications (started_at, finished_at, recorded_by, topic_prefix, checked, clean,"
        " kafka_records, audit_rows, differences, partitions, findings, anchors)"
        " VALUES (now(), now(), 'x', '', '{}', true, 0, 0, '{}', '{}', '[]', '')"
    )
    owner = settings.database_url.get_secret_value()
    for url, role in ((logins["tenant"], None), (owner, "agentlog_projector"), (logins["auditor"], None)):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            if role is not None:
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            statements = [insert] if url != logins["auditor"] else []
            statements += ["UPDATE audit_verifications SET clean = false", "DELETE FROM audit_verifications"]
            for statement in statements:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    with superuser(settings, schema) as db:  # the owner may, but the trigger refuses unless disabled on purpose
        with pytest.raises(psycopg.errors.RaiseException, match="never changed or deleted"):
            db.execute("UPDATE audit_verifications SET clean = false")
        with pytest.raises(psycopg.errors.RaiseException, match="never changed or deleted"):
            db.execute("DELETE FROM audit_verifications")
        forged = db.execute(insert + " RETURNING recorded_by").fetchone()
        assert forged is not None and forged[0] != "x"  # who recorded it is the database's to say


def rewrite_manifest(path: Path, drop: dict[str, Any]) -> None:
    """Remove line ``drop`` (the last of its partition) from the export and make the manifest agree, as an insider
    who holds the file would: digest, counts, last position and the partition's chain head."""
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    kept = [line for line in lines if line != drop]
    path.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in kept))
    manifest_file = manifest_path(path)
    manifest = json.loads(manifest_file.read_text())
    manifest["records"] -= 1
    manifest["counts"][drop["record"]] -= 1
    last = kept[-1]
    manifest["last"] = {k: last[k] for k in ("topic", "partition", "offset", "timestamp_ms")}
    for summary in manifest["partitions"]:
        if (summary["topic"], summary["partition"]) == (drop["topic"], drop["partition"]):
            summary["chain_head"] = drop["prev_hash"]
    manifest["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest_file.write_text(json.dumps(manifest))


def test_an_export_is_held_to_the_signed_checkpoints_it_was_exported_under(
    settings: Settings, signed_schema: str, tmp_path: Path
) -> None:
    out = tmp_path / "all.jsonl"
    manifest = export(settings, Selection(), out)
    assert manifest.checkpoints
    checked = check_export_report(out)
    assert checked.problems == [] and checked.anchors.signed_mode and checked.compared > 0
    cli_checked = cli(agentlog_env(settings), "replay", "check-export", str(out))
    assert cli_checked.returncode == 0, cli_checked.stdout
    assert f"held to the {len(checked.anchors.newest)} checkpoints it was exported under" in cli_checked.stdout

    decisions = settings.topic_prefix + POLICY_DECISIONS.name
    lines = [json.loads(text) for text in out.read_text().splitlines()]
    anchored = {(a.topic, a.partition): a for a in checked.anchors.newest.values()}
    drop = max((ln for ln in lines if ln["topic"] == decisions), key=lambda ln: (ln["partition"], ln["offset"]))
    assert anchored[(decisions, drop["partition"])].next_offset > drop["offset"]  # the checkpoint covers it
    rewrite_manifest(out, drop)
    (problem,) = [str(p) for p in check_export(out)]
    assert problem.startswith(f"{decisions}[{drop['partition']}]: the chain below offset")
    assert "lines removed or changed since the projector signed it" in problem


def test_an_export_whose_checkpoint_the_projector_did_not_sign_is_refused(
    settings: Settings, signed_schema: str, tmp_path: Path
) -> None:
    out = tmp_path / "all.jsonl"
    export(settings, Selection(), out)
    manifest_file = manifest_path(out)
    manifest = json.loads(manifest_file.read_text())
    manifest["checkpoints"][0]["headers"] = None  # the insider's copy, unsigned
    manifest_file.write_text(json.dumps(manifest))
    problems = [str(p) for p in check_export(out)]
    assert len(problems) == 1 and problems[0].startswith("manifest checkpoint ")
    assert "not signed by a projector key: the record is not signed" in problems[0]
