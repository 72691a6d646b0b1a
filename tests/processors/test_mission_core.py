"""The mission processor's pure core: every row of the lifecycle table, every rejection, cycles, retries, cascades."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentlog import events as ev
from agentlog.processors.mission_core import MAX_EDGES, PRODUCER, decide
from agentlog.processors.mission_graph import CYCLE_NAMED
from agentlog.processors.mission_state import MissionPartition, mission_key, records_of, restore
from agentlog.processors.testing import admitted_tree, small_policy

_S = ev.MissionState
_R = ev.MissionRejection
_SOFT = ev.DependencyKind.SOFT
ROOT = "acme/tree-1"
POLICY = small_policy()


class Missions:
    """Feeds the core gate facts and mission commands of one tree, and keeps the state."""

    def __init__(self, agents: tuple[str, ...] = ("worker",)) -> None:
        self.state = MissionPartition()
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.changed: set[str] = set()
        self.records: list[tuple[bytes, bytes | None]] = []
        for fact in admitted_tree(ROOT, list(agents)):
            self.send(fact.model_copy(update={"meta": self.meta()}))

    def meta(self, tenant: str = "acme") -> ev.Meta:
        self.now += timedelta(seconds=1)
        return ev.Meta(tenant_id=tenant, root_id=ROOT, producer="test", occurred_at=self.now)

    def send(self, event: ev.Event, core: int | None = None) -> list[ev.Event]:
        outputs, changed = (
            decide(self.state, event, POLICY) if core is None else decide(self.state, event, POLICY, core)
        )
        self.changed |= changed
        self.records += records_of(self.state, changed)  # the changelog as the worker writes it, input by input
        return outputs

    def restored(self) -> MissionPartition:
        return restore(0, self.records)

    def fact(self, kind: type[ev.Event], **fields: Any) -> list[ev.Event]:
        fields.setdefault("policy_version", 1)
        fields.setdefault("message", "")
        return self.send(kind(meta=self.meta(), **fields))

    def create(self, mission: str, parent: str | None = None, **fields: Any) -> list[ev.Event]:
        task = ev.TaskSpec(title=mission)
        return self.send(ev.MissionCreated(meta=self.meta(), mission_id=mission, parent_mission_id=parent, task=task,
                                           **fields))  # fmt: skip

    def depend(self, mission: str, on: str, kind: ev.DependencyKind = ev.DependencyKind.HARD) -> list[ev.Event]:
        return self.send(ev.DependencyAdded(meta=self.meta(), mission_id=mission, depends_on=on, kind=kind))

    def ask(self, mission: str, to: ev.MissionState, by: str = ROOT, **fields: Any) -> list[ev.Event]:
        request = ev.MissionTransitionRequested(meta=self.meta(), mission_id=mission, to_state=to, requested_by=by,
                                                **fields)  # fmt: skip
        return self.send(request)

    def hand(
        self, mission: str, giver: str, taker: str, tenant: str = "acme", core: int | None = None
    ) -> list[ev.Event]:
        """The bus's request to move ``mission`` from ``giver`` to ``taker`` (a handoff it accepted)."""
        handoff = uuid.uuid5(uuid.NAMESPACE_URL, f"handoff/{self.now.isoformat()}")
        request = ev.MissionHandoffRequested(meta=self.meta(tenant).model_copy(update={"producer": "agentlog.bus"}),
                                             mission_id=mission, from_agent_id=giver, to_agent_id=taker,
                                             handoff_id=handoff)  # fmt: skip
        return self.send(request, core)

    def state_of(self, mission: str) -> ev.MissionState:
        return self.state.trees[ROOT].missions[mission].state


def moves(outputs: list[ev.Event]) -> list[tuple[str, str, str]]:
    return [
        (o.mission_id, o.from_state.value, o.to_state.value) for o in outputs if isinstance(o, ev.MissionTransitioned)
    ]


def rejection(outputs: list[ev.Event]) -> ev.MissionRejection:
    (only,) = outputs
    assert isinstance(only, ev.MissionTransitionRejected | ev.DependencyRejected), only
    return only.reason_code


def test_a_new_mission_is_ready_and_a_hard_dependency_makes_it_wait() -> None:
    m = Missions()
    assert moves(m.create("a")) == [("a", "UNKNOWN", "READY")]
    m.create("b")
    outputs = m.depend("b", "a")
    assert isinstance(outputs[0], ev.DependencyAccepted) and moves(outputs) == [("b", "READY", "PENDING")]
    assert rejection(m.ask("b", _S.RUNNING)) is _R.NOT_ALLOWED
    assert "waiting for its hard dependencies a (READY)" in m.ask("b", _S.RUNNING)[0].reason  # type: ignore[attr-defined]
    m.ask("a", _S.RUNNING, agent_id="worker")
    done = m.ask("a", _S.COMPLETED, by="worker", result_summary="found it", quality_score=0.9)
    assert moves(done) == [("a", "RUNNING", "COMPLETED"), ("b", "PENDING", "READY")]
    completed = done[0]
    assert isinstance(completed, ev.MissionTransitioned)
    assert (completed.agent_id, completed.result_summary, completed.quality_score) == ("worker", "found it", 0.9)
    assert moves(m.ask("a", _S.ARCHIVED)) == [("a", "COMPLETED", "ARCHIVED")]
    m.create("c")
    assert moves(m.depend("c", "a")) == []  # an archived, completed dependency holds nothing up


def test_soft_dependencies_never_block() -> None:
    m = Missions()
    m.create("a")
    m.create("b")
    assert moves(m.depend("b", "a", _SOFT)) == [] and m.state_of("b") is _S.READY
    m.ask("a", _S.CANCELLED)
    assert m.state_of("b") is _S.READY


def test_a_failure_retries_within_its_attempts_then_blocks_its_dependents() -> None:
    m = Missions()
    m.create("a", max_attempts=2)
    m.create("b")
    m.create("c")
    m.depend("b", "a")
    m.depend("c", "b")
    m.ask("a", _S.RUNNING, agent_id="worker")
    first = m.ask("a", _S.FAILED, by="worker", reason="rate limited")
    assert moves(first) == [("a", "RUNNING", "FAILED"), ("a", "FAILED", "READY")]
    assert [o.attempt for o in first] == [1, 2]  # type: ignore[attr-defined]
    m.ask("a", _S.RUNNING, agent_id="worker")
    last = m.ask("a", _S.FAILED, by="worker")
    assert moves(last) == [("a", "RUNNING", "FAILED"), ("b", "PENDING", "BLOCKED"), ("c", "PENDING", "BLOCKED")]
    assert rejection(m.ask("b", _S.RUNNING)) is _R.NOT_ALLOWED
    assert moves(m.ask("b", _S.CANCELLED)) == [("b", "BLOCKED", "CANCELLED")]


def test_a_failure_that_may_not_be_retried_is_final() -> None:
    m = Missions()
    m.create("a")
    m.ask("a", _S.RUNNING)
    assert moves(m.ask("a", _S.FAILED, retryable=False)) == [("a", "RUNNING", "FAILED")]
    assert m.state_of("a") is _S.FAILED


@pytest.mark.parametrize(
    ("fact", "fields", "why"),
    [
        (ev.AgentTerminated, {"reason": ev.TerminationReason.ANCESTOR_ENDED}, "was terminated (ANCESTOR_ENDED)"),
        (ev.AgentTimedOut, {"deadline": datetime(2026, 1, 1, tzinfo=UTC)}, "timed out (DEADLINE)"),
        (ev.AgentEnded, {"outcome": ev.EndOutcome.COMPLETED, "tokens_used": 1}, "completed without completing"),
        (ev.AgentEnded, {"outcome": ev.EndOutcome.FAILED, "error": "oom", "tokens_used": 1}, "failed (oom)"),
    ],
)
def test_a_mission_fails_when_its_agent_ends_without_completing_it(
    fact: type[ev.Event], fields: dict[str, Any], why: str
) -> None:
    m = Missions()
    m.create("a")
    m.ask("a", _S.RUNNING, agent_id="worker")
    outputs = m.fact(fact, agent_id="worker", **fields)
    failed = next(o for o in outputs if isinstance(o, ev.MissionTransitioned))
    assert (failed.from_state, failed.to_state) == (_S.RUNNING, _S.FAILED) and why in failed.reason
    retryable = not (fact is ev.AgentEnded and fields["outcome"] is ev.EndOutcome.FAILED)  # AgentEnded.retryable
    assert m.state_of("a") is (_S.READY if retryable else _S.FAILED)
    expected = _R.NOT_AN_ACTIVE_AGENT if retryable else _R.NOT_ALLOWED  # the agent ended; or the mission did
    assert rejection(m.ask("a", _S.RUNNING, agent_id="worker")) is expected


def test_cancelling_a_mission_cancels_its_open_descendants_first() -> None:
    m = Missions()
    m.create("plan")
    m.create("phase-1", parent="plan")
    m.create("phase-2", parent="plan")
    m.create("step", parent="phase-1")
    m.create("after")
    m.depend("after", "step")
    m.ask("phase-2", _S.RUNNING)
    m.ask("phase-2", _S.COMPLETED)
    assert rejection(m.ask("plan", _S.COMPLETED)) is _R.NOT_ALLOWED  # not running
    m.ask("plan", _S.RUNNING)
    assert rejection(m.ask("plan", _S.COMPLETED)) is _R.OPEN_CHILDREN
    assert moves(m.ask("plan", _S.CANCELLED)) == [
        ("step", "READY", "CANCELLED"),
        ("phase-1", "READY", "CANCELLED"),
        ("plan", "RUNNING", "CANCELLED"),
        ("after", "PENDING", "BLOCKED"),
    ]
    assert rejection(m.create("late", parent="plan")) is _R.PARENT_FINISHED


@pytest.mark.parametrize("length", [2, 3, 10])
def test_a_dependency_that_closes_a_cycle_is_rejected_naming_it(length: int) -> None:
    m = Missions()
    names = [f"m{i}" for i in range(length)]
    for name in names:
        m.create(name)
    for later, earlier in zip(names[1:], names, strict=False):
        assert isinstance(m.depend(later, earlier)[0], ev.DependencyAccepted)
    (rejected,) = m.depend(names[0], names[-1])
    assert isinstance(rejected, ev.DependencyRejected) and rejected.reason_code is _R.DEPENDENCY_CYCLE
    assert rejected.cycle == [names[0], *reversed(names)]
    assert " → ".join(rejected.cycle) in rejected.reason
    assert names[-1] not in m.state.trees[ROOT].missions[names[0]].needs  # nothing changed


def test_a_long_cycle_is_named_within_the_contracts_limit() -> None:
    m = Missions()
    names = [f"m{i}" for i in range(200)]
    for name in names:
        m.create(name)
    for later, earlier in zip(names[1:], names, strict=False):
        m.depend(later, earlier)
    (rejected,) = m.depend(names[0], names[-1])
    assert isinstance(rejected, ev.DependencyRejected)
    assert len(rejected.cycle) == CYCLE_NAMED and "cut in the middle" in rejected.reason


def test_dependencies_added_out_of_order_reorder_the_graph_without_false_cycles() -> None:
    m = Missions()
    for name in "abcd":
        m.create(name)
    for mission, on in (("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")):  # each against the creation order
        assert isinstance(m.depend(mission, on)[0], ev.DependencyAccepted), (mission, on)
    missions = m.state.trees[ROOT].missions
    for mission in missions.values():
        assert all(missions[needed].order < mission.order for needed in mission.needs)
    assert rejection(m.depend("d", "a")) is _R.DEPENDENCY_CYCLE


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (lambda m: m.depend("a", "a"), _R.SELF_DEPENDENCY),
        (lambda m: m.depend("a", "elsewhere/x"), _R.UNKNOWN_DEPENDENCY),
        (lambda m: m.depend("nobody", "a"), _R.UNKNOWN_MISSION),
        (lambda m: m.depend("b", "a") and m.depend("b", "a"), _R.DUPLICATE_DEPENDENCY),
        (lambda m: m.ask("a", _S.RUNNING) and m.depend("a", "b"), _R.DEPENDENCY_TOO_LATE),
        (lambda m: m.create("a"), _R.DUPLICATE_MISSION),
        (lambda m: m.create("x", parent="nobody"), _R.UNKNOWN_PARENT),
        (lambda m: m.create("x", owner_agent_id="stranger"), _R.NOT_AN_ACTIVE_AGENT),
        (lambda m: m.create("x", max_attempts=0), _R.INVALID_REQUEST),
        (lambda m: m.ask("a", _S.RUNNING, by="stranger"), _R.NOT_AN_ACTIVE_AGENT),
        (lambda m: m.ask("a", _S.RUNNING, agent_id="stranger"), _R.NOT_AN_ACTIVE_AGENT),
        (lambda m: m.ask("a", _S.PENDING), _R.NOT_ALLOWED),
        (lambda m: m.ask("a", _S.COMPLETED), _R.NOT_ALLOWED),
        (lambda m: m.ask("nobody", _S.RUNNING), _R.UNKNOWN_MISSION),
    ],
)
def test_every_rejection_names_its_reason_and_changes_nothing(command: Any, code: ev.MissionRejection) -> None:
    m = Missions()
    m.create("a")
    m.create("b")
    before = {k: (v.state, dict(v.needs)) for k, v in m.state.trees[ROOT].missions.items()}
    outputs = command(m)
    assert rejection(outputs) is code
    assert outputs[0].reason.startswith("Cannot")
    if code not in (_R.DUPLICATE_DEPENDENCY, _R.DEPENDENCY_TOO_LATE):  # those changed something first, on purpose
        assert {k: (v.state, dict(v.needs)) for k, v in m.state.trees[ROOT].missions.items()} == before


def test_commands_for_an_unknown_tree_or_from_another_tenant_are_rejected() -> None:
    m = Missions()
    task = ev.TaskSpec(title="x")
    stranger = ev.MissionCreated(meta=m.meta("globex"), mission_id="x", task=task)
    assert rejection(m.send(stranger)) is _R.TENANT_MISMATCH
    elsewhere = ev.MissionCreated(meta=m.meta().model_copy(update={"root_id": "acme/other"}), mission_id="x", task=task)
    assert rejection(m.send(elsewhere)) is _R.UNKNOWN_TREE


def test_the_state_survives_the_changelog() -> None:
    m = Missions()
    for name in "abcd":
        m.create(name)
    m.create("e", parent="a")
    m.depend("e", "a", _SOFT)
    m.depend("c", "b")
    m.depend("b", "d")  # reorders c too
    m.ask("a", _S.RUNNING, agent_id="worker")
    restored = m.restored()
    tree, again = m.state.trees[ROOT], restored.trees[ROOT]
    assert again.agents == tree.agents and again.next_order == tree.next_order
    assert {k: v.to_row() for k, v in again.missions.items()} == {k: v.to_row() for k, v in tree.missions.items()}
    assert again.running == {"worker": ["a"]}
    live = rejection(m.depend("d", "c"))
    m.state = restored
    assert live is rejection(m.depend("d", "c")) is _R.DEPENDENCY_CYCLE
    m.fact(ev.TreeForgotten, ended_at=m.now)
    assert m.restored().trees == {}


def test_a_mission_blocked_by_a_new_dependency_blocks_its_dependents() -> None:
    m = Missions()
    for name in "abc":
        m.create(name)
    m.depend("b", "a")
    m.ask("c", _S.CANCELLED)
    assert moves(m.depend("a", "c")) == [("a", "READY", "BLOCKED"), ("b", "PENDING", "BLOCKED")]


def test_cancelling_reaches_open_missions_below_a_finished_one() -> None:
    m = Missions()
    m.create("p")
    m.create("k", parent="p", max_attempts=1)
    m.create("g", parent="k")
    m.ask("k", _S.RUNNING)
    m.ask("k", _S.FAILED)  # for good: its only attempt
    assert moves(m.ask("p", _S.CANCELLED)) == [("g", "READY", "CANCELLED"), ("p", "READY", "CANCELLED")]


def test_ids_that_cannot_key_a_record_are_refused() -> None:
    m = Missions()
    assert rejection(m.create("")) is _R.INVALID_REQUEST
    assert rejection(m.create("a\x00b")) is _R.INVALID_REQUEST


def test_a_mission_has_at_most_so_many_children_and_dependents() -> None:
    m = Missions()
    m.create("hub")
    for i in range(MAX_EDGES):
        m.create(f"c{i}", parent="hub")
        m.depend(f"c{i}", "hub", _SOFT)
    assert rejection(m.create("one-too-many", parent="hub")) is _R.TOO_MANY_MISSIONS
    m.create("late")
    assert rejection(m.depend("late", "hub")) is _R.TOO_MANY_MISSIONS
    ((_, hub),) = records_of(m.state, {mission_key(ROOT, "hub")})
    assert hub is not None and len(hub) < 1_000_000


def test_a_large_graph_built_in_any_order_keeps_a_topological_order() -> None:
    """10,000 missions and 30,000 dependencies added in a random order: every one accepted, the order kept."""
    m = Missions()
    count = 10_000
    for i in range(count):
        m.create(f"m{i}")
    rng = random.Random(5)
    edges = set()
    while len(edges) < 30_000:
        a, b = rng.randrange(count), rng.randrange(count)
        if a != b:
            edges.add((max(a, b), min(a, b)))  # a DAG: the later mission depends on the earlier one
    ordered = list(edges)
    rng.shuffle(ordered)
    for a, b in ordered:
        assert isinstance(m.depend(f"m{a}", f"m{b}")[0], ev.DependencyAccepted)
    missions = m.state.trees[ROOT].missions
    assert all(missions[n].order < x.order for x in missions.values() for n in x.needs)


def test_the_policys_retention_archives_finished_missions_at_a_timer_tick() -> None:
    """COMPLETED, FAILED-for-good and CANCELLED missions are archived once the retention has passed since they
    finished, oldest first; a retried failure is not finished; a restored state archives the same."""
    from agentlog.processors.mission_core import expire

    retention = small_policy(2, mission_retention_ms=60_000)
    m = Missions()
    for mission in ("done", "gave-up", "dropped", "retried", "asked"):
        m.create(mission, max_attempts=2 if mission == "retried" else 1)
    m.ask("done", _S.RUNNING, agent_id="worker")
    m.ask("done", _S.COMPLETED)
    finished = m.now
    m.ask("gave-up", _S.RUNNING, agent_id="worker")
    m.ask("gave-up", _S.FAILED, retryable=True)  # its only attempt: FAILED for good
    m.ask("dropped", _S.CANCELLED)
    m.ask("retried", _S.RUNNING, agent_id="worker")
    m.ask("retried", _S.FAILED, retryable=True)  # back to READY: not finished
    m.ask("asked", _S.CANCELLED)
    m.ask("asked", _S.ARCHIVED)  # archived on request already
    last = m.now
    restored = m.restored()
    assert expire(m.state, finished + timedelta(seconds=59), retention) == ([], set())
    assert expire(m.state, last + timedelta(days=1), POLICY) == ([], set())  # no retention in POLICY
    outputs, changed = expire(m.state, finished + timedelta(seconds=60), retention)
    assert moves(outputs) == [("done", "COMPLETED", "ARCHIVED")]
    (archived,) = outputs
    assert isinstance(archived, ev.MissionTransitioned) and archived.meta.causation_id is None
    assert archived.policy_version == 2 and "mission_retention_ms" in archived.reason
    assert changed == {mission_key(ROOT, "done")}
    later, _ = expire(m.state, last + timedelta(seconds=60), retention)
    assert moves(later) == [("gave-up", "FAILED", "ARCHIVED"), ("dropped", "CANCELLED", "ARCHIVED")]
    assert expire(m.state, last + timedelta(days=1), retention) == ([], set())
    again = [e for at in (finished, last) for e in expire(restored, at + timedelta(seconds=60), retention)[0]]
    assert [e.model_dump() for e in again] == [e.model_dump() for e in outputs + later]  # restored: the same facts
    assert m.state_of("retried") is _S.READY


def test_no_input_makes_a_fact_longer_than_the_contract_allows() -> None:
    """A reason of the longest text an agent may send, or a cycle of long ids, is answered, cut to the limit."""
    from agentlog.limits import MAX_CHARS

    m = Missions()
    m.create("a")
    (cancelled,) = m.ask("a", _S.CANCELLED, reason="y" * MAX_CHARS["text"])
    assert isinstance(cancelled, ev.MissionTransitioned) and len(cancelled.reason) == MAX_CHARS["text"]
    ids = [f"{n:03d}" + "m" * 253 for n in range(70)]
    for mission in ids:
        m.create(mission)
    for before, after in itertools.pairwise(ids):
        m.depend(after, before)
    (refused,) = m.depend(ids[0], ids[-1])
    assert isinstance(refused, ev.DependencyRejected) and refused.reason_code is _R.DEPENDENCY_CYCLE
    assert len(refused.reason) <= MAX_CHARS["text"] and refused.reason.endswith("…")


def test_a_quality_score_must_be_a_finite_number() -> None:
    m = Missions()
    m.create("a")
    m.ask("a", _S.RUNNING, agent_id="worker")
    for score in (float("nan"), float("inf")):
        assert rejection(m.ask("a", _S.COMPLETED, quality_score=score)) is _R.INVALID_REQUEST
    assert moves(m.ask("a", _S.COMPLETED, quality_score=0.5)) == [("a", "RUNNING", "COMPLETED")]


def test_a_tick_archives_at_most_so_many_missions() -> None:
    from agentlog.processors.mission_core import MAX_ARCHIVED_PER_TICK, expire

    m = Missions()
    for n in range(MAX_ARCHIVED_PER_TICK + 5):
        m.create(f"m{n}")
        m.ask(f"m{n}", _S.CANCELLED)
    retention = small_policy(2, mission_retention_ms=1_000)
    first, _ = expire(m.state, m.now + timedelta(days=1), retention)
    second, _ = expire(m.state, m.now + timedelta(days=1), retention)
    assert (len(first), len(second)) == (MAX_ARCHIVED_PER_TICK, 5)


def test_another_tenant_learns_nothing_of_a_trees_missions() -> None:
    m = Missions()
    m.create("secret")
    m.ask("secret", _S.RUNNING, agent_id="worker")
    request = ev.MissionTransitionRequested(meta=m.meta("globex"), mission_id="secret", to_state=_S.CANCELLED,
                                            requested_by=ROOT)  # fmt: skip
    (refused,) = m.send(request)
    assert isinstance(refused, ev.MissionTransitionRejected) and refused.reason_code is _R.TENANT_MISMATCH
    assert refused.from_state is _S.UNKNOWN  # not RUNNING: whether the mission exists is not told


# -- handoffs (core 3) --------------------------------------------------------------------


def handed(outputs: list[ev.Event]) -> ev.MissionHandedOff:
    (only,) = outputs
    assert isinstance(only, ev.MissionHandedOff), only
    return only


def refused(outputs: list[ev.Event]) -> ev.MissionHandoffRejected:
    (only,) = outputs
    assert isinstance(only, ev.MissionHandoffRejected), only
    return only


def test_a_handoff_moves_the_owner_and_keeps_the_state() -> None:
    m = Missions(("worker", "helper"))
    m.create("a", owner_agent_id="worker")
    m.create("b", owner_agent_id="worker")
    m.depend("b", "a")  # PENDING
    m.changed.clear()
    request_at = m.now + timedelta(seconds=1)
    out = handed(m.hand("a", "worker", "helper"))
    assert (out.mission_id, out.state, out.previous_owner, out.owner) == ("a", _S.READY, "worker", "helper")
    assert out.policy_version == POLICY.version and "helper owns it" in out.message
    assert out.meta.causation_id is not None and out.meta.producer == PRODUCER and out.meta.occurred_at == request_at
    assert m.changed == {mission_key(ROOT, "a")}
    mission = m.state.trees[ROOT].missions["a"]
    assert (mission.state, mission.owner, mission.runner) == (_S.READY, "helper", None)
    assert refused(m.hand("a", "worker", "helper")).reason_code is _R.NOT_THE_OWNER  # it gave it away
    assert handed(m.hand("b", "worker", "helper")).state is _S.PENDING  # a waiting mission changes hands too
    assert handed(m.hand("a", "helper", "worker")).previous_owner == "helper"
    m.ask("a", _S.RUNNING, agent_id="helper")  # the owner is not the runner: either may give it away
    moved = handed(m.hand("a", "worker", ROOT))
    assert (moved.state, moved.previous_owner, moved.owner) == (_S.RUNNING, "worker", ROOT)
    assert m.state.trees[ROOT].missions["a"].runner == ROOT


def test_an_unowned_mission_changes_hands_only_while_it_runs_and_only_from_its_runner() -> None:
    m = Missions(("worker", "helper"))
    m.create("a")
    assert refused(m.hand("a", "worker", "helper")).reason_code is _R.NOT_THE_OWNER
    m.ask("a", _S.RUNNING, agent_id="worker")
    out = handed(m.hand("a", "worker", "helper"))
    assert (out.previous_owner, out.owner) == (None, "helper") and "runs attempt 1" in out.message


def test_a_running_mission_moves_to_its_new_runner_whose_end_then_fails_it() -> None:
    m = Missions(("worker", "helper", "other"))
    m.create("a", max_attempts=2)
    m.create("b")
    m.ask("a", _S.RUNNING, agent_id="worker")
    m.ask("b", _S.RUNNING, agent_id="worker")
    handed(m.hand("a", "worker", "helper"))
    tree = m.state.trees[ROOT]
    assert tree.missions["a"].runner == "helper" and tree.running == {"worker": ["b"], "helper": ["a"]}
    restored = m.restored().trees[ROOT]
    assert restored.running == {"worker": ["b"], "helper": ["a"]}
    assert restored.missions["a"].to_row() == tree.missions["a"].to_row()
    ended = m.fact(ev.AgentEnded, agent_id="worker", outcome=ev.EndOutcome.FAILED, error="oom", retryable=True,
                   tokens_used=1)  # fmt: skip
    assert moves(ended) == [("b", "RUNNING", "FAILED"), ("b", "FAILED", "READY")]  # b only: a is helper's now
    assert m.state_of("a") is _S.RUNNING
    terminated = m.fact(ev.AgentTerminated, agent_id="helper", reason=ev.TerminationReason.REQUESTED)
    assert moves(terminated) == [("a", "RUNNING", "FAILED"), ("a", "FAILED", "READY")]
    assert terminated[0].agent_id == "helper"  # type: ignore[attr-defined]
    assert tree.running == {} and tree.missions["a"].owner == "helper"
    m.ask("a", _S.RUNNING, agent_id="other")
    handed(m.hand("a", "other", ROOT))
    (done,) = m.ask("a", _S.COMPLETED, result_summary="done")
    assert isinstance(done, ev.MissionTransitioned) and done.agent_id == ROOT  # completed under its new runner


@pytest.mark.parametrize(
    ("prepare", "giver", "taker", "code"),
    [
        (lambda m: None, "worker", "worker", _R.INVALID_REQUEST),
        (lambda m: None, "helper", "worker", _R.NOT_THE_OWNER),
        (lambda m: None, "stranger", "helper", _R.NOT_THE_OWNER),
        (lambda m: None, "worker", "stranger", _R.NOT_AN_ACTIVE_AGENT),
        (lambda m: m.fact(ev.AgentTerminated, agent_id="helper", reason=ev.TerminationReason.REQUESTED), "worker",
         "helper", _R.NOT_AN_ACTIVE_AGENT),
        (lambda m: m.ask("a", _S.CANCELLED), "worker", "helper", _R.MISSION_FINISHED),
        (lambda m: m.ask("a", _S.CANCELLED) and m.ask("a", _S.ARCHIVED), "worker", "helper", _R.MISSION_FINISHED),
        (lambda m: m.ask("a", _S.RUNNING, agent_id="worker") and m.ask("a", _S.COMPLETED), "worker", "helper",
         _R.MISSION_FINISHED),
        (lambda m: m.ask("a", _S.RUNNING, agent_id="worker") and m.ask("a", _S.FAILED, retryable=False), "worker",
         "helper", _R.MISSION_FINISHED),
        (lambda m: m.ask("a", _S.CANCELLED), "helper", "worker", _R.NOT_THE_OWNER),  # a stranger learns no state
    ],
)  # fmt: skip
def test_every_handoff_rejection_names_its_reason_and_changes_nothing(
    prepare: Any, giver: str, taker: str, code: ev.MissionRejection
) -> None:
    m = Missions(("worker", "helper"))
    m.create("a", owner_agent_id="worker")
    prepare(m)
    before = {k: v.to_row() for k, v in m.state.trees[ROOT].missions.items()}
    agents, running = dict(m.state.trees[ROOT].agents), dict(m.state.trees[ROOT].running)
    m.changed.clear()
    out = refused(m.hand("a", giver, taker))
    assert out.reason_code is code and out.reason.startswith("Cannot hand mission a over to")
    assert out.mission_id == "a" and out.policy_version == POLICY.version and out.meta.producer == PRODUCER
    assert m.changed == set()
    tree = m.state.trees[ROOT]
    assert {k: v.to_row() for k, v in tree.missions.items()} == before
    assert (tree.agents, tree.running) == (agents, running)
    if code is _R.NOT_THE_OWNER:
        assert not any(s.value in out.reason for s in _S)


def test_a_handoff_in_an_unknown_tree_of_another_tenant_or_of_an_unknown_mission_is_refused() -> None:
    m = Missions(("worker", "helper"))
    m.create("secret", owner_agent_id="worker")
    m.ask("secret", _S.RUNNING, agent_id="worker")
    assert refused(m.hand("nobody", "worker", "helper")).reason_code is _R.UNKNOWN_MISSION
    foreign = refused(m.hand("secret", "worker", "helper", tenant="globex"))
    assert foreign.reason_code is _R.TENANT_MISMATCH and foreign.meta.tenant_id == "acme"  # the tree's tenant
    assert "RUNNING" not in foreign.reason and "worker" not in foreign.reason  # nothing of the mission is told
    request = ev.MissionHandoffRequested(meta=m.meta().model_copy(update={"root_id": "acme/other"}),
                                         mission_id="secret", from_agent_id="worker", to_agent_id="helper",
                                         handoff_id=uuid.uuid4())  # fmt: skip
    assert refused(m.send(request)).reason_code is _R.UNKNOWN_TREE
    assert m.state.trees[ROOT].missions["secret"].runner == "worker"


def test_a_handoff_answer_is_deterministic_and_names_the_handoff() -> None:
    first, second = Missions(("worker", "helper")), Missions(("worker", "helper"))
    for m in (first, second):
        m.create("a", owner_agent_id="worker")
    request = ev.MissionHandoffRequested(meta=first.meta(), mission_id="a", from_agent_id="worker",
                                         to_agent_id="helper", handoff_id=uuid.uuid4())  # fmt: skip
    (one,), (two,) = first.send(request), second.send(request)
    assert one.model_dump() == two.model_dump()
    assert isinstance(one, ev.MissionHandedOff) and one.handoff_id == request.handoff_id
    assert one.meta.causation_id == request.meta.event_id and one.meta.event_id != request.meta.event_id


@pytest.mark.parametrize("core", [1, 2])
def test_cores_before_3_ignore_a_handoff(core: int) -> None:
    """Logs decided by cores 1 and 2 hold no handoff; were one there, those cores would answer nothing."""
    m = Missions(("worker", "helper"))
    m.create("a", owner_agent_id="worker")
    m.ask("a", _S.RUNNING, agent_id="worker")
    before = {k: v.to_row() for k, v in m.state.trees[ROOT].missions.items()}
    request = ev.MissionHandoffRequested(meta=m.meta(), mission_id="a", from_agent_id="worker", to_agent_id="helper",
                                         handoff_id=uuid.uuid4())  # fmt: skip
    assert decide(m.state, request, POLICY, core) == ([], set())
    assert {k: v.to_row() for k, v in m.state.trees[ROOT].missions.items()} == before
    assert handed(m.hand("a", "worker", "helper", core=3)).owner == "helper"


def test_a_changelog_row_of_an_older_core_restores_and_can_be_handed_off() -> None:
    """Rows written before core 3 (core 1's without a finishing time) restore, and their missions change hands."""
    import json

    m = Missions(("worker", "helper"))
    m.create("a", owner_agent_id="worker")
    m.ask("a", _S.RUNNING, agent_id="worker")
    key = mission_key(ROOT, "a").encode()
    row = m.state.trees[ROOT].missions["a"].to_row()[:12]  # as core 1 wrote it
    header = [(k, v) for k, v in m.records if k == ROOT.encode()][-1]
    m.state = restore(0, [header, (key, json.dumps(row).encode())])
    assert m.state.trees[ROOT].running == {"worker": ["a"]}
    handed(m.hand("a", "worker", "helper"))
    again = m.restored().trees[ROOT]
    assert (again.missions["a"].owner, again.missions["a"].runner, again.running) == ("helper", "helper",
                                                                                      {"helper": ["a"]})  # fmt: skip
