"""`replay verify`: the audit table against Kafka, clean and tampered."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from agentlog import events as ev
from agentlog.producer import Delivery, Producer
from agentlog.replay.verify import verify
from agentlog.settings import Settings
from tests.support import agentlog_env

from .conftest import Recorded, drop_schema, project

AGENTLOG = [sys.executable, "-m", "agentlog.cli.main"]


@pytest.fixture
def copy_schema(recorded: Recorded) -> Iterator[str]:
    """The recorded run projected again into a schema of this test's own, to tamper with."""
    schema = f"tamper_{uuid.uuid4().hex[:8]}"
    project(recorded.settings, schema)
    yield schema
    drop_schema(recorded.settings, schema)


def test_verify_passes_on_an_untouched_audit_table(recorded: Recorded) -> None:
    """Every row matches Kafka: the CLI says so and exits 0."""
    result = subprocess.run(
        [*AGENTLOG, "replay", "verify", "--schema", recorded.schema, "-q"],
        env=recorded.env(),
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every audit row matches Kafka" in result.stdout


def test_verify_names_an_altered_a_deleted_and_two_swapped_rows(recorded: Recorded, copy_schema: str) -> None:
    """One altered, one deleted and two swapped audit rows are each reported at their position; exit 1."""
    topic = recorded.settings.topic_prefix + "agentlog.spawn.requests"
    with psycopg.connect(recorded.settings.database_url.get_secret_value(), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(copy_schema)))
        rows = conn.execute(
            'SELECT partition, "offset" FROM audit_log WHERE topic = %s ORDER BY partition, "offset"', (topic,)
        ).fetchall()
        assert len(rows) >= 6
        (p, altered), (_, deleted), (_, first), (_, second) = rows[1], rows[2], rows[3], rows[5]
        conn.execute(
            'UPDATE audit_log SET raw_value = raw_value || %s WHERE topic = %s AND partition = %s AND "offset" = %s',
            (b"\x00", topic, p, altered),
        )
        conn.execute('DELETE FROM audit_log WHERE topic = %s AND partition = %s AND "offset" = %s', (topic, p, deleted))
        # Swap the contents of two rows (every column but the key).
        columns = (
            "timestamp_ms, kafka_ts, key, record_name, value, raw_value, error, headers, root_id, event_id,"
            " occurred_at, prev_hash, hash"
        )
        conn.execute(
            f'WITH pair AS (SELECT "offset", {columns} FROM audit_log WHERE topic = %(topic)s AND partition = %(p)s'
            ' AND "offset" IN (%(a)s, %(b)s))'
            f' UPDATE audit_log t SET ({columns}) = (SELECT {columns} FROM pair WHERE pair."offset" <> t."offset")'
            ' WHERE t.topic = %(topic)s AND t.partition = %(p)s AND t."offset" IN (%(a)s, %(b)s)',
            {"topic": topic, "p": p, "a": first, "b": second},
        )
    report = verify(recorded.settings, copy_schema)
    found = {(d.kind, d.partition, d.offset) for d in report.differences}
    assert found == {
        ("altered", p, altered),
        ("missing", p, deleted),
        ("reordered", p, first),
        ("reordered", p, second),
    }
    by_kind = {d.kind: d for d in report.differences}
    assert by_kind["altered"].columns == ("raw_value",)
    assert f"holds the record of offset {second}" in str(next(d for d in report.differences if d.offset == first))
    result = subprocess.run(
        [*AGENTLOG, "replay", "verify", "--schema", copy_schema, "-q"],
        env=recorded.env(),
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    for kind, offset in (("altered", altered), ("missing", deleted), ("reordered", first), ("reordered", second)):
        assert f"{kind:<9} {topic}[{p}]@{offset}:" in result.stdout
    assert "4 differences between the audit log, Kafka and its checkpoints" in result.stderr


def test_verify_deep_finds_a_changed_decoded_value(recorded: Recorded, copy_schema: str) -> None:
    """With --deep, a row whose JSON value was edited (bytes intact) is reported as altered in `value`."""
    topic = recorded.settings.topic_prefix + "agentlog.policy.decisions"
    with psycopg.connect(recorded.settings.database_url.get_secret_value(), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(copy_schema)))
        row = conn.execute('SELECT partition, "offset" FROM audit_log WHERE topic = %s LIMIT 1', (topic,)).fetchone()
        assert row is not None
        conn.execute(
            "UPDATE audit_log SET value = jsonb_set(value, '{message}', '\"all fine\"')"
            ' WHERE topic = %s AND partition = %s AND "offset" = %s',
            (topic, *row),
        )
    assert verify(recorded.settings, copy_schema).clean  # the hashed bytes are intact
    deep = verify(recorded.settings, copy_schema, deep=True)
    assert [(d.kind, d.partition, d.offset, d.columns) for d in deep.differences] == [
        ("altered", row[0], row[1], ("value",))
    ]


@pytest.fixture
def lagging(settings: Settings, unique_name: str) -> Iterator[tuple[str, Delivery]]:
    """A schema that projected one record, and the record published after it (not projected yet)."""
    schema = f"lag_{unique_name}"
    meta = ev.Meta(tenant_id="t", root_id="lagging", producer="test")
    with Producer(settings) as producer:
        producer.publish(ev.TokensConsumed(meta=meta, agent_id="a", tokens=1))
    try:
        project(settings, schema)
        with Producer(settings) as producer:
            later = meta.model_copy(update={"event_id": uuid.uuid4()})
            delivery = producer.publish(ev.TokensConsumed(meta=later, agent_id="a", tokens=2))
        yield schema, delivery
    finally:
        drop_schema(settings, schema)


def test_verify_reports_records_not_projected_yet_as_lag(settings: Settings, lagging: tuple[str, Delivery]) -> None:
    """Records after the projector's position are lag, not differences."""
    report = verify(settings, lagging[0])
    assert report.clean
    assert sum(report.lag.values()) == 1


def test_lag_is_reported_with_its_age_and_max_lag_makes_old_lag_a_failure(
    settings: Settings, lagging: tuple[str, Delivery]
) -> None:
    """Lag names the age of its oldest record; --max-lag passes while that is younger and fails, naming the
    partition, once it is older; a bad duration is exit 2."""
    schema, delivery = lagging
    where = f"{delivery.topic}[{delivery.partition}]"
    report = verify(settings, schema)
    assert list(report.lag_since_ms) == [where]
    env = agentlog_env(settings)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*AGENTLOG, "replay", "verify", "--schema", schema, "-q", *args]
        return subprocess.run(command, env=env, check=False, capture_output=True, text=True, timeout=120)

    young = run("--max-lag", "1h")
    assert young.returncode == 0, young.stderr
    assert f"not projected yet: 1 records of {where}, the oldest appended" in young.stdout
    time.sleep(2.5)
    old = run("--max-lag", "1s")
    assert old.returncode == 1
    assert f"records older than --max-lag 1s are not projected yet: {where} (oldest" in old.stderr
    assert run("--max-lag", "soon").returncode == 2
