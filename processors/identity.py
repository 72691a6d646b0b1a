"""Who may sign what: the gate's first check of every input since core version 3.

Every input names an *actor*, the identity it acts as: a spawn request its parent agent, a
root registration the root, a top-up and a termination request their ``requested_by``, a
report the agent it is about. The record's signature (:meth:`agentlog.keyring.Keyring.attribute`)
says which key signed it, and the key says for whom it may sign:

- a tenant key signs only records of its own tenant (``meta.tenant_id``; the gate's tenant
  check then holds that tenant to the tree's), and, when scoped to an agent, only as that
  agent; an actor the policy names an operator needs a key of that principal;
- a platform key (no tenant) signs only termination, freeze and thaw requests of its
  principal, and only when the policy names that principal among its operators (or, for a
  freeze, when the principal is the bus, :data:`.freeze.BUS`).

A signature that is present must verify, whatever the policy. An unsigned record is
accepted unless the policy sets ``limits.require_signatures``. A refused input changes
nothing and is answered by its own denial (``SpawnDenied``, ``RootRejected``,
``TopUpDenied``) or a ``LifecycleRejected``, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentlog import events as ev
from agentlog.keyring import Attribution, KeyEntry
from agentlog.limits import quote
from agentlog.processors import budget, freeze, reports, roots, spawns
from agentlog.processors.checks import Denial
from agentlog.processors.emitter import Emitter
from agentlog.processors.policy import Policy

_R = ev.DenialReason
_OPERATOR_REQUESTS = (ev.TerminationRequested, ev.TreeFreezeRequested, ev.TreeThawRequested)


def actor(event: ev.Event) -> str:
    """The identity ``event`` acts as."""
    if isinstance(event, ev.SpawnRequested):
        return event.parent_agent_id
    if isinstance(
        event, ev.BudgetTopUpRequested | ev.TerminationRequested | ev.TreeFreezeRequested | ev.TreeThawRequested
    ):
        return event.requested_by
    return str(getattr(event, "agent_id", ""))


def refusal(event: ev.Event, attribution: Attribution, policy: Policy | None) -> Denial | None:
    """Why ``event``, signed as ``attribution`` says, may not be decided; None when it may."""
    signer = attribution.signer
    if signer is None:
        if attribution.unsigned and not (policy is not None and policy.limits.require_signatures):
            return None
        detail = attribution.detail
        if attribution.unsigned and policy is not None:
            detail = f"the record is not signed, and policy '{policy.name}' requires signatures."
        return Denial(attribution.reason or _R.BAD_SIGNATURE, detail)
    problem = _scope_problem(event, signer, policy)
    return Denial(_R.SIGNER_NOT_AUTHORIZED, problem) if problem is not None else None


def _scope_problem(event: ev.Event, signer: KeyEntry, policy: Policy | None) -> str | None:
    acting = actor(event)
    operators = policy.limits.operators if policy is not None else []
    key = signer.describe()
    if signer.tenant_id is None:
        if acting == signer.principal and (
            (isinstance(event, _OPERATOR_REQUESTS) and acting in operators)
            or (isinstance(event, ev.TreeFreezeRequested) and acting == freeze.BUS)
        ):
            return None
        return (
            f"platform key {key} signs only termination, freeze and thaw requests of its principal, an operator of"
            f" the policy (and the bus's freeze requests); this record acts as {quote(acting)}."
        )
    if signer.tenant_id != event.meta.tenant_id:
        return f"key {key} may not sign for tenant {quote(event.meta.tenant_id)}."
    if acting in operators and signer.principal != acting:
        return f"key {key} may not act as operator {quote(acting)}; only that operator's key may."
    if signer.agent_id is not None and signer.agent_id != acting:
        return f"key {key} acts only as agent {signer.agent_id}, not as {quote(acting)}."
    return None


_Refuse = Callable[[Emitter, Any, Policy | None, ev.DenialReason, str], None]

_REFUSE: dict[type[ev.Event], _Refuse] = {
    ev.SpawnRequested: spawns.refuse,
    ev.RootAgentRegistered: roots.refuse,
    ev.BudgetTopUpRequested: budget.refuse,
}
"""Requests are answered by their own denial record; reports by a ``LifecycleRejected``."""


def deny(event: ev.Event, denial: Denial, policy: Policy | None, out: Emitter) -> None:
    """Answer ``event`` with its own denial record, changing nothing."""
    refuse = _REFUSE.get(type(event), reports.reject)
    refuse(out, event, policy, denial.reason, denial.message)
