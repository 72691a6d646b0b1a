"""Spawn requests: the checks in order, and the reservation an approval makes.

The checks run in a fixed order and the first that fails decides the reason; the
``checks`` list of the decision holds every numeric comparison made up to that point.
Order: policy present → tree live → same tenant → retried request → frozen (:mod:`.freeze`) → circuit →
request validity →
parent known → parent active → config whitelisted → parent authorised → capabilities →
grant limits → depth → parent not over budget → spawn budget → token budget → parallel
children → tenant quota → platform quota.

An approval reserves the child's token grant from the parent's remaining tokens and
takes ``1 + child spawn budget`` from the parent's spawn budget, for good: spawn budget
is never returned, so a tree can never have held more than root spawn budget + 1 agents.

A retry — a request whose ``request_id`` was already decided — reserves nothing and
counts nothing: it is answered with the original outcome (``repeat`` set), the same
approval and child (found by its id, derived from the request id) or the same denial
reason (remembered with the request), so a caller that retried learns what happened.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

from agentlog import events as ev
from agentlog.processors import circuit, requests
from agentlog.processors.checks import Checks, Denial
from agentlog.processors.clock import from_micros, iso
from agentlog.processors.emitter import Emitter
from agentlog.processors.ids import child_agent_id
from agentlog.processors.policy import Policy
from agentlog.processors.tree_state import AgentState, PartitionState, TreeState

_PREFIX = "Cannot spawn"
_R = ev.DenialReason


class _Repeat(NamedTuple):
    """A retry of a request already decided: the child it created, or the reason it was denied."""

    tree: TreeState
    child: AgentState | None
    reason: ev.DenialReason


class _Approval(NamedTuple):
    child_id: str
    policy: Policy
    tree: TreeState
    parent: AgentState
    rule: ev.ConfigRule


def decide_spawn(
    state: PartitionState, event: ev.SpawnRequested, policy: Policy | None, now: int, out: Emitter
) -> None:
    """Approve or deny a spawn request, mutating ``state``: reservations on approval, bookkeeping on denial."""
    checks = Checks()
    result = _evaluate(state, event, policy, now, checks)
    if isinstance(result, _Repeat):
        _repeat(event, result, policy, out)
    elif isinstance(result, Denial):
        _deny(state, event, policy, now, checks, result, out)
    else:
        _approve(state, event, now, checks, result, out)


def _deny(
    state: PartitionState,
    event: ev.SpawnRequested,
    policy: Policy | None,
    now: int,
    checks: Checks,
    denial: Denial,
    out: Emitter,
) -> None:
    _denied(out, event, denial, policy.version if policy else 0, checks.items)
    tree = state.live_tree(event.meta.root_id)
    if tree is None or event.meta.tenant_id != tree.tenant_id:  # another tenant's request changes nothing
        return
    tree.remember(event.request_id.int, denial.reason)
    if policy is not None:
        circuit.count_denial(tree, denial.reason, now, policy.limits, out, policy.version)


def refuse(out: Emitter, event: ev.SpawnRequested, policy: Policy | None, reason: ev.DenialReason, why: str) -> None:
    """Deny ``event`` without deciding it (its sender may not send it): ``why`` is the sentence; nothing changes."""
    _denied(out, event, Denial(reason, f"{_PREFIX}: {why}"), policy.version if policy else 0)


def _denied(
    out: Emitter,
    event: ev.SpawnRequested,
    denial: Denial,
    version: int,
    checks: list[ev.LimitCheck] | None = None,
    *,
    repeat: bool = False,
) -> None:
    out.emit(
        ev.SpawnDenied,
        request_id=event.request_id,
        parent_agent_id=event.parent_agent_id,
        child_config=event.child_config,
        reason=denial.reason,
        checks=checks or [],
        policy_version=version,
        message=denial.message,
        repeat=repeat,
    )


def _repeat(event: ev.SpawnRequested, repeat: _Repeat, policy: Policy | None, out: Emitter) -> None:
    version = policy.version if policy else 0
    child = repeat.child
    if child is None:
        why = f"{_PREFIX}: request {event.request_id} was already denied ({repeat.reason.value}); that stands."
        _denied(out, event, Denial(repeat.reason, why), version, repeat=True)
        return
    parent = repeat.tree.agents[child.parent] if child.parent is not None else child
    out.emit(
        ev.SpawnApproved,
        request_id=event.request_id,
        parent_agent_id=parent.agent_id,
        child_agent_id=child.agent_id,
        child_config=child.config,
        depth=child.depth,
        granted_token_budget=child.token_grant,
        granted_spawn_budget=child.spawn_budget,
        deadline=from_micros(child.deadline) if child.deadline is not None else None,
        parent_remaining_tokens=parent.remaining_tokens,
        parent_remaining_spawn_budget=parent.spawn_remaining,
        policy_version=version,
        message=(
            f"Already spawned: request {event.request_id} created {child.config} agent {child.agent_id} at depth"
            f" {child.depth} ({child.status.name.lower()}, {child.token_grant} tokens granted);"
            " nothing new was reserved."
        ),
        repeat=True,
    )


def _approve(
    state: PartitionState, event: ev.SpawnRequested, now: int, checks: Checks, approval: _Approval, out: Emitter
) -> None:
    child_id, policy, tree, parent, rule = approval
    tokens, spawns = event.requested_token_budget, event.requested_spawn_budget
    child = AgentState(
        agent_id=child_id,
        parent=parent.agent_id,
        depth=parent.depth + 1,
        config=sys.intern(rule.name),
        token_grant=tokens,
        spawn_budget=spawns,
        spawn_remaining=spawns,
        deadline=requests.deadline_for(now, event.max_runtime_ms, event.task, policy.limits, parent.deadline),
    )
    tree.agents[child.agent_id] = child
    if parent.children is None:
        parent.children = []
    parent.children.append(child.agent_id)
    parent.tokens_reserved += tokens
    parent.spawn_remaining -= 1 + spawns
    parent.active_children += 1
    state.count_started(tree, child)
    out.emit(
        ev.SpawnApproved,
        request_id=event.request_id,
        parent_agent_id=parent.agent_id,
        child_agent_id=child.agent_id,
        child_config=rule.name,
        depth=child.depth,
        granted_token_budget=tokens,
        granted_spawn_budget=spawns,
        deadline=from_micros(child.deadline) if child.deadline is not None else None,
        parent_remaining_tokens=parent.remaining_tokens,
        parent_remaining_spawn_budget=parent.spawn_remaining,
        checks=checks.items,
        policy_version=policy.version,
        message=(
            f"Spawned {rule.name} agent {child.agent_id} at depth {child.depth} with {tokens} tokens and spawn "
            f"budget {spawns}; you have {parent.remaining_tokens} tokens and spawn budget "
            f"{parent.spawn_remaining} left."
        ),
    )


def _stopped(tree: TreeState, now: int) -> Denial | None:
    """The denial of every spawn while the tree is frozen (:mod:`.freeze`) or its circuit is open."""
    if tree.frozen_by is not None:
        return Denial(
            _R.TREE_FROZEN,
            f"{_PREFIX}: spawning in this agent tree is frozen (by {tree.frozen_by}) until an operator lifts it. "
            "Continue with the agents you have.",
        )
    if tree.open_until is not None and circuit.is_open(tree, now):
        return Denial(
            _R.CIRCUIT_OPEN,
            f"{_PREFIX}: this agent tree is frozen after too many denied spawns, until {iso(tree.open_until)}. "
            "Continue with the agents you have.",
        )
    return None


def _evaluate(
    state: PartitionState, event: ev.SpawnRequested, policy: Policy | None, now: int, checks: Checks
) -> Denial | _Repeat | _Approval:
    """The first denial that applies, the original outcome of a retry, or what an approval needs."""
    if policy is None:
        return Denial(_R.NO_POLICY, f"{_PREFIX}: no spawn policy is in force, so every spawn is denied.")
    tree = state.trees.get(event.meta.root_id)
    if tree is None:
        return Denial(_R.UNKNOWN_PARENT, f"{_PREFIX}: the agent tree {event.meta.root_id} is not known.")
    if event.meta.tenant_id != tree.tenant_id:  # before anything that would tell another tenant about the tree
        return Denial(_R.TENANT_MISMATCH, f"{_PREFIX}: the agent tree {tree.root_id} belongs to another tenant.")
    if tree.ended_at is not None:
        return Denial(_R.PARENT_NOT_ACTIVE, f"{_PREFIX}: the agent tree {tree.root_id} has ended.")
    child_id = child_agent_id(event.request_id)
    created = tree.agents.get(child_id)
    if created is not None:
        return _Repeat(tree, created, _R.UNKNOWN)
    if tree.has_seen(event.request_id.int):
        return _Repeat(tree, None, tree.outcome_of(event.request_id.int) or _R.DUPLICATE_REQUEST)
    stopped = _stopped(tree, now)
    if stopped is not None:
        return stopped
    invalid = requests.invalid_request(
        _PREFIX, event.requested_token_budget, event.requested_spawn_budget, event.max_runtime_ms, event.task, now
    )
    if invalid is not None:
        return invalid
    if event.parent_agent_id == child_id:
        return Denial(_R.INVALID_REQUEST, f"{_PREFIX}: an agent cannot be its own parent.")
    parent = tree.agents.get(event.parent_agent_id)
    if parent is None:
        return Denial(_R.UNKNOWN_PARENT, f"{_PREFIX}: agent {event.parent_agent_id} is not known in this tree.")
    if not parent.live_at(now):
        how = "has passed its deadline" if parent.active else f"has ended ({parent.status.name.lower()})"
        return Denial(_R.PARENT_NOT_ACTIVE, f"{_PREFIX}: agent {parent.agent_id} {how}; it may not spawn.")
    rule = _authority(event, policy, checks, parent)
    if isinstance(rule, Denial):
        return rule
    return _capacity(state, event, checks, _Approval(child_id, policy, tree, parent, rule))


def _authority(event: ev.SpawnRequested, policy: Policy, checks: Checks, parent: AgentState) -> Denial | ev.ConfigRule:
    """Whitelist, who may spawn whom, capabilities and grant limits; the child's rule when they pass."""
    rule = policy.rule(event.child_config)
    if rule is None:
        return Denial(
            _R.CONFIG_NOT_WHITELISTED,
            f"{_PREFIX}: config '{event.child_config}' is not in policy '{policy.name}' "
            f"(allowed: {', '.join(policy.config_names)}).",
        )
    parent_rule = policy.rule(parent.config)
    if parent_rule is None or not parent_rule.may_spawn:
        why = "is no longer in the policy" if parent_rule is None else "may not spawn children"
        return Denial(
            _R.NOT_AUTHORIZED, f"{_PREFIX}: agents of config '{parent.config}' {why}. Handle this sub-task directly."
        )
    if parent.config not in rule.spawnable_by:
        allowed = ", ".join(rule.spawnable_by) or "none (root only)"
        return Denial(
            _R.NOT_AUTHORIZED,
            f"{_PREFIX}: config '{parent.config}' may not spawn '{rule.name}' (allowed parents: {allowed}).",
        )
    return (
        requests.forbidden_capabilities(_PREFIX, checks, rule, event.capabilities)
        or requests.grant_limits(_PREFIX, checks, rule, event.requested_token_budget, event.requested_spawn_budget)
        or rule
    )


def _capacity(
    state: PartitionState, event: ev.SpawnRequested, checks: Checks, approval: _Approval
) -> Denial | _Approval:
    """Depth, budgets and concurrency; the approval when they pass."""
    limits, parent = approval.policy.limits, approval.parent
    if not checks.within("max_depth", limits.max_depth, parent.depth + 1):
        return Denial(
            _R.DEPTH_EXCEEDED,
            f"{_PREFIX}: maximum depth {limits.max_depth} reached. Handle this sub-task directly.",
        )
    if parent.exhausted:
        checks.within("parent_tokens_spent", parent.token_grant, parent.tokens_spent)
        return Denial(
            _R.TOKEN_BUDGET_EXHAUSTED,
            f"{_PREFIX}: your token budget is exhausted ({parent.tokens_spent} used of {parent.token_grant}). "
            "Request a top-up first.",
        )
    cost = 1 + event.requested_spawn_budget
    if not checks.within("parent_spawn_budget", parent.spawn_remaining, cost):
        return Denial(
            _R.SPAWN_BUDGET_EXHAUSTED,
            f"{_PREFIX}: this child costs spawn budget {cost} but you have {parent.spawn_remaining} left. "
            "Handle this sub-task directly or ask for a child with a smaller spawn budget.",
        )
    remaining = parent.remaining_tokens
    if not checks.within("parent_remaining_tokens", remaining, event.requested_token_budget):
        return Denial(
            _R.TOKEN_BUDGET_EXHAUSTED,
            f"{_PREFIX}: {event.requested_token_budget} tokens requested but you have {max(remaining, 0)} left. "
            "Ask for fewer tokens or request a top-up.",
        )
    if not checks.within("max_parallel_children", limits.max_parallel_children, parent.active_children + 1):
        return Denial(
            _R.PARENT_CONCURRENCY,
            f"{_PREFIX}: you already have {parent.active_children} active children "
            f"(limit {limits.max_parallel_children}). Wait for one to finish.",
        )
    return requests.quotas(_PREFIX, checks, state, approval.tree.tenant_id, limits) or approval
