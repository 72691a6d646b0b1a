"""Property-based tests: the spawn gate's invariants hold over random sequences of requests and reports.

A shadow ledger rebuilt only from the gate's *outputs* (and the lifecycle inputs) checks:
tree size ≤ root spawn budget + 1; the grants of a parent's active children never exceed
its own grant (so a tree's outstanding grants never exceed the root's budget plus its
approved top-ups); no active agent below an ended one; every request answered exactly
once; and the same inputs always give byte-identical outputs, with or without a snapshot
and restore in between.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlog import events as ev
from agentlog.processors.spawn_gate import decide, expire
from agentlog.processors.testing import GateScenario, small_policy
from agentlog.processors.tree_state import PartitionState

POLICY = small_policy(
    max_parallel_children=3,
    max_active_per_tenant=12,
    max_active_platform=20,
    circuit_denials=4,
    circuit_window_ms=20_000,
    circuit_cooldown_ms=15_000,
)
ROOTS = ["r0", "r1", "r2", "r3", "r4", "r5"]
CONFIGS = ["worker", "worker", "helper", "orchestrator", "ghost-config"]

_index = st.integers(min_value=-1, max_value=40)
"""Which agent an operation names: -1 is one the gate never saw, others count back from the newest known agent."""
_repeat = st.sampled_from([False, False, False, False, False, True])
"""Whether a request re-uses the previous request id (a duplicate)."""
_tokens = st.sampled_from([0, 1, 50, 400, 400, 1_000, 1_000, 5_000, 20_000, 200_000, -3])
_ROOT = st.tuples(
    st.just("root"),
    st.integers(0, 5),
    st.sampled_from([0, 3_000, 50_000, 200_000]),
    st.integers(0, 12),
    st.sampled_from(["acme", "zeta"]),
)
_GOOD_SPAWN = st.tuples(
    st.just("spawn"),
    _index,
    st.sampled_from(["worker", "worker", "helper"]),
    st.sampled_from([0, 50, 400, 1_000, 5_000]),
    st.integers(0, 4),
    st.sampled_from([None, None, 30_000]),
    st.just(False),
)
_WILD_SPAWN = st.tuples(
    st.just("spawn"),
    _index,
    st.sampled_from(CONFIGS),
    _tokens,
    st.integers(-1, 5),
    st.sampled_from([None, None, None, 2_000, 30_000, 0]),
    _repeat,
)
_BRANCHES: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "spawn": _GOOD_SPAWN,
    "wild_spawn": _WILD_SPAWN,
    "consume": st.tuples(st.just("consume"), _index, _tokens),
    "top_up": st.tuples(st.just("top_up"), _index, _tokens, _repeat),
    "tick": st.tuples(st.just("tick"), st.sampled_from([1, 5, 20, 60, 600, 3_600])),
    "end": st.tuples(st.sampled_from(["complete", "fail", "terminate"]), _index, _tokens),
    "root": _ROOT,
    "bad_root": st.tuples(
        st.just("root"), st.integers(0, 5), st.sampled_from([2_000_000, -1]), st.integers(-1, 40), st.just("acme")
    ),
}
_WEIGHTS = {"spawn": 6, "wild_spawn": 2, "consume": 3, "top_up": 2, "tick": 2, "end": 2, "root": 2, "bad_root": 1}
OPS = st.sampled_from([kind for kind, weight in _WEIGHTS.items() for _ in range(weight)]).flatmap(_BRANCHES.__getitem__)
HISTORIES = st.builds(
    lambda roots, ops: roots + ops, st.lists(_ROOT, min_size=1, max_size=3), st.lists(OPS, min_size=10, max_size=80)
)


def _play(ops: list[tuple[Any, ...]]) -> GateScenario:
    """Turn generated operations into inputs (agents are picked by index among those known so far)."""
    gate = GateScenario(POLICY, step=timedelta(milliseconds=700))
    known: list[str] = []

    def pick(i: int) -> str:
        return known[-1 - i % len(known)] if known and i >= 0 else "ghost"

    last_request: uuid.UUID | None = None
    for op in ops:
        kind = op[0]
        if kind == "root":
            _, i, tokens, spawns, tenant = op
            outputs = gate.register_root(ROOTS[i], tokens=tokens, spawns=spawns, tenant=tenant)
            known.extend(o.agent_id for o in outputs if isinstance(o, ev.RootAdmitted) and o.agent_id not in known)
        elif kind == "spawn":
            _, i, config, tokens, spawns, runtime, repeat = op
            request_id = last_request if repeat and last_request is not None else gate.request_id()
            last_request = request_id
            outputs = gate.spawn(pick(i), config, tokens, spawns, request_id=request_id, max_runtime_ms=runtime)
            known.extend(o.child_agent_id for o in outputs if isinstance(o, ev.SpawnApproved))
        elif kind == "consume":
            gate.consume(pick(op[1]), op[2])
        elif kind == "complete":
            gate.complete(pick(op[1]), tokens_used=op[2])
        elif kind == "fail":
            gate.fail(pick(op[1]), tokens_used=op[2])
        elif kind == "terminate":
            gate.terminate(pick(op[1]))  # op[2] unused
        elif kind == "top_up":
            _, i, tokens, repeat = op
            request_id = last_request if repeat and last_request is not None else gate.request_id()
            last_request = request_id
            gate.top_up(pick(i), tokens, request_id=request_id)
        else:
            gate.tick(timedelta(seconds=op[1]))
    return gate


@dataclass
class Shadow:
    """What the outputs say about each agent, independently of the gate's own state."""

    grant: dict[str, int] = field(default_factory=dict)
    parent: dict[str, str | None] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    root_spawn_budget: dict[str, int] = field(default_factory=dict)
    tree_of: dict[str, str] = field(default_factory=dict)
    approvals_per_tree: dict[str, int] = field(default_factory=dict)

    def children(self, agent: str) -> list[str]:
        return [c for c, p in self.parent.items() if p == agent]

    def end(self, agent: str) -> None:
        assert agent not in self.ended, f"{agent} ended twice"
        self.ended.add(agent)


def _apply(shadow: Shadow, source: ev.Event | datetime, outputs: list[ev.Event]) -> None:
    # A lifecycle report ends the agent it names, if that agent was active.
    if (
        isinstance(source, ev.AgentCompleted | ev.AgentFailed)
        and source.agent_id in shadow.grant
        and source.agent_id not in shadow.ended
        and shadow.tree_of.get(source.agent_id) == source.meta.root_id
    ):
        shadow.end(source.agent_id)
    for out in outputs:
        if getattr(out, "repeat", False):  # a retry answered again: the original decision already counted
            continue
        if isinstance(out, ev.RootAdmitted):
            for agent in [a for a, tree in shadow.tree_of.items() if tree == out.agent_id]:  # a re-used root id
                del shadow.tree_of[agent], shadow.grant[agent], shadow.parent[agent]
                shadow.ended.discard(agent)
            shadow.grant[out.agent_id] = out.token_budget
            shadow.parent[out.agent_id] = None
            shadow.root_spawn_budget[out.agent_id] = out.spawn_budget
            shadow.tree_of[out.agent_id] = out.agent_id
            shadow.approvals_per_tree[out.agent_id] = 0
        elif isinstance(out, ev.SpawnApproved):
            shadow.grant[out.child_agent_id] = out.granted_token_budget
            shadow.parent[out.child_agent_id] = out.parent_agent_id
            shadow.tree_of[out.child_agent_id] = out.meta.root_id
            shadow.approvals_per_tree[out.meta.root_id] += 1
        elif isinstance(out, ev.BudgetToppedUp):
            shadow.grant[out.agent_id] += out.additional_tokens
        elif isinstance(out, ev.AgentTerminated | ev.AgentTimedOut):
            shadow.end(out.agent_id)


def _check_shadow(shadow: Shadow) -> None:
    for root, budget in shadow.root_spawn_budget.items():
        assert shadow.approvals_per_tree[root] <= budget, "tree grew past root spawn budget + 1"
    for agent, grant in shadow.grant.items():
        if agent in shadow.ended:
            continue
        active_children = [c for c in shadow.children(agent) if c not in shadow.ended]
        assert sum(shadow.grant[c] for c in active_children) <= grant, f"{agent} over-granted"
        ancestor = shadow.parent[agent]
        while ancestor is not None:
            assert ancestor not in shadow.ended, f"active {agent} below ended {ancestor}"
            ancestor = shadow.parent[ancestor]


def _check_state(state: PartitionState) -> None:
    active = 0
    for tree in state.trees.values():
        for agent in tree.agents.values():
            if not agent.active:
                continue
            active += 1
            children = [tree.agents[c] for c in agent.children or ()]
            assert agent.tokens_reserved == sum(c.token_grant for c in children if c.active)
            assert agent.tokens_reserved <= agent.token_grant
            assert agent.active_children == sum(c.active for c in children)
            assert agent.spawn_remaining >= 0
            assert agent.parent is None or tree.agents[agent.parent].active
    assert active == state.active_total == sum(state.active_by_tenant.values())


def _answers(outputs: list[ev.Event]) -> list[str]:
    keys = []
    for out in outputs:
        if isinstance(out, ev.SpawnApproved | ev.SpawnDenied | ev.BudgetToppedUp | ev.TopUpDenied):
            keys.append(str(out.request_id))
        elif isinstance(out, ev.RootAdmitted | ev.RootRejected):
            keys.append(out.agent_id)
    return keys


def _check_answered_once(source: ev.Event | datetime, outputs: list[ev.Event]) -> None:
    answers = _answers(outputs)
    if isinstance(source, ev.SpawnRequested | ev.BudgetTopUpRequested):
        assert answers == [str(source.request_id)]
    elif isinstance(source, ev.RootAgentRegistered):
        assert answers == [source.agent_id]
    else:
        assert answers == []


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(ops=HISTORIES)
def test_invariants_hold_over_random_histories(ops: list[tuple[Any, ...]]) -> None:
    """Tree size, hierarchical grants, cascade closure, state consistency and one answer per request always hold."""
    gate = _play(ops)
    shadow = Shadow()
    replay = PartitionState()
    for source, outputs in gate.log:
        _check_answered_once(source, outputs)
        _apply(shadow, source, outputs)
        _check_shadow(shadow)
        # Re-run step by step on a second state to check the gate's own state after every step.
        again = decide(replay, source, POLICY) if isinstance(source, ev.Event) else expire(replay, source, POLICY)
        assert [o.model_dump() for o in again] == [o.model_dump() for o in outputs]
        _check_state(replay)


@_SETTINGS
@given(ops=HISTORIES, cut=st.integers(min_value=0, max_value=60))
def test_decisions_are_deterministic_across_runs_and_restores(ops: list[tuple[Any, ...]], cut: int) -> None:
    """The same inputs give identical outputs on a fresh state, also after a snapshot and restore at any point."""
    first = _play(ops)
    expected = [[o.model_dump() for o in outputs] for _, outputs in first.log]
    state = PartitionState()
    actual = []
    for step, (source, _) in enumerate(first.log):
        if step == cut:
            state = PartitionState.from_bytes(state.to_bytes())
        outputs = decide(state, source, POLICY) if isinstance(source, ev.Event) else expire(state, source, POLICY)
        actual.append([o.model_dump() for o in outputs])
    assert actual == expected
    assert state.to_bytes() == first.state.to_bytes()
