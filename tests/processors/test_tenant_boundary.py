"""The tenant boundary of the spawn gate: no input from another tenant changes a tree or what it is told."""

from __future__ import annotations

import uuid
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlog import events as ev
from agentlog.processors.spawn_gate import decide
from agentlog.processors.testing import START, GateScenario, small_policy
from agentlog.processors.tree_state import PartitionState
from agentlog.projections.lineage_events import LineageWrites, apply
from agentlog.records import Position
from agentlog.serde import Serde

POLICY = small_policy(circuit_denials=3, circuit_window_ms=60_000, circuit_cooldown_ms=30_000)


def _acme_history() -> tuple[list[ev.Event], list[str]]:
    """Acme's inputs (a tree that spawns, spends, trips its circuit and ends a child) and its agent ids."""
    gate = GateScenario(POLICY)
    gate.register_root("root", tokens=20_000, spawns=8)
    workers = [gate.spawned("root", tokens=2_000, spawns=1) for _ in range(3)]
    gate.spawned(workers[0], config="worker", tokens=500)
    gate.consume(workers[1], 1_500)
    for _ in range(3):
        gate.spawn("root", config="ghost-config")  # denied: the circuit opens
    gate.spawn("root")  # denied: circuit open
    gate.complete(workers[2], tokens_used=100)
    gate.top_up(workers[0], 1_000)
    inputs = [entry for entry, _ in gate.log if isinstance(entry, ev.Event)]
    return inputs, ["root", *workers, "unknown-agent"]


ACME, AGENTS = _acme_history()

_evil_input = st.tuples(
    st.sampled_from(["usage", "started", "completed", "failed", "terminate", "spawn", "top_up", "register"]),
    st.sampled_from(AGENTS),
    st.sampled_from([1, 500, 60_000, -5]),
    st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(days=3), -timedelta(days=1)]),
)


def _evil(kind: str, agent: str, tokens: int, skew: timedelta, n: int) -> ev.Event:
    meta = ev.Meta(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"evil/{n}"),
        occurred_at=START + skew,
        tenant_id="evil",
        root_id="root",
        producer="evil",
    )
    request_id = uuid.uuid5(uuid.NAMESPACE_URL, f"evil-request/{n}")
    match kind:
        case "usage":
            return ev.TokensConsumed(meta=meta, agent_id=agent, tokens=tokens)
        case "started":
            return ev.AgentStarted(meta=meta, agent_id=agent, runtime="evil")
        case "completed":
            return ev.AgentCompleted(meta=meta, agent_id=agent, tokens_used=tokens)
        case "failed":
            return ev.AgentFailed(meta=meta, agent_id=agent, error="sabotage", tokens_used=tokens)
        case "terminate":
            return ev.TerminationRequested(meta=meta, agent_id=agent, requested_by=agent, reason="takeover")
        case "spawn":
            return ev.SpawnRequested(
                meta=meta,
                request_id=request_id,
                parent_agent_id=agent,
                child_config="worker",
                requested_token_budget=abs(tokens),
                task=ev.TaskSpec(title="evil"),
            )
        case "top_up":
            return ev.BudgetTopUpRequested(
                meta=meta, request_id=request_id, agent_id=agent, additional_tokens=tokens, requested_by="evil"
            )
        case _:
            return ev.RootAgentRegistered(
                meta=meta, agent_id="root", config="orchestrator", token_budget=20_000, spawn_budget=8
            )


def _run(inputs: list[ev.Event]) -> tuple[PartitionState, list[list[ev.Event]]]:
    state = PartitionState()
    return state, [decide(state, event, POLICY) for event in inputs]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, len(ACME)), _evil_input), max_size=25))
def test_another_tenants_inputs_never_change_a_tree_or_its_decisions(inserts: list[tuple[int, tuple]]) -> None:  # type: ignore[type-arg]
    """Acme's tree and acme's decisions are the same with or without evil's inputs, wherever they fall
    after acme registered its root (a root id belongs to the first tenant that registers it).

    Evil's inputs name acme's root and agents, claim any time (past, future), and include
    usage, starts, completions, failures, terminations, spawns, top-ups and a registration
    of acme's root id. Each of them is answered, stamped with the tree's tenant, and none
    touches the tree.
    """
    mixed: list[ev.Event] = list(ACME)
    for n, (at, (kind, agent, tokens, skew)) in enumerate(sorted(inserts, key=lambda i: -i[0])):
        mixed.insert(at, _evil(kind, agent, tokens, skew, n))
    alone, alone_out = _run(ACME)
    together, together_out = _run(mixed)
    assert together.trees["root"].to_dict() == alone.trees["root"].to_dict()
    acme_out = [out for event, out in zip(mixed, together_out, strict=True) if event.meta.tenant_id == "acme"]
    assert acme_out == alone_out
    for event, outputs in zip(mixed, together_out, strict=True):
        if event.meta.tenant_id == "evil":
            assert outputs and all(o.meta.tenant_id == "acme" for o in outputs)
            assert all(getattr(o, "reason", None) in _TENANT_ANSWERS for o in outputs), outputs


_TENANT_ANSWERS = {ev.DenialReason.TENANT_MISMATCH}
"""What evil hears about acme's tree, whatever it sends (a registration of its root id included): not yours."""


def _lineage(inputs: list[ev.Event], outputs: list[list[ev.Event]]) -> dict[str, object]:
    """What the lineage projection makes of ``inputs`` and the gate's ``outputs``, without positions.

    The projector's pure part (:func:`agentlog.projections.lineage_events.apply`, whose rules
    the SQL upsert applies) over the records as the projector decodes them.
    """
    serde = Serde()
    writes = LineageWrites()
    offsets = {"in": 0, "decisions": 0}
    for event, answers in zip(inputs, outputs, strict=True):
        for topic, record in [("in", event), *(("decisions", o) for o in answers)]:
            decoded = serde.decode_value(serde.encode(record, topic))
            apply(writes, decoded.full_name, decoded.value, Position(topic, 0, offsets[topic]))
            offsets[topic] += 1
    agents = {
        agent_id: (
            delta.tenant_id,
            delta.identity[3:9] if delta.identity else None,
            delta.status.name if delta.status else None,
            delta.created_at,
            delta.started_at,
            (delta.tokens_consumed, delta.tokens_reported, delta.tokens_returned, delta.tokens_topped_up),
            delta.budget_exhausted_at,
        )
        for agent_id, delta in writes.agents.items()
    }
    return {"agents": agents, "denied": sorted(row[3:] for row in writes.denied), "handoffs": writes.handoffs}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, len(ACME)), _evil_input), max_size=25))
def test_another_tenants_inputs_never_change_a_trees_lineage(inserts: list[tuple[int, tuple]]) -> None:  # type: ignore[type-arg]
    """Acme's lineage (agents, their status, tokens and times, denied spawns) is the same with or
    without evil's inputs and the gate's answers to them: raw reports are claims the lineage
    does not show, and answers to another tenant's inputs are kept by the audit log only."""
    mixed: list[ev.Event] = list(ACME)
    for n, (at, (kind, agent, tokens, skew)) in enumerate(sorted(inserts, key=lambda i: -i[0])):
        mixed.insert(at, _evil(kind, agent, tokens, skew, n))
    _, alone_out = _run(ACME)
    _, together_out = _run(mixed)
    assert _lineage(mixed, together_out) == _lineage(ACME, alone_out)
