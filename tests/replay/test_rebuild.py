"""`replay rebuild`: the projections rebuilt from offset 0 equal the live ones; a damaged live schema is swapped out."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
from psycopg import sql

from agentlog.replay.rebuild import rebuild
from agentlog.replay.verify import verify

from .conftest import Recorded, drop_schema, project

AGENTLOG = [sys.executable, "-m", "agentlog.cli.main"]


def test_rebuild_equals_the_live_projections(recorded: Recorded) -> None:
    """Every table rebuilt from Kafka has the live table's row count and checksum; the CLI exits 0."""
    target = f"rb_{uuid.uuid4().hex[:8]}"
    try:
        result = subprocess.run(
            [*AGENTLOG, "replay", "rebuild", "--schema", recorded.schema, "--into", target, "-q"],
            env=recorded.env(),
            check=False,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "every table of" in result.stdout
        for table in ("audit_log", "agents", "agent_events", "denied_spawns", "handoffs"):
            assert f"{table} " in result.stdout
        assert "DIFFERENT" not in result.stdout
    finally:
        drop_schema(recorded.settings, target)


def test_rebuild_finds_a_damaged_table_and_swap_replaces_it(recorded: Recorded) -> None:
    """A deleted agents row makes that table differ (exit 1); --swap promotes the rebuild, which then verifies."""
    live = f"live_{uuid.uuid4().hex[:8]}"
    project(recorded.settings, live)
    old = None
    try:
        with psycopg.connect(recorded.settings.database_url.get_secret_value(), autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(live)))
            conn.execute("DELETE FROM agents WHERE agent_id = (SELECT min(agent_id) FROM agents)")
        report = rebuild(recorded.settings, live, swap=True)
        old = report.swapped_out
        assert [t.table for t in report.tables if not t.equal] == ["agents"]
        damaged = next(t for t in report.tables if t.table == "agents")
        assert damaged.rebuilt_rows == damaged.live_rows + 1
        assert old is not None and old.startswith(f"{live}_old_")
        assert verify(recorded.settings, live).clean  # the promoted schema carries the live name
        again = rebuild(recorded.settings, live, f"rb_{uuid.uuid4().hex[:8]}")
        assert again.equal
        drop_schema(recorded.settings, again.rebuilt)
    finally:
        drop_schema(recorded.settings, live)
        if old is not None:
            drop_schema(recorded.settings, old)
