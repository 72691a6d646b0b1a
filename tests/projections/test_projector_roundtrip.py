"""The projector against the real broker and database: every record into the tables once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from agentlog.events import Event
from agentlog.projections import drop_schema
from agentlog.projections.batch import Batch
from agentlog.projections.checksums import table_checksums
from agentlog.projections.projector import Projector, ProjectorOptions, ProjectorStats
from agentlog.projections.workload import ForestShape, forest
from agentlog.projections.writer import BatchWriter
from agentlog.settings import Settings


class Crash(Exception):
    """Stands for the process dying at a chosen step."""


class CrashingWriter(BatchWriter):
    """Writes normally, then dies before or after the commit of batch number ``at``."""

    def __init__(self, settings: Settings, schema: str, at: int, after_commit: bool) -> None:
        super().__init__(settings, schema)
        self.at = at
        self.after_commit = after_commit
        self.batches = 0
        self.committed_rows = 0

    def write(self, batch: Batch) -> None:
        self.batches += 1
        if self.batches == self.at and not self.after_commit:
            batch.audit_rows.append(batch.audit_rows[-1])  # the COPY fails; the transaction rolls back
            try:
                super().write(batch)
            except Exception as e:
                raise Crash("died before COMMIT") from e
        super().write(batch)
        self.committed_rows += len(batch.audit_rows)
        if self.batches == self.at:
            raise Crash("died after COMMIT, before the projector knew")


def test_round_trip_projects_every_event_once(
    publish: Callable[[list[Event]], None], project: Callable[..., ProjectorStats], db: psycopg.Connection[Any]
) -> None:
    """Each published event becomes one audit row; agents, denials and handoffs are projected."""
    events = forest(ForestShape(roots=3))
    publish(events)
    stats = project()
    assert stats.records == len(events)
    assert db.execute("SELECT count(*) FROM audit_log").fetchone() == (len(events),)
    assert db.execute("SELECT count(*) FROM agents").fetchone() == (3 * 13,)
    assert db.execute("SELECT count(*) FROM denied_spawns").fetchone() == (3 * 4,)
    assert db.execute("SELECT count(*) FROM handoffs").fetchone() == (3 * 4,)
    root = db.execute("SELECT status, depth, path, tokens_consumed FROM agents WHERE agent_id = 'root-0-0'").fetchone()
    assert root == ("completed", 0, ["root-0-0"], 21)
    leaf = db.execute("SELECT parent_id, depth, path FROM agents WHERE agent_id = 'root-0-0.1.2'").fetchone()
    assert leaf == ("root-0-0.1", 2, ["root-0-0", "root-0-0.1", "root-0-0.1.2"])
    assert project().records == 0  # a second run starts from the stored positions


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
def test_crash_around_commit_then_restart_projects_once(
    settings: Settings,
    schema: str,
    unique_name: str,
    after_commit: bool,
    publish: Callable[[list[Event]], None],
    project: Callable[..., ProjectorStats],
    db: psycopg.Connection[Any],
) -> None:
    """A projector dying just before or just after a COMMIT is resumed by the next one without loss or repeat."""
    events = forest(ForestShape(roots=4))
    publish(events)
    options = ProjectorOptions(schema=schema, group_id=f"crash-{unique_name}", batch_size=50, idle_exit_s=2.0)
    writer = CrashingWriter(settings, schema, at=3, after_commit=after_commit)
    with pytest.raises(Crash):
        Projector(settings, options, writer=writer).run()
    written = db.execute("SELECT count(*) FROM audit_log").fetchone()
    assert written == (writer.committed_rows,)  # a batch is at most 50 rows: a short poll flushes it early
    assert writer.batches == 3
    project(batch_size=70)
    assert db.execute('SELECT count(*), count(DISTINCT (topic, partition, "offset")) FROM audit_log').fetchone() == (
        len(events),
        len(events),
    )
    expected = _uninterrupted_checksums(settings, schema, unique_name, db)
    assert table_checksums(db) == expected


def _uninterrupted_checksums(
    settings: Settings, schema: str, unique_name: str, db: psycopg.Connection[Any]
) -> dict[str, tuple[int, str]]:
    from psycopg import sql

    from agentlog.projections.migrate import migrate

    other = schema + "_ref"
    migrate(settings, other)
    try:
        Projector(settings, ProjectorOptions(schema=other, group_id=f"ref-{unique_name}", idle_exit_s=2.0)).run()
        db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(other)))
        return table_checksums(db)
    finally:
        db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        drop_schema(db, other)


def test_database_connection_lost_mid_run_loses_nothing(
    settings: Settings,
    schema: str,
    unique_name: str,
    publish: Callable[[list[Event]], None],
    db: psycopg.Connection[Any],
) -> None:
    """When PostgreSQL drops the projector's connection, it backs off, re-seeks and projects every event once."""
    options = ProjectorOptions(schema=schema, group_id=f"drop-{unique_name}", batch_size=20, idle_exit_s=3.0)
    projector = Projector(settings, options)
    thread = threading.Thread(target=projector.run)
    thread.start()
    try:
        events = forest(ForestShape(roots=6))
        publish(events[: len(events) // 2])
        kills = 0
        deadline = time.monotonic() + 60
        while kills < 3 and time.monotonic() < deadline:
            row = db.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s) t",
                (f"agentlog-projector:{schema}",),
            ).fetchone()
            kills += row[0] if row else 0
            time.sleep(0.05)
        publish(events[len(events) // 2 :])
    finally:
        thread.join(120)
    assert not thread.is_alive()
    assert kills >= 1
    assert projector.stats.retries >= 1
    count = db.execute('SELECT count(*), count(DISTINCT (topic, partition, "offset")) FROM audit_log').fetchone()
    assert count == (len(events), len(events))


def test_token_counters_saturate_instead_of_stopping_the_projector(
    publish: Callable[[list[Event]], None], project: Callable[..., ProjectorStats], db: psycopg.Connection[Any]
) -> None:
    """Charged usage that adds up past a bigint saturates the counter; the projector goes on."""
    import uuid

    from agentlog.events import Meta, TokensCharged

    events = forest(ForestShape(roots=1))
    huge = [
        TokensCharged(
            meta=Meta(event_id=uuid.uuid4(), tenant_id="t", root_id="root-0-0", producer="test"),
            agent_id="root-0-0",
            charged_agent_id="root-0-0",
            tokens=2**62,
            tokens_used=2**62,
            remaining_tokens=0,
            policy_version=1,
            message="charged",
        )
        for _ in range(3)
    ]
    publish(events)
    project()
    publish(huge[:1])
    project()
    publish(huge[1:])
    stats = project()
    assert stats.records >= 2
    assert db.execute("SELECT tokens_consumed FROM agents WHERE agent_id = 'root-0-0'").fetchone() == (2**63 - 1,)
