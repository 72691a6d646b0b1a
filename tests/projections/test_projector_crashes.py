"""Crash tests: projectors killed with SIGKILL at random moments, restarted, and compared with a clean run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from agentlog.events import Event
from agentlog.projections import drop_schema
from agentlog.projections.audit import verify_stored_chains
from agentlog.projections.checksums import table_checksums
from agentlog.projections.migrate import migrate
from agentlog.projections.projector import Projector, ProjectorOptions
from agentlog.projections.workload import ForestShape, forest
from agentlog.settings import Settings

pytestmark = pytest.mark.slow
ROOTS = 140  # 73 events per tree: 10,220 events


class Projectors:
    """Starts ``agentlog projector run`` subprocesses and kills them."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started = 0

    def start(self, group: str, instance: str | None = None, *extra: str) -> subprocess.Popen[bytes]:
        self.started += 1
        args = ["agentlog", "projector", "run", "--group", group, "--batch-size", "150", "--batch-ms", "20"]
        # These tests count and compare the workload's rows; checkpoints have tests of their own (tests/replay).
        args += ["--session-timeout-ms", "6000", "--verbose", "--checkpoint-every", "off", *extra]
        if instance is not None:
            args += ["--instance-id", instance]
        with (self.logs / f"projector-{self.started}.log").open("wb") as log:
            return subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL, as the OOM killer or a lost node would."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)


def count(db: psycopg.Connection[Any]) -> int:
    """Audit rows so far."""
    row = db.execute("SELECT count(*) FROM audit_log").fetchone()
    return int(row[0]) if row else 0


def wait_for(db: psycopg.Connection[Any], total: int, timeout: float = 120.0) -> None:
    """Wait until ``total`` audit rows are there."""
    deadline = time.monotonic() + timeout
    while count(db) < total and time.monotonic() < deadline:
        time.sleep(0.2)


def assert_exactly_once_and_clean(
    settings: Settings, schema: str, unique_name: str, db: psycopg.Connection[Any], total: int
) -> None:
    """Every event once, chains intact, tables equal to those of an uninterrupted projector."""
    row = db.execute('SELECT count(*), count(DISTINCT (topic, partition, "offset")) FROM audit_log').fetchone()
    assert row == (total, total)
    assert verify_stored_chains(db) == []
    survived = table_checksums(db)
    reference = schema + "_ref"
    migrate(settings, reference)
    try:
        Projector(settings, ProjectorOptions(schema=reference, group_id=f"ref-{unique_name}", idle_exit_s=2.0)).run()
        db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(reference)))
        assert table_checksums(db) == survived
    finally:
        drop_schema(db, reference)


@pytest.fixture
def projectors(cli_env: dict[str, str], schema: str, tmp_path: Path) -> Projectors:
    """Projector subprocesses writing into the test's schema."""
    return Projectors({**cli_env, "AGENTLOG_DB_SCHEMA": schema}, tmp_path)


def test_sigkill_at_random_moments_projects_every_event_once(
    settings: Settings,
    schema: str,
    unique_name: str,
    projectors: Projectors,
    publish: Callable[[list[Event]], None],
    db: psycopg.Connection[Any],
) -> None:
    """20+ SIGKILLs of one projector over 10,000+ events (some published while it runs): exactly once."""
    rng = random.Random(20)
    events = forest(ForestShape(roots=ROOTS))
    chunks = [events[i : i + len(events) // 5] for i in range(0, len(events), len(events) // 5)]
    publish(chunks[0])
    kills, seen = 0, []
    while kills < 20:
        process = projectors.start(f"single-{unique_name}-{kills}")  # positions are in PostgreSQL, not the group
        time.sleep(rng.uniform(1.0, 2.5))
        kill(process)
        kills += 1
        seen.append(count(db))
        if kills % 5 == 0 and chunks[kills // 5 :]:
            publish(chunks[kills // 5])
    for chunk in chunks[5:]:
        publish(chunk)
    final = projectors.start(f"single-{unique_name}-final", None, "--until-idle", "3")
    assert final.wait(180) == 0
    assert any(0 < n < len(events) for n in seen), "no kill landed while records were being projected"
    assert_exactly_once_and_clean(settings, schema, unique_name, db, len(events))


def test_two_projectors_killed_and_rebalanced_project_every_event_once(
    settings: Settings,
    schema: str,
    unique_name: str,
    projectors: Projectors,
    publish: Callable[[list[Event]], None],
    db: psycopg.Connection[Any],
) -> None:
    """Two projectors in one group, killed in turn, one kept down past its session (a rebalance): exactly once."""
    rng = random.Random(2)
    group = f"pair-{unique_name}"
    events = forest(ForestShape(roots=ROOTS))
    half = len(events) // 2
    publish(events[:half])
    running = {"a": projectors.start(group, "a")}
    time.sleep(1.5)
    running["b"] = projectors.start(group, "b")  # joining: a rebalance while "a" projects
    kills, seen = 0, []
    while kills < 12:
        time.sleep(rng.uniform(0.8, 2.0))
        victim = "ab"[kills % 2]
        kill(running[victim])
        kills += 1
        seen.append(count(db))
        if kills == 6:
            publish(events[half:])
            time.sleep(7)  # past the session timeout: the group rebalances "b"'s partitions to "a"
        running[victim] = projectors.start(group, victim)
    wait_for(db, len(events))
    for process in running.values():
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) in (0, -signal.SIGTERM)  # -SIGTERM: stopped while still starting up
    assert any(0 < n < len(events) for n in seen), "no kill landed while records were being projected"
    assert_exactly_once_and_clean(settings, schema, unique_name, db, len(events))
