"""Root registration: admitting a new agent tree (``RootAdmitted``) or rejecting it (``RootRejected``).

Any whitelisted config may be a root, within its own grant limits (``spawnable_by: []``
marks a config that may exist *only* as a root). The root's grants are the whole tree's
budgets. A root id already in use, or used by a tree that ended within the retention
period, is rejected as a duplicate — unless it repeats the registration that created the
live tree (same tenant, config and spawn budget): that retry is answered with the original
admission, ``repeat`` set.
"""

from __future__ import annotations

import sys

from agentlog import events as ev
from agentlog.processors import requests
from agentlog.processors.checks import Checks, Denial
from agentlog.processors.clock import from_micros
from agentlog.processors.emitter import Emitter
from agentlog.processors.policy import Policy
from agentlog.processors.tree_state import AgentState, PartitionState, TreeState

_PREFIX = "Cannot register the root agent"


def decide_root(
    state: PartitionState, event: ev.RootAgentRegistered, policy: Policy | None, now: int, out: Emitter
) -> None:
    """Admit or reject a root registration, mutating ``state`` when admitted."""
    checks = Checks()
    if policy is None:
        no_policy = f"{_PREFIX}: no spawn policy is in force, so every request is denied."
        _reject(event, Denial(ev.DenialReason.NO_POLICY, no_policy), checks, 0, out)
        return
    existing = state.live_tree(event.agent_id)
    if existing is not None and _is_retry(existing, event):
        _repeat(existing, policy.version, out)
        return
    result = _evaluate(state, event, policy, now, checks, out.core)
    if isinstance(result, Denial):
        _reject(event, result, checks, policy.version, out)
        return
    rule = result
    root_id = event.meta.root_id
    tree = TreeState(root_id=root_id, tenant_id=sys.intern(event.meta.tenant_id))
    root = AgentState(
        agent_id=root_id,
        parent=None,
        depth=0,
        config=sys.intern(rule.name),
        token_grant=event.token_budget,
        spawn_budget=event.spawn_budget,
        spawn_remaining=event.spawn_budget,
        deadline=requests.deadline_for(now, event.max_runtime_ms, event.task, policy.limits, None),
    )
    tree.agents[root_id] = root
    state.trees.pop(root_id, None)  # an expired tombstone of an earlier tree with this id
    state.trees[root_id] = tree
    state.count_started(tree, root)
    out.emit(
        ev.RootAdmitted,
        agent_id=root_id,
        config=rule.name,
        token_budget=root.token_grant,
        spawn_budget=root.spawn_budget,
        deadline=from_micros(root.deadline) if root.deadline is not None else None,
        checks=checks.items,
        policy_version=policy.version,
        message=(
            f"Registered root {rule.name} agent {root_id} with {root.token_grant} tokens and spawn budget "
            f"{root.spawn_budget} for the whole tree."
        ),
    )


def _is_retry(tree: TreeState, event: ev.RootAgentRegistered) -> bool:
    """Whether a registration of a live root id repeats the one that created it (same tenant, config, budget)."""
    root = tree.root
    return (
        root is not None
        and event.agent_id == event.meta.root_id
        and tree.tenant_id == event.meta.tenant_id
        and root.config == event.config
        and root.spawn_budget == event.spawn_budget
    )


def _repeat(tree: TreeState, policy_version: int, out: Emitter) -> None:
    """Answer a retried registration with the original admission; nothing is registered twice."""
    root = tree.root
    assert root is not None
    out.emit(
        ev.RootAdmitted,
        agent_id=root.agent_id,
        config=root.config,
        token_budget=root.token_grant,
        spawn_budget=root.spawn_budget,
        deadline=from_micros(root.deadline) if root.deadline is not None else None,
        policy_version=policy_version,
        message=(
            f"Already registered: root {root.config} agent {root.agent_id} was admitted before "
            f"({root.status.name.lower()}, {root.token_grant} tokens granted); nothing was registered again."
        ),
        repeat=True,
    )


def refuse(
    out: Emitter, event: ev.RootAgentRegistered, policy: Policy | None, reason: ev.DenialReason, why: str
) -> None:
    """Reject ``event`` without deciding it (its sender may not send it): ``why`` is the sentence; nothing changes."""
    _reject(event, Denial(reason, f"{_PREFIX}: {why}"), Checks(), policy.version if policy else 0, out)


def _reject(event: ev.RootAgentRegistered, denial: Denial, checks: Checks, policy_version: int, out: Emitter) -> None:
    out.emit(
        ev.RootRejected,
        agent_id=event.agent_id,
        config=event.config,
        reason=denial.reason,
        checks=checks.items,
        policy_version=policy_version,
        message=denial.message,
    )


def _evaluate(
    state: PartitionState, event: ev.RootAgentRegistered, policy: Policy, now: int, checks: Checks, core: int
) -> Denial | ev.ConfigRule:
    """The first denial that applies, or the root's config rule when every check passes.

    Since core version 2, a root id held by another tenant's tree (live or ended) is denied
    ``TENANT_MISMATCH``, saying nothing about that tree; and under ``limits.tenant_root_prefix``
    a root id must begin with ``<tenant>/``, so that no tenant can take another's root id,
    not even one an ended tree no longer holds.
    """
    if not event.agent_id or event.agent_id != event.meta.root_id:
        return Denial(
            ev.DenialReason.INVALID_REQUEST,
            f"{_PREFIX}: agent_id ({event.agent_id!r}) must equal meta.root_id ({event.meta.root_id!r}).",
        )
    invalid = requests.invalid_request(
        _PREFIX, event.token_budget, event.spawn_budget, event.max_runtime_ms, event.task, now
    )
    if invalid is not None:
        return invalid
    prefix = f"{event.meta.tenant_id}/"
    if core >= 2 and policy.limits.tenant_root_prefix and not event.agent_id.startswith(prefix):
        return Denial(
            ev.DenialReason.INVALID_REQUEST,
            f"{_PREFIX}: policy '{policy.name}' requires root ids of tenant {event.meta.tenant_id} to begin with"
            f" {prefix!r}; got {event.agent_id!r}.",
        )
    existing = state.trees.get(event.agent_id)
    if existing is not None and core >= 2 and existing.tenant_id != event.meta.tenant_id:
        return Denial(
            ev.DenialReason.TENANT_MISMATCH, f"{_PREFIX}: agent id {event.agent_id} belongs to another tenant."
        )
    if existing is not None:  # an ended tree holds its id until a tick forgets it (TreeForgotten)
        status = "is already registered" if existing.ended_at is None else "belonged to a tree that has ended"
        return Denial(ev.DenialReason.DUPLICATE_REQUEST, f"{_PREFIX}: agent id {event.agent_id} {status}.")
    rule = policy.rule(event.config)
    if rule is None:
        return Denial(
            ev.DenialReason.CONFIG_NOT_WHITELISTED,
            f"{_PREFIX}: config '{event.config}' is not in policy '{policy.name}' "
            f"(allowed: {', '.join(policy.config_names)}).",
        )
    return (
        requests.forbidden_capabilities(_PREFIX, checks, rule, event.capabilities)
        or requests.grant_limits(_PREFIX, checks, rule, event.token_budget, event.spawn_budget)
        or requests.quotas(_PREFIX, checks, state, event.meta.tenant_id, policy.limits)
        or rule
    )
