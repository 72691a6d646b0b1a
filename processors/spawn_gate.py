"""The spawn gate: the pure decision function the processor and replay both run.

``decide(state, event, policy)`` takes one input event (a spawn directive or a lifecycle
report), **mutates** ``state`` (the partition's :class:`PartitionState`, owned by the
caller; mutation in place keeps a decision cheap) and returns the decisions, in order.
``expire(state, now, policy)`` times out agents past their deadline; the processor calls
it from a timer, replay at the ``occurred_at`` of each recorded ``AgentTimedOut``.

Determinism (replay re-runs this and compares byte for byte):

- "now" is the input's ``meta.occurred_at``; no clock is read, nothing is random;
- output event ids are ``uuid5(NAMESPACE, f"{input event_id}/{index}")``, their
  ``occurred_at``, ``root_id`` and ``correlation_id`` are the input's, ``tenant_id`` the
  tree's (the input's for a new tree) and ``causation_id`` is the input's event id; child
  ids are ``uuid5(NAMESPACE, request_id)``;
- whenever several agents are affected, they are taken in a sorted order, never in the
  order of a dict or set.

Fail closed: without a policy every request is denied (``NO_POLICY``), an unknown tree,
parent, config or agent is denied, and no input raises. Requests are answered exactly
once per input event: ``RootAgentRegistered`` by ``RootAdmitted``/``RootRejected``,
``SpawnRequested`` by ``SpawnApproved``/``SpawnDenied``, ``BudgetTopUpRequested`` by
``BudgetToppedUp``/``TopUpDenied``. Lifecycle reports are facts: they get decisions only
when they cause some (``BudgetExhausted``, ``AgentTerminated``); reports about unknown or
already ended agents change nothing (late usage is charged to the nearest active ancestor);
a report about another tenant's tree is rejected (``LifecycleRejected``).

The first event of a tree at or after its circuit's ``open_until`` is preceded by
``CircuitClosed``. ``decide`` changes only the tree of ``event.meta.root_id`` (and the
partition's counters and deadline heap); ``expire`` changes the trees named by the
``root_id`` of its outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentlog import events as ev
from agentlog.limits import quote
from agentlog.processors import budget, cascade, circuit, roots, spawns
from agentlog.processors.cascade import expire
from agentlog.processors.clock import to_micros
from agentlog.processors.emitter import Emitter
from agentlog.processors.policy import Policy
from agentlog.processors.tree_state import PartitionState

__all__ = ["HANDLED", "decide", "expire"]

_Handler = Callable[[PartitionState, Any, Policy | None, int, Emitter], None]

_HANDLERS: dict[type[ev.Event], _Handler] = {
    ev.RootAgentRegistered: roots.decide_root,
    ev.SpawnRequested: spawns.decide_spawn,
    ev.TokensConsumed: lambda state, event, policy, _now, out: budget.decide_usage(state, event, policy, out),
    ev.BudgetTopUpRequested: budget.decide_top_up,
    ev.AgentCompleted: cascade.decide_reported_end,
    ev.AgentFailed: cascade.decide_reported_end,
    ev.TerminationRequested: cascade.decide_termination,
    ev.AgentStarted: lambda _state, _event, _policy, _now, _out: None,
}

HANDLED: frozenset[type[ev.Event]] = frozenset(_HANDLERS)
"""The input event types the gate decides (others are ignored: ``decide`` returns [])."""


_REPORTS: frozenset[type[ev.Event]] = frozenset(
    {ev.AgentStarted, ev.TokensConsumed, ev.AgentCompleted, ev.AgentFailed, ev.TerminationRequested}
)
"""Lifecycle reports: rejected with a ``LifecycleRejected`` when they name another tenant's tree."""


def decide(state: PartitionState, event: ev.Event, policy: Policy | None) -> list[ev.Event]:
    """The decisions ``event`` causes under ``policy``; mutates ``state`` accordingly.

    Decisions carry the tenant of the tree they concern, never the one an input claims. An
    input that names another tenant's tree changes nothing: a report is rejected
    (``LifecycleRejected``, ``TENANT_MISMATCH``), a request is denied by its own record.
    """
    handler = _HANDLERS.get(type(event))
    if handler is None:
        return []
    now = to_micros(event.meta.occurred_at)
    known = state.trees.get(event.meta.root_id)
    out = Emitter.caused_by(event, policy.name if policy else "", known.tenant_id if known else None)
    if known is not None and known.tenant_id != event.meta.tenant_id:
        if type(event) in _REPORTS:
            _reject_report(event, policy, out)
        else:
            handler(state, event, policy, now, out)  # the request's own denial; the tree is not touched
        return out.events
    tree = state.live_tree(event.meta.root_id)
    if tree is not None:
        circuit.close_if_due(tree, now, out, policy.version if policy else 0)
    handler(state, event, policy, now, out)
    return out.events


def _reject_report(event: ev.Event, policy: Policy | None, out: Emitter) -> None:
    agent_id = str(getattr(event, "agent_id", ""))
    name = event.avro_name.rsplit(".", 1)[-1]
    out.emit(
        ev.LifecycleRejected,
        agent_id=agent_id,
        report=event.avro_name,
        reported_by_tenant=event.meta.tenant_id,
        reason=ev.DenialReason.TENANT_MISMATCH,
        policy_version=policy.version if policy else 0,
        message=f"{name} about {quote(agent_id)} rejected: the agent tree {quote(event.meta.root_id)} belongs to"
        " another tenant. Nothing was changed.",
    )
