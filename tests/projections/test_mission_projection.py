"""Mission projections: the processor's facts and the creation commands in PostgreSQL, now and as of a moment."""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from agentlog.events import Event
from agentlog.projections import audit_chain, drop_schema
from agentlog.projections.batch import PartitionState, build_batch
from agentlog.projections.checksums import table_checksums
from agentlog.projections.errors import AmbiguousMissionError, UnknownMissionError
from agentlog.projections.migrate import migrate
from agentlog.projections.mission_render import plan_dot, plan_mermaid
from agentlog.projections.missions import Missions
from agentlog.projections.projector import ProjectorStats
from agentlog.projections.writer import BatchWriter
from agentlog.records import Record
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import key_of, topic_of
from tests.mission_scenarios import cancel_plan, decided, release_plan

RELEASE = "acme/release-1"
CANCEL = "acme/cancel-1"


def _log() -> tuple[list[Event], dict[str, Any]]:
    release, at = release_plan(RELEASE)
    cancel, more = cancel_plan(CANCEL)
    inputs = release.inputs + cancel.inputs
    return inputs + decided(release.inputs) + decided(cancel.inputs), {**at, **more}


@pytest.fixture
def moments(publish: Callable[[list[Event]], None], project: Callable[..., ProjectorStats]) -> dict[str, Any]:
    """Two trees' gate facts, mission commands and mission facts, published and projected."""
    events, at = _log()
    publish(events)
    project()
    return at


def _states(missions: list[Any]) -> dict[str, tuple[str, int]]:
    return {m.mission_id: (m.state, m.attempt) for m in missions}


def test_missions_show_the_facts_not_the_claims(db: psycopg.Connection[Any], moments: dict[str, Any]) -> None:
    """States follow the processor's facts; titles and parents come from the command each creation accepted."""
    missions = Missions(db)
    listed = missions.in_tree(RELEASE)
    assert [m.mission_id for m in listed] == ["design", "build-a", "build-b", "test", "release", "notes"]
    assert _states(listed) == {
        "design": ("COMPLETED", 1),
        "build-a": ("COMPLETED", 2),
        "build-b": ("COMPLETED", 1),
        "test": ("READY", 1),
        "release": ("PENDING", 1),
        "notes": ("READY", 1),
    }
    design = missions.find("design")
    assert design.title == "Design the API"  # the refused duplicate named another title
    assert (design.result_summary, design.quality_score, design.agent_id) == ("API v1 agreed", 0.9, "w1")
    assert design.finished_at == moments["design completed"]
    assert missions.find("notes").parent_mission_id == "release"
    assert missions.find("build-a").max_attempts == 2
    assert [m.mission_id for m in missions.ready(RELEASE)] == ["test", "notes"]
    assert [m.mission_id for m in missions.in_tree(RELEASE, states=["pending"])] == ["release"]


def test_a_missions_story(db: psycopg.Connection[Any], moments: dict[str, Any]) -> None:
    """History, both directions of its edges, each attempt's agent and the commands refused about it."""
    missions = Missions(db)
    build = missions.story("build-a", RELEASE)
    assert [(t.from_state, t.to_state, t.attempt) for t in build.history] == [
        ("UNKNOWN", "READY", 1),
        ("READY", "PENDING", 1),
        ("PENDING", "READY", 1),
        ("READY", "RUNNING", 1),
        ("RUNNING", "FAILED", 1),
        ("FAILED", "READY", 2),
        ("READY", "RUNNING", 2),
        ("RUNNING", "COMPLETED", 2),
    ]
    assert [(a.attempt, a.agent_id, a.ended_state) for a in build.attempts] == [
        (1, "w1", "FAILED"),
        (2, "w2", "COMPLETED"),
    ]
    assert [a.agent_tokens_used for a in build.attempts] == [0, 0]  # the agents are in the lineage
    assert [(d.depends_on, d.kind) for d in build.dependencies] == [("design", "HARD")]
    assert [d.mission_id for d in build.dependents] == ["test"]
    design = missions.story("design")
    assert [(r.reason_code, r.cycle) for r in design.rejections] == [
        ("DEPENDENCY_CYCLE", ["design", "release", "design"]),
        ("DUPLICATE_MISSION", []),
    ]
    assert [d.mission_id for d in design.dependents] == ["build-a", "build-b", "release"]
    assert missions.story("release").children == ["notes"]


def test_parallel_groups_and_the_graph(db: psycopg.Connection[Any], moments: dict[str, Any]) -> None:
    """Open missions in topological levels over hard edges; the DAG drawn with states and both kinds of edge."""
    missions = Missions(db)
    plan = missions.plan(RELEASE)
    assert [[m.mission_id for m in level] for level in plan.groups()] == [["notes", "test"], ["release"]]
    early = missions.plan(RELEASE, as_of=moments["design completed"] - timedelta(microseconds=1))
    assert [[m.mission_id for m in level] for level in early.groups()] == [
        ["design", "notes"],
        ["build-a", "build-b"],
        ["test"],
        ["release"],
    ]
    mermaid = plan_mermaid(plan)
    assert mermaid.startswith("flowchart LR")
    assert mermaid.count(" --> ") == 5 and mermaid.count("-. soft .->") == 1 and mermaid.count(" --- ") == 1
    assert ":::completed" in mermaid and "classDef blocked" in mermaid
    dot = plan_dot(plan)
    assert dot.count(" -> ") == 7 and "style=dashed" in dot


def test_as_of_a_past_moment_and_after_the_last(db: psycopg.Connection[Any], moments: dict[str, Any]) -> None:
    """As of a moment, each mission is what its facts up to then made it; after the last fact, it equals now."""
    missions = Missions(db)
    failed = _states(missions.in_tree(RELEASE, as_of=moments["build-a failed"]))
    assert failed["build-a"] == ("READY", 2)  # the failure and the retry are one input's facts
    assert failed["build-b"] == ("RUNNING", 1)
    assert failed["test"] == ("PENDING", 1)
    with pytest.raises(UnknownMissionError):
        missions.find("design", as_of=moments["design completed"] - timedelta(days=1))
    later = moments["end"] + timedelta(days=1)
    for root in (RELEASE, CANCEL):
        assert missions.in_tree(root, as_of=later) == missions.in_tree(root)
    for mission in ("design", "build-a", "release"):
        now, then = missions.story(mission), missions.story(mission, as_of=later)
        assert (now.history, now.attempts, now.dependencies) == (then.history, then.attempts, then.dependencies)


def test_a_cancellation_cascades_and_archiving_keeps_the_finish(
    db: psycopg.Connection[Any], moments: dict[str, Any]
) -> None:
    missions = Missions(db)
    assert _states(missions.in_tree(CANCEL)) == {"x": ("ARCHIVED", 1), "y": ("CANCELLED", 1), "z": ("CANCELLED", 1)}
    x = missions.find("x")
    assert x.finished_at == moments["cancelled"] and x.updated_at == moments["archived"]
    assert missions.plan(CANCEL).groups() == []
    with pytest.raises(UnknownMissionError) as caught:
        missions.find("x", RELEASE)
    assert "unknown mission 'x' in tree 'acme/release-1'" in str(caught.value)


def test_an_id_in_two_trees_must_be_named_with_its_tree(
    publish: Callable[[list[Event]], None], project: Callable[..., ProjectorStats], db: psycopg.Connection[Any]
) -> None:
    first, _ = cancel_plan("acme/one")
    second, _ = cancel_plan("acme/two")
    publish(decided(first.inputs) + decided(second.inputs))
    project()
    with pytest.raises(AmbiguousMissionError) as caught:
        Missions(db).find("x")
    assert caught.value.roots == ["acme/one", "acme/two"]
    assert Missions(db).find("x", "acme/two").root_id == "acme/two"


def test_mission_tables_do_not_depend_on_batching_or_interleaving(
    settings: Settings, schema: str, db: psycopg.Connection[Any]
) -> None:
    """Commands and facts on their two topics, read in any interleaving and any batch sizes: identical tables."""
    events, _ = _log()
    serde = Serde()
    streams: dict[tuple[str, int], list[Record]] = {}
    for event in events:
        topic = topic_of(type(event)).name
        offset = len(streams.setdefault((topic, 0), []))
        streams[(topic, 0)].append(
            Record(topic, 0, offset, 1_000 + offset, key_of(event).encode(), serde.encode(event, topic))
        )
    checksums = []
    for seed in range(3):
        target = f"{schema}_m{seed}"
        migrate(settings, target)
        try:
            rng = random.Random(seed)
            queues = {where: list(records) for where, records in streams.items()}
            states = {where: PartitionState(0, audit_chain.GENESIS) for where in queues}
            writer = BatchWriter(settings, target, role=None)
            try:
                while any(queues.values()):
                    chunk = [queues[rng.choice([w for w, q in queues.items() if q])].pop(0)]
                    while rng.random() < 0.9 and any(queues.values()):
                        chunk.append(queues[rng.choice([w for w, q in queues.items() if q])].pop(0))
                    batch = build_batch(chunk, states, serde, "")
                    writer.write(batch)
                    states.update(batch.end)
            finally:
                writer.close()
            db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(target)))
            checksums.append({t: c for t, c in table_checksums(db).items() if t.startswith("mission")})
        finally:
            drop_schema(db, target)
    assert checksums[0]["missions"][0] == 9
    assert checksums[0]["mission_specs"][0] == 10  # the refused duplicate is kept as the claim it was
    assert checksums[0] == checksums[1] == checksums[2]


def test_the_cli_answers_from_the_projection(cli_env: dict[str, str], schema: str, moments: dict[str, Any]) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["agentlog", "missions", *args, "--schema", schema],
            check=False,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = run("list", RELEASE, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [m["mission_id"] for m in json.loads(listed.stdout)] == [
        "design",
        "build-a",
        "build-b",
        "test",
        "release",
        "notes",
    ]
    ready = run("ready", RELEASE)
    assert ready.returncode == 0 and "test" in ready.stdout and "notes" in ready.stdout
    shown = run("show", "build-a", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert [a["agent_id"] for a in json.loads(shown.stdout)["attempts"]] == ["w1", "w2"]
    pretty = run("show", "design")
    assert pretty.returncode == 0 and "DEPENDENCY_CYCLE" in pretty.stdout and "API v1 agreed" in pretty.stdout
    groups = run("groups", RELEASE, "-o", "json")
    assert [[m["mission_id"] for m in level] for level in json.loads(groups.stdout)["groups"]] == [
        ["notes", "test"],
        ["release"],
    ]
    graph = run("graph", RELEASE, "--as-of", moments["build-a failed"].isoformat())
    assert graph.returncode == 0 and graph.stdout.startswith("flowchart LR")
    assert run("graph", RELEASE, "-o", "dot").stdout.startswith("digraph missions {")
    unknown = run("show", "no-such-mission")
    assert unknown.returncode == 2 and "unknown mission 'no-such-mission'" in unknown.stderr
    bad_state = run("list", RELEASE, "--state", "DONE")
    assert bad_state.returncode == 2 and "--state DONE: expected one of" in bad_state.stderr


def test_a_root_id_used_again_after_its_tree_was_forgotten_starts_its_missions_anew(
    publish: Callable[[list[Event]], None], project: Callable[..., ProjectorStats], db: psycopg.Connection[Any]
) -> None:
    """Another tenant's tree with a forgotten tree's root id sees nothing of the old missions of the same ids."""
    from agentlog import events as ev
    from tests.mission_scenarios import Plan

    old = Plan("reused", ["w1"], tenant="acme")
    old.create("m", "the old secret")
    old.ask("m", ev.MissionState.RUNNING, agent_id="w1")
    old.ask("m", ev.MissionState.COMPLETED, result_summary="A's secret result", quality_score=0.9)
    forgotten = ev.TreeForgotten(meta=old.meta(), ended_at=old.now, policy_version=1, message="forgotten")
    new = Plan("reused", ["w2"], tenant="globex", start=old.now + timedelta(days=2))
    new.create("m", "the new one")
    inputs = [*old.inputs, forgotten, *new.inputs]
    publish(inputs + decided(inputs))
    project()
    missions = Missions(db)
    (m,) = missions.in_tree("reused")
    assert (m.tenant_id, m.state, m.title, m.agent_id, m.result_summary, m.quality_score, m.started_at) == (
        "globex", "READY", "the new one", None, "", None, None
    )  # fmt: skip
    story = missions.story("m")
    assert [(t.from_state, t.to_state) for t in story.history] == [("UNKNOWN", "READY")]
    assert story.attempts == []
    assert missions.in_tree("reused", as_of=new.now + timedelta(days=1)) == [m]
    then = missions.in_tree("reused", as_of=old.now)  # before the tree was forgotten: the old mission
    assert [(x.tenant_id, x.state, x.title) for x in then] == [("acme", "COMPLETED", "the old secret")]


HANDOFF = "acme/handoff-1"


def test_a_handoff_moves_the_owner_and_a_running_missions_agent(
    publish: Callable[[list[Event]], None], project: Callable[..., ProjectorStats], db: psycopg.Connection[Any]
) -> None:
    """Owners follow the handoffs, a running mission's agent too; each handoff is a step of the history that keeps
    the state, with the mission's attempt; refused handoffs are refused commands; as of any moment, as it was."""
    from tests.mission_scenarios import handoff_plan

    plan, at = handoff_plan(HANDOFF)
    publish(plan.inputs + decided(plan.inputs))
    project()
    missions = Missions(db)
    owners = {m.mission_id: (m.state, m.owner_agent_id, m.agent_id) for m in missions.in_tree(HANDOFF)}
    assert owners == {"spec": ("READY", "w2", None), "impl": ("COMPLETED", "w3", "w3"), "wait": ("READY", "w2", None)}
    impl = missions.story("impl", HANDOFF)
    assert [(t.from_state, t.to_state, t.attempt, t.agent_id, t.handoff) for t in impl.history] == [
        ("UNKNOWN", "READY", 1, None, False),
        ("READY", "RUNNING", 1, "w1", False),
        ("RUNNING", "RUNNING", 1, "w3", True),
        ("RUNNING", "COMPLETED", 1, "w3", False),
    ]
    assert "handed off by w1: w3 owns it and runs attempt 1" in impl.history[2].reason
    assert [(a.attempt, a.agent_id, a.ended_state) for a in impl.attempts] == [(1, "w3", "COMPLETED")]
    assert [(r.record_name, r.reason_code, r.from_state, r.to_state) for r in impl.rejections] == [
        ("MissionHandoffRejected", "NOT_THE_OWNER", None, None),
        ("MissionHandoffRejected", "MISSION_FINISHED", None, None),
    ]
    assert [r.reason_code for r in missions.story("spec").rejections] == ["NOT_AN_ACTIVE_AGENT"]
    then = {m.mission_id: m for m in missions.in_tree(HANDOFF, as_of=at["impl handed"] - timedelta(microseconds=1))}
    assert (then["impl"].state, then["impl"].agent_id, then["impl"].owner_agent_id) == ("RUNNING", "w1", None)
    assert then["spec"].owner_agent_id == "w2" and then["wait"].owner_agent_id == "w1"
    running = missions.find("impl", as_of=at["w1 ended"])
    assert (running.state, running.attempt, running.agent_id, running.owner_agent_id) == ("RUNNING", 1, "w3", "w3")
    later = at["end"] + timedelta(days=1)
    assert missions.in_tree(HANDOFF, as_of=later) == missions.in_tree(HANDOFF)
    for mission in ("spec", "impl", "wait"):
        now, past = missions.story(mission), missions.story(mission, as_of=later)
        assert (now.mission, now.history, now.attempts, now.rejections) == (
            past.mission, past.history, past.attempts, past.rejections
        )  # fmt: skip


def test_handoffs_project_alike_in_any_batching(settings: Settings, schema: str, db: psycopg.Connection[Any]) -> None:
    """A handoff's attempt comes from the batch or, alone in its batch, from the mission's row: the same tables
    whether the log is written in one batch, record by record, or in random batches."""
    from tests.mission_scenarios import handoff_plan

    plan, _ = handoff_plan(HANDOFF)
    serde = Serde()
    records: list[Record] = []
    offsets: dict[str, int] = {}
    for event in plan.inputs + decided(plan.inputs):
        topic = topic_of(type(event)).name
        offset = offsets[topic] = offsets.get(topic, -1) + 1
        records.append(Record(topic, 0, offset, 1_000 + offset, key_of(event).encode(), serde.encode(event, topic)))
    checksums = []
    rng = random.Random(7)
    for name, size in (("whole", lambda: len(records)), ("single", lambda: 1), ("random", lambda: rng.randint(1, 4))):
        target = f"{schema}_{name}"
        migrate(settings, target)
        try:
            queue = list(records)
            states = {(t, 0): PartitionState(0, audit_chain.GENESIS) for t in offsets}
            writer = BatchWriter(settings, target, role=None)
            try:
                while queue:
                    n = size()
                    chunk, queue = queue[:n], queue[n:]
                    batch = build_batch(chunk, states, serde, "")
                    writer.write(batch)
                    states.update(batch.end)
            finally:
                writer.close()
            db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(target)))
            checksums.append({t: c for t, c in table_checksums(db).items() if t.startswith("mission")})
        finally:
            drop_schema(db, target)
    assert checksums[0]["mission_transitions"][0] == 10  # three of them handoffs
    assert checksums[0]["mission_rejections"][0] == 3
    assert checksums[0] == checksums[1] == checksums[2]
