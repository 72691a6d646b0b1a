"""Freezing a tree's spawning, and lifting the freeze (gate core version 5).

A ``TreeFreezeRequested`` — the consultation bus's, when it accepts a CRITICAL alert under a
policy with ``limits.freeze_on_critical_alert``, or an operator's, or an active agent's of the
tree — freezes a live tree: ``TreeFrozen``, and from then on every spawn in it is denied
``TREE_FROZEN`` (running agents go on; they may finish, report and be terminated). Only an
operator the policy names lifts it, with a ``TreeThawRequested``: ``TreeThawed``. Anything
else is rejected with a ``LifecycleRejected`` naming the tree and changes nothing: an unknown
or ended tree, another tenant's, a freeze of a frozen tree (``TREE_FROZEN``), a thaw of a tree
that is not frozen (``NOT_FROZEN``), a requester without the right (``NOT_AN_OPERATOR``).
"""

from __future__ import annotations

from agentlog import events as ev
from agentlog.limits import quote
from agentlog.processors.emitter import Emitter
from agentlog.processors.policy import Policy
from agentlog.processors.tree_state import PartitionState, TreeState

BUS = "agentlog.bus"
"""The consultation bus's identity as a requester (its records' ``meta.producer``)."""

_R = ev.DenialReason


def decide_freeze(
    state: PartitionState, event: ev.TreeFreezeRequested, policy: Policy | None, _now: int, out: Emitter
) -> None:
    """Freeze the tree's spawning, or reject the request."""
    tree = _live_tree(state, event, policy, out)
    if tree is None:
        return
    version = policy.version if policy else 0
    operators = policy.limits.operators if policy else []
    requester = event.requested_by
    agent = tree.agents.get(requester)
    if requester != BUS and requester not in operators and not (agent is not None and agent.active):
        why = f"{quote(requester)} is neither an operator of the policy, the bus nor an active agent of the tree."
        _reject(out, event, policy, _R.NOT_AN_OPERATOR, why)
        return
    if tree.frozen_by is not None:
        _reject(out, event, policy, _R.TREE_FROZEN, f"the tree is already frozen (by {quote(tree.frozen_by)}).")
        return
    tree.frozen_by = requester
    cause = f" after a CRITICAL alert of {quote(event.alerted_by or '')}" if event.alert_id is not None else ""
    why = f": {quote(event.reason)}" if event.reason else ""
    out.emit(
        ev.TreeFrozen,
        requested_by=requester,
        alert_id=event.alert_id,
        policy_version=version,
        message=(
            f"Spawning in agent tree {quote(tree.root_id)} is frozen at the request of {quote(requester)}{cause}{why}."
            " Every spawn is denied until an operator lifts the freeze; running agents go on."
        ),
    )


def decide_thaw(
    state: PartitionState, event: ev.TreeThawRequested, policy: Policy | None, _now: int, out: Emitter
) -> None:
    """Lift the tree's freeze at an operator's request, or reject the request."""
    tree = _live_tree(state, event, policy, out)
    if tree is None:
        return
    if policy is None or event.requested_by not in policy.limits.operators:
        why = f"{quote(event.requested_by)} is not an operator of the policy; only an operator may lift a freeze."
        _reject(out, event, policy, _R.NOT_AN_OPERATOR, why)
        return
    if tree.frozen_by is None:
        _reject(out, event, policy, _R.NOT_FROZEN, "the tree is not frozen.")
        return
    tree.frozen_by = None
    why = f": {quote(event.reason)}" if event.reason else ""
    out.emit(
        ev.TreeThawed,
        requested_by=event.requested_by,
        policy_version=policy.version,
        message=f"Operator {quote(event.requested_by)} lifted the freeze of agent tree {quote(tree.root_id)}{why}."
        " Its agents may spawn again.",
    )


def _live_tree(
    state: PartitionState, event: ev.TreeFreezeRequested | ev.TreeThawRequested, policy: Policy | None, out: Emitter
) -> TreeState | None:
    root = event.meta.root_id
    known = state.trees.get(root)
    if known is not None and known.tenant_id != event.meta.tenant_id:
        _reject(out, event, policy, _R.TENANT_MISMATCH, f"the agent tree {quote(root)} belongs to another tenant.")
        return None
    tree = state.live_tree(root)
    if tree is None:
        reason, what = (_R.AGENT_NOT_ACTIVE, "has ended") if known is not None else (_R.UNKNOWN_AGENT, "is not known")
        _reject(out, event, policy, reason, f"the agent tree {quote(root)} {what}.")
    return tree


def _reject(
    out: Emitter,
    event: ev.TreeFreezeRequested | ev.TreeThawRequested,
    policy: Policy | None,
    reason: ev.DenialReason,
    why: str,
) -> None:
    name = event.avro_name.rsplit(".", 1)[-1]
    out.emit(
        ev.LifecycleRejected,
        agent_id=event.meta.root_id,
        report=event.avro_name,
        reported_by_tenant=event.meta.tenant_id,
        reason=reason,
        policy_version=policy.version if policy else 0,
        message=f"{name} for {quote(event.meta.root_id)} by {quote(event.requested_by)} rejected: {why}"
        " Nothing was changed.",
    )
