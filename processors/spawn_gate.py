"""The spawn gate: the pure decision function the processor and replay both run.

``decide(state, event, policy)`` takes one input event (a spawn directive or a lifecycle
report), **mutates** ``state`` (the partition's :class:`PartitionState`, owned by the
caller; mutation in place keeps a decision cheap) and returns the decisions, in order.
``expire(state, now, policy, silent)`` times out agents past their deadline and agents whose
heartbeats stopped (``silent``, from the processor's heartbeat watch); the processor calls
it from a timer, replay at the ``occurred_at`` of each recorded ``AgentTimedOut``, with the
agents that tick timed out for missed heartbeats as ``silent``.

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
``BudgetToppedUp``/``TopUpDenied``, since core version 5 ``TreeFreezeRequested`` and
``TreeThawRequested`` by ``TreeFrozen``/``TreeThawed`` or a ``LifecycleRejected`` (:mod:`.freeze`).
Since core version 3 every input is first checked against
who signed it (:mod:`.identity`). Lifecycle reports are answered by what the gate made of
them (core version 2): a start by ``AgentRunning``, usage by ``TokensCharged`` (late usage
is charged to the nearest active ancestor), a completion or failure by ``AgentEnded``, a
termination request by ``AgentTerminated``; a report about an unknown or already ended
agent, or about another tenant's tree, is rejected (``LifecycleRejected``) and changes
nothing (but the tokens a late end reports, charged all the same).

The first event of a tree at or after its circuit's ``open_until`` is preceded by
``CircuitClosed``. ``decide`` changes only the tree of ``event.meta.root_id`` (and the
partition's counters and deadline heap); ``expire`` changes the trees named by the
``root_id`` of its outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentlog import events as ev
from agentlog.keyring import UNSIGNED, Attribution
from agentlog.limits import quote
from agentlog.processors import budget, cascade, circuit, freeze, identity, reports, roots, spawns
from agentlog.processors.cascade import expire
from agentlog.processors.clock import to_micros
from agentlog.processors.emitter import Emitter
from agentlog.processors.policy import Policy
from agentlog.processors.tree_state import PartitionState
from agentlog.topics import LIFECYCLE_REPORTS

__all__ = ["CORE_VERSION", "HANDLED", "decide", "expire"]

CORE_VERSION = 5
"""The version of the gate's decision behaviour that this code runs: 1 left accepted lifecycle reports
unanswered, 2 answers every report (``AgentRunning``, ``TokensCharged``, ``AgentEnded`` or a rejection),
3 checks who signed each input first (:mod:`.identity`), 4 takes heartbeat promises (a start with
``heartbeat`` is answered with the interval, and ``expire`` times out agents whose heartbeats stopped) and
carries a usage report's partial result to its charge, 5 freezes and thaws trees (:mod:`.freeze`; a frozen
tree's spawns are denied ``TREE_FROZEN``)."""

_Handler = Callable[[PartitionState, Any, Policy | None, int, Emitter], None]

_HANDLERS: dict[type[ev.Event], _Handler] = {
    ev.RootAgentRegistered: roots.decide_root,
    ev.SpawnRequested: spawns.decide_spawn,
    ev.TokensConsumed: lambda state, event, policy, _now, out: budget.decide_usage(state, event, policy, out),
    ev.BudgetTopUpRequested: budget.decide_top_up,
    ev.AgentCompleted: cascade.decide_reported_end,
    ev.AgentFailed: cascade.decide_reported_end,
    ev.TerminationRequested: cascade.decide_termination,
    ev.AgentStarted: lambda state, event, policy, _now, out: cascade.decide_start(state, event, policy, out),
    ev.TreeFreezeRequested: freeze.decide_freeze,
    ev.TreeThawRequested: freeze.decide_thaw,
}
_SINCE: dict[type[ev.Event], int] = {ev.TreeFreezeRequested: 5, ev.TreeThawRequested: 5}
"""Inputs a core before this version ignores."""

HANDLED: frozenset[type[ev.Event]] = frozenset(_HANDLERS)
"""The input event types the gate decides (others are ignored: ``decide`` returns [])."""


_REPORTS: frozenset[type[ev.Event]] = frozenset(LIFECYCLE_REPORTS)
"""Lifecycle reports: rejected with a ``LifecycleRejected`` when they name another tenant's tree."""


def decide(
    state: PartitionState,
    event: ev.Event,
    policy: Policy | None,
    core: int = CORE_VERSION,
    attribution: Attribution = UNSIGNED,
) -> list[ev.Event]:
    """The decisions ``event`` causes under ``policy``; mutates ``state`` accordingly.

    ``attribution`` says who signed the input record (:meth:`agentlog.keyring.Keyring.attribute`);
    since core version 3 an input its signer may not send, or that the policy requires to be
    signed, is refused before any other check (:mod:`.identity`) and changes nothing.

    ``core`` is the version of this function's behaviour that decided the input (recorded on
    every output, :data:`~agentlog.processors.input_merge.CORE_HEADER`); replay passes the recorded one. Version 1 left
    accepted reports unanswered; version 2 answers every report (:mod:`.reports`).

    Decisions carry the tenant of the tree they concern, never the one an input claims. An
    input that names another tenant's tree changes nothing: a report is rejected
    (``LifecycleRejected``, ``TENANT_MISMATCH``), a request is denied by its own record.
    """
    handler = _HANDLERS.get(type(event))
    if handler is None or core < _SINCE.get(type(event), 0):
        return []
    now = to_micros(event.meta.occurred_at)
    known = state.trees.get(event.meta.root_id)
    out = Emitter.caused_by(event, policy.name if policy else "", known.tenant_id if known else None)
    out.core = core
    if core >= 3:
        refused = identity.refusal(event, attribution, policy)
        if refused is not None:
            identity.deny(event, refused, policy, out)
            return out.events
    if known is not None and known.tenant_id != event.meta.tenant_id:
        if type(event) in _REPORTS:
            why = f"the agent tree {quote(event.meta.root_id)} belongs to another tenant."
            reports.reject(out, event, policy, ev.DenialReason.TENANT_MISMATCH, why)
        else:
            handler(state, event, policy, now, out)  # the request's own denial; the tree is not touched
        return out.events
    tree = state.live_tree(event.meta.root_id)
    if tree is not None:
        circuit.close_if_due(tree, now, out, policy.version if policy else 0)
    handler(state, event, policy, now, out)
    return out.events
