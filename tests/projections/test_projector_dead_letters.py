"""Undecodable and misplaced records: audited, chained, dead-lettered, never a crash loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from agentlog import dead_letters
from agentlog.events import Event
from agentlog.projections.audit import verify_stored_chains
from agentlog.projections.projector import ProjectorStats
from agentlog.projections.workload import ForestShape, forest
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import AGENT_LIFECYCLE, DLQ, SPAWN_REQUESTS, topic_of

from .support import produce_raw, read_topic


def failed_rows(db: psycopg.Connection[Any], columns: str, order: str) -> list[tuple[Any, ...]]:
    """``columns`` of the audit rows with an error, outside the dead-letter topic, ordered by ``order``."""
    query = f"SELECT {columns} FROM audit_log WHERE error IS NOT NULL AND topic NOT LIKE %s ORDER BY {order}"
    return db.execute(query, ("%" + DLQ.name,)).fetchall()  # type: ignore[arg-type]


def test_undecodable_and_misplaced_records_are_audited_and_dead_lettered(
    settings: Settings,
    publish: Callable[[list[Event]], None],
    project: Callable[..., ProjectorStats],
    db: psycopg.Connection[Any],
) -> None:
    """Garbage and a record on the wrong topic get an audit row with the reason and one dead letter each."""
    events = forest(ForestShape(roots=1))
    approved = next(e for e in events if type(e).__name__ == "SpawnApproved")
    misplaced = Serde().encode(approved, settings.topic_prefix + AGENT_LIFECYCLE.name)
    publish(events[:5])
    produce_raw(settings, SPAWN_REQUESTS.name, [(b"root-0-0", b"\x00garbage"), (None, b"")])
    produce_raw(settings, AGENT_LIFECYCLE.name, [(b"root-0-0", misplaced)])
    publish(events[5:])

    stats = project()

    assert stats.dead_letters == 3
    bad = failed_rows(db, "topic, record_name, error, raw_value", 'topic, "offset"')
    assert [(t.removeprefix(settings.topic_prefix), r) for t, r, _, _ in bad] == [
        (AGENT_LIFECYCLE.name, approved.avro_name),
        (SPAWN_REQUESTS.name, None),
        (SPAWN_REQUESTS.name, None),
    ]
    assert "does not belong on topic" in bad[0][2]
    assert {bytes(raw) for _, _, _, raw in bad[1:]} == {b"\x00garbage", b""}
    letters = read_topic(settings, DLQ.name)
    assert len(letters) == 3
    headers = [dict(m.headers()) for m in letters]
    assert {h[dead_letters.STAGE] for h in headers} == {b"projections.projector"}
    assert {h[dead_letters.SOURCE_TOPIC].decode().removeprefix(settings.topic_prefix) for h in headers} == {
        SPAWN_REQUESTS.name,
        AGENT_LIFECYCLE.name,
    }
    # the dead letters are audited too (as records of the dead-letter topic), and not dead-lettered again
    total = len(events) + 3 + 3
    assert db.execute("SELECT count(*) FROM audit_log").fetchone() == (total,)
    misplaced_projected = db.execute(  # the records after the misplaced one are projected as ever
        "SELECT count(*) FROM audit_log WHERE topic = %s AND error IS NULL",
        (settings.topic_prefix + AGENT_LIFECYCLE.name,),
    ).fetchone()
    assert misplaced_projected == (sum(1 for e in events if topic_of(type(e)) is AGENT_LIFECYCLE),)
    assert verify_stored_chains(db) == []
    assert project().records == 0


def test_huge_and_over_long_records_are_dead_lettered_and_projection_goes_on(
    settings: Settings,
    publish: Callable[[list[Event]], None],
    project: Callable[..., ProjectorStats],
    db: psycopg.Connection[Any],
) -> None:
    """A record of about 1 MB and one with a 250,000-character id: audited without a value, cut dead letters."""
    events = forest(ForestShape(roots=1))
    long_id = next(e for e in events if type(e).__name__ == "SpawnApproved")
    over_long = Serde().encode(long_id.model_copy(update={"child_agent_id": "x" * 250_000}), "t")
    publish(events[:5])
    produce_raw(settings, SPAWN_REQUESTS.name, [(b"root-0-0", b"\x00" + b"g" * 1_039_000)], big=True)
    produce_raw(settings, topic_of(type(long_id)).name, [(b"root-0-0", over_long)])
    publish(events[5:])

    stats = project()

    assert stats.dead_letters == 2
    bad = failed_rows(db, "error, value IS NULL, length(raw_value)", "length(raw_value)")
    assert [(null, size) for _, null, size in bad] == [(True, len(over_long)), (True, 1_039_001)]
    assert "child_agent_id is 250,000 characters" in bad[0][0]
    assert db.execute("SELECT count(*) FROM agents WHERE length(agent_id) > 256").fetchone() == (0,)
    letters = read_topic(settings, DLQ.name)
    assert len(letters) == 2
    cut = [m for m in letters if dead_letters.TRUNCATED in dict(m.headers())]
    assert len(cut) == 1 and len(cut[0].value()) == 64 * 1024
