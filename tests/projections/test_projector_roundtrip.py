"""The projector against the real broker and database: every record into the tables once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from agentlog.events import Event
from projections.projector import ProjectorStats
from projections.workload import ForestShape, forest


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
