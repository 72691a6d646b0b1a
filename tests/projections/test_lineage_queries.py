"""Lineage queries: trees, ancestors, descendants, paths, denied spawns, now and as of a moment."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from agentlog.events import AgentStarted, Event, RootAdmitted
from agentlog.projections import audit_chain, drop_schema
from agentlog.projections.batch import PartitionState, build_batch
from agentlog.projections.checksums import table_checksums
from agentlog.projections.errors import UnknownAgentError
from agentlog.projections.lineage import Lineage
from agentlog.projections.migrate import migrate
from agentlog.projections.projector import ProjectorStats
from agentlog.projections.workload import EPOCH, ForestShape, forest
from agentlog.projections.writer import BatchWriter
from agentlog.records import Record
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import key_of, topic_of


@pytest.fixture
def events(publish: Callable[[list[Event]], None], project: Callable[..., ProjectorStats]) -> list[Event]:
    """Two trees of depth 2 (13 agents each), published and projected."""
    events = forest(ForestShape(roots=2))
    publish(events)
    project()
    return events


def test_tree_descendants_ancestors_and_path(db: psycopg.Connection[Any], events: list[Event]) -> None:
    """The structure queries agree with the spawns that were approved."""
    lineage = Lineage(db)
    tree = lineage.tree("root-0-0")
    assert len(tree.agents) == 13
    assert [a.agent_id for a in tree.children("root-0-0")] == ["root-0-0.0", "root-0-0.1", "root-0-0.2"]
    assert len(tree.denied) == 4
    assert [d.reason for d in tree.denied_under("root-0-0")] == ["DEPTH_EXCEEDED"]
    assert len(tree.handoffs) == 4
    assert [a.agent_id for a in lineage.descendants("root-0-0.1")] == [f"root-0-0.1.{i}" for i in range(3)]
    assert [a.agent_id for a in lineage.ancestors("root-0-0.1.2")] == ["root-0-0", "root-0-0.1"]
    assert [a.agent_id for a in lineage.path("root-0-0.1.2")] == ["root-0-0", "root-0-0.1", "root-0-0.1.2"]
    assert lineage.ancestors("root-0-0") == []
    assert len(lineage.denied("root-0-1")) == 4
    assert {a.root_id for a in lineage.tree("root-0-1").agents} == {"root-0-1"}


def test_agent_state_follows_lifecycle(db: psycopg.Connection[Any], events: list[Event]) -> None:
    """Statuses, budgets and token counts are projected from the lifecycle and decision events."""
    lineage = Lineage(db)
    root = lineage.agent("root-0-0")
    assert (root.status, root.tokens_used, root.config, root.depth) == ("completed", 21, "planner", 0)
    assert lineage.agent("root-0-0.0.1").status == "terminated"
    assert lineage.agent("root-0-0.0.1").tokens_returned == 5
    assert lineage.agent("root-0-0.2").status == "failed"
    child = lineage.agent("root-0-0.1")
    assert (child.parent_id, child.token_budget, child.policy_version) == ("root-0-0", 16000, 1)


def test_as_of_answers_for_past_moments(db: psycopg.Connection[Any], events: list[Event]) -> None:
    """As of a past moment only the agents created by then exist, with the status they had then."""
    lineage = Lineage(db)
    admitted = next(e for e in events if isinstance(e, RootAdmitted)).meta.occurred_at
    first_start = next(e for e in events if isinstance(e, AgentStarted)).meta.occurred_at
    with pytest.raises(UnknownAgentError) as caught:  # a registration is a claim: the tree exists once admitted
        lineage.tree("root-0-0", as_of=admitted - timedelta(microseconds=1))
    assert caught.value.as_of is not None
    alone = lineage.tree("root-0-0", as_of=admitted)
    assert [(a.agent_id, a.status) for a in alone.agents] == [("root-0-0", "admitted")]
    before_work = lineage.tree("root-0-0", as_of=first_start - timedelta(microseconds=1))
    assert len(before_work.agents) == 13
    assert {a.status for a in before_work.agents[1:]} == {"approved"}
    assert {a.tokens_used for a in before_work.agents} == {0}
    later = lineage.tree("root-0-0", as_of=EPOCH + timedelta(days=1))
    assert later.agents == lineage.tree("root-0-0").agents
    assert later.denied == lineage.tree("root-0-0").denied


def test_unknown_ids_raise_a_typed_error(db: psycopg.Connection[Any], events: list[Event]) -> None:
    """Every query names the unknown id in its error."""
    lineage = Lineage(db)
    for query in (lineage.tree, lineage.ancestors, lineage.descendants, lineage.path, lineage.denied):
        with pytest.raises(UnknownAgentError) as caught:
            query("no-such-agent")
        assert caught.value.agent_id == "no-such-agent"


def test_tables_do_not_depend_on_how_topics_interleave(
    settings: Settings, schema: str, db: psycopg.Connection[Any]
) -> None:
    """Any interleaving of the topics (each partition in order), in any batch sizes, gives identical tables."""
    events = forest(ForestShape(roots=3))
    serde = Serde()
    streams: dict[tuple[str, int], list[Record]] = {}
    for event in events:
        topic = topic_of(type(event)).name
        where = (topic, 0)
        offset = len(streams.setdefault(where, []))
        value = serde.encode(event, topic)
        streams[where].append(Record(topic, 0, offset, 1_000 + offset, key_of(event).encode(), value))
    checksums = []
    for seed in range(3):
        target = f"{schema}_i{seed}"
        migrate(settings, target)
        try:
            _write_interleaved(settings, target, streams, random.Random(seed), serde)
            db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(target)))
            checksums.append(table_checksums(db))
        finally:
            drop_schema(db, target)
    assert checksums[0]["agents"][0] == 39
    assert checksums[0] == checksums[1] == checksums[2]


def _write_interleaved(
    settings: Settings,
    schema: str,
    streams: dict[tuple[str, int], list[Record]],
    rng: random.Random,
    serde: Serde,
) -> None:
    queues = {where: list(records) for where, records in streams.items()}
    states = {where: PartitionState(0, audit_chain.GENESIS) for where in queues}
    writer = BatchWriter(settings, schema, role=None)
    try:
        while any(queues.values()):
            chunk = []
            for _ in range(rng.randint(1, 40)):
                ready = [w for w, q in queues.items() if q]
                if not ready:
                    break
                chunk.append(queues[rng.choice(ready)].pop(0))
            batch = build_batch(chunk, states, serde, "")
            writer.write(batch)
            states.update(batch.end)
    finally:
        writer.close()
