"""Ending agents: completion, failure, requested termination, timeouts, and the cascade below them.

When an agent ends, every active descendant is terminated first, deepest first (ties by
agent id), each ``AgentTerminated(reason=ANCESTOR_ENDED)``; each ended agent's grant is
released from its parent's reservations and what it spent is charged to the parent, so
its unused tokens flow back up. The subtree is then closed to new spawns (only active
agents may spawn). When the root ends, the tree becomes a tombstone.

Timeouts come from :func:`expire`, which the processor calls from a timer with the
current time and which replay calls with the ``occurred_at`` of a recorded tick. Their
outputs have no input event: they are named after the agent that timed out
(``timeout:<agent_id>/<index>``) and carry the tick's time. The same tick forgets the
tombstones of trees that ended more than the retention period before it, each with a
``TreeForgotten`` (``forget:<root_id>/0``), so that replay forgets a tree at the same
point in the log as the gate did.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from datetime import datetime

from agentlog import events as ev
from agentlog.limits import quote
from agentlog.processors import budget, reports
from agentlog.processors.clock import from_micros, iso, to_micros
from agentlog.processors.emitter import Emitter
from agentlog.processors.ids import forget_source, timeout_source
from agentlog.processors.policy import Policy
from agentlog.processors.tree_state import ENDED_TREE_RETENTION_US, AgentState, PartitionState, Status, TreeState

_REPORTED_ENDS: dict[type[ev.Event], Status] = {ev.AgentCompleted: Status.COMPLETED, ev.AgentFailed: Status.FAILED}


def active_descendants(tree: TreeState, agent: AgentState) -> list[AgentState]:
    """The active agents below ``agent``, deepest first, ties by agent id."""
    found: list[AgentState] = []
    stack = [agent]
    while stack:
        for child_id in stack.pop().children or ():
            child = tree.agents[child_id]
            if child.active:  # an ended agent has no active descendants
                found.append(child)
                stack.append(child)
    found.sort(key=lambda a: (-a.depth, a.agent_id))
    return found


def _close(state: PartitionState, tree: TreeState, agent: AgentState, status: Status) -> int:
    """Mark one agent ended and settle with its parent; returns the unused tokens given back."""
    agent.status = status
    state.count_ended(tree)
    if agent.parent is None:
        return 0
    parent = tree.agents[agent.parent]
    parent.tokens_reserved -= agent.token_grant
    budget.add_spent(parent, agent.tokens_spent)
    parent.active_children -= 1
    return max(0, agent.token_grant - agent.tokens_spent)


def end_agent(
    state: PartitionState,
    tree: TreeState,
    agent: AgentState,
    status: Status,
    now: int,
    out: Emitter,
    policy_version: int,
    announce: Callable[[int], object] | None = None,
) -> None:
    """End ``agent`` with its whole active subtree; ``announce(returned_tokens)`` emits the agent's own event."""
    how = status.name.lower().replace("_", " ")
    for descendant in active_descendants(tree, agent):
        returned = _close(state, tree, descendant, Status.TERMINATED)
        out.emit(
            ev.AgentTerminated,
            agent_id=descendant.agent_id,
            reason=ev.TerminationReason.ANCESTOR_ENDED,
            ended_by_agent_id=agent.agent_id,
            returned_tokens=returned,
            policy_version=policy_version,
            message=f"Terminated because ancestor agent {agent.agent_id} {how}. Stop work on this task now.",
        )
    returned = _close(state, tree, agent, status)
    if announce is not None:
        announce(returned)
    if agent.parent is not None:
        budget.check_exhausted(tree.agents[agent.parent], out, policy_version)
    else:
        tree.agents = {}
        tree.seen_requests = tree.denials = None
        tree.open_until = None
        tree.ended_at = now


def decide_start(state: PartitionState, event: ev.AgentStarted, policy: Policy | None, out: Emitter) -> None:
    """An agent reports that it started: ``AgentRunning`` if it is active, else a rejection."""
    found = reports.reported_active_agent(state, event, policy, out)
    if found is None:
        return
    _, agent = found
    interval = policy.limits.heartbeat_interval_ms if policy is not None and event.heartbeat and out.core >= 4 else 0
    if out.core >= 4:  # every accepted start says anew whether heartbeats are promised
        agent.heartbeat_ms = interval * policy.limits.heartbeat_misses if policy is not None and interval > 0 else 0
    if interval <= 0:
        out.fact(
            ev.AgentRunning,
            agent_id=agent.agent_id,
            policy_version=policy.version if policy else 0,
            message=f"Agent {agent.agent_id} is running.",
        )
        return
    assert policy is not None
    timeout = agent.heartbeat_ms
    out.fact(
        ev.AgentRunning,
        agent_id=agent.agent_id,
        heartbeat_interval_ms=interval,
        heartbeat_timeout_ms=timeout,
        policy_version=policy.version,
        message=f"Agent {agent.agent_id} is running: send a heartbeat every {interval} ms; after {timeout} ms"
        " without one it times out.",
    )


def decide_reported_end(
    state: PartitionState, event: ev.AgentCompleted | ev.AgentFailed, policy: Policy | None, now: int, out: Emitter
) -> None:
    """An agent reports that it completed or failed: count its last usage, then end it and its subtree."""
    found = reports.reported_agent(state, event, policy, out)
    if found is None:
        return
    tree, agent = found
    version = policy.version if policy else 0
    tokens = max(event.tokens_used, 0)
    if not agent.active:  # a late report: the tokens were spent all the same
        if tokens:
            budget.charge(tree, agent, tokens, policy, out)
        reports.reject_ended(out, event, policy, agent)
        return
    budget.add_spent(agent, tokens)
    if tokens:
        budget.charged(out, agent, agent, tokens, version)
    ended: dict[str, object]
    if isinstance(event, ev.AgentCompleted):
        how = "completed"
        ended = {"outcome": ev.EndOutcome.COMPLETED, "result_summary": event.result_summary}
        ended["quality_score"] = event.quality_score
    else:
        how = f"failed ({quote(event.error)})"
        ended = {"outcome": ev.EndOutcome.FAILED, "error": event.error, "retryable": event.retryable}

    def announce(returned: int) -> None:
        out.fact(
            ev.AgentEnded,
            agent_id=agent.agent_id,
            **ended,
            tokens_used=agent.tokens_spent,
            returned_tokens=returned,
            policy_version=version,
            message=f"Agent {agent.agent_id} {how}: {agent.tokens_spent} tokens used, {returned} returned.",
        )

    end_agent(state, tree, agent, _REPORTED_ENDS[type(event)], now, out, version, announce)


def decide_termination(
    state: PartitionState, event: ev.TerminationRequested, policy: Policy | None, now: int, out: Emitter
) -> None:
    """Terminate an active agent and its subtree at someone's request; unknown or ended agents are rejected."""
    found = reports.reported_active_agent(state, event, policy, out)
    if found is None:
        return
    tree, agent = found
    refused = _refusal(tree, agent, event.requested_by, policy) if out.core >= 2 else None
    if refused is not None:
        reports.reject(out, event, policy, ev.DenialReason.NOT_AUTHORIZED, refused)
        return
    version = policy.version if policy else 0
    why = f": {quote(event.reason)}" if event.reason else ""

    def announce(returned: int) -> None:
        out.emit(
            ev.AgentTerminated,
            agent_id=agent.agent_id,
            reason=ev.TerminationReason.REQUESTED,
            ended_by_agent_id=None,
            returned_tokens=returned,
            policy_version=version,
            message=f"Terminated at the request of {event.requested_by}{why}. Stop work on this task now.",
        )

    end_agent(state, tree, agent, Status.TERMINATED, now, out, version, announce)


def _refusal(tree: TreeState, agent: AgentState, requester: str, policy: Policy | None) -> str | None:
    """Why ``requester`` may not terminate ``agent``, or None when it may (core version 2).

    The agent itself may; so may an identity the policy names among its operators, and an
    ancestor, if the agent's config lists the ancestor's config in ``terminable_by`` (or
    lists none).
    """
    if requester == agent.agent_id or (policy is not None and requester in policy.limits.operators):
        return None
    ancestor = tree.agents.get(agent.parent) if agent.parent is not None else None
    while ancestor is not None and ancestor.agent_id != requester:
        ancestor = tree.agents.get(ancestor.parent) if ancestor.parent is not None else None
    if ancestor is None:
        return (
            f"{quote(requester)} is neither the agent, one of its ancestors nor an operator of the policy, and only"
            " they may terminate it."
        )
    rule = policy.rule(agent.config) if policy is not None else None
    if rule is not None and rule.terminable_by and ancestor.config not in rule.terminable_by:
        return (
            f"its ancestor {quote(requester)} is a {ancestor.config}, and agents of config {agent.config} may be"
            f" terminated only by ancestors of config {', '.join(rule.terminable_by)}."
        )
    return None


Silent = Mapping[tuple[str, str], int | None]
"""Agents whose heartbeats stopped, by (root id, agent id): when the gate last heard one (µs; None: never)."""


def expire(state: PartitionState, now: datetime, policy: Policy | None, silent: Silent | None = None) -> list[ev.Event]:
    """Time out every active agent whose deadline is at or before ``now``, and every one of ``silent`` that
    promised heartbeats, with their subtrees.

    ``silent`` is what the processor's heartbeat watch found (:mod:`.heartbeats`); replay passes
    the agents that the recorded tick timed out for missed heartbeats. An agent both silent and
    past its deadline times out for its deadline. Agents are taken in the order (root id,
    depth, agent id), so an ancestor that timed out terminates its descendants
    (``ANCESTOR_ENDED``) before their own deadlines are looked at. Mutates ``state``.
    Deterministic in ``(state, now, policy, silent)``.
    """
    now_us = to_micros(now)
    version, name = (policy.version, policy.name) if policy else (0, "")
    due: dict[tuple[str, str], tuple[TreeState, AgentState]] = {}
    while state.deadlines and state.deadlines[0][0] <= now_us:
        deadline, root_id, agent_id = heapq.heappop(state.deadlines)
        tree = state.live_tree(root_id)
        agent = tree.agents.get(agent_id) if tree is not None else None
        if tree is not None and agent is not None and agent.active and agent.deadline == deadline:
            due[root_id, agent_id] = (tree, agent)
    missed: dict[tuple[str, str], int | None] = {}
    for (root_id, agent_id), last in (silent or {}).items():
        tree = state.live_tree(root_id)
        agent = tree.agents.get(agent_id) if tree is not None else None
        if (
            tree is not None
            and agent is not None
            and agent.active
            and agent.heartbeat_ms
            and (root_id, agent_id) not in due
        ):
            due[root_id, agent_id] = (tree, agent)
            missed[root_id, agent_id] = last
    events: list[ev.Event] = []
    for tree, agent in sorted(due.values(), key=lambda pair: (pair[0].root_id, pair[1].depth, pair[1].agent_id)):
        if not agent.active:  # ended above, by an ancestor's timeout
            continue
        out = Emitter(timeout_source(agent.agent_id), now, tree.tenant_id, tree.root_id, policy_name=name)
        key = (tree.root_id, agent.agent_id)
        if key in missed:
            announce = _heartbeat_missed(out, agent, missed[key], agent.heartbeat_ms, now_us, version)
        else:
            deadline = agent.deadline if agent.deadline is not None else now_us
            announce = _deadline_passed(out, agent, from_micros(deadline), version)
        end_agent(state, tree, agent, Status.TIMED_OUT, now_us, out, version, announce)
        events.extend(out.events)
    if len(state.deadlines) > 2 * state.active_total + 1024:
        state.compact_deadlines()
    return events + prune_ended(state, now, policy)


def _deadline_passed(out: Emitter, agent: AgentState, at: datetime, version: int) -> Callable[[int], object]:
    def announce(returned: int) -> None:
        out.emit(
            ev.AgentTimedOut,
            agent_id=agent.agent_id,
            deadline=at,
            returned_tokens=returned,
            policy_version=version,
            message=f"Timed out: the deadline {at:%Y-%m-%d %H:%M:%SZ} has passed. Stop work on this task now.",
        )

    return announce


def _heartbeat_missed(
    out: Emitter, agent: AgentState, last_us: int | None, timeout_ms: int, now_us: int, version: int
) -> Callable[[int], object]:
    heard = f"the last at {iso(last_us)}" if last_us is not None else "none heard"
    # The deadline of the heartbeat: the tick's time when the gate never heard one (it knows no earlier moment).
    deadline = from_micros(last_us + timeout_ms * 1000 if last_us is not None else now_us)

    def announce(returned: int) -> None:
        out.emit(
            ev.AgentTimedOut,
            agent_id=agent.agent_id,
            deadline=deadline,
            returned_tokens=returned,
            cause=ev.TimeoutCause.HEARTBEAT_MISSED,
            last_heartbeat_at=from_micros(last_us) if last_us is not None else None,
            policy_version=version,
            message=f"Timed out: no heartbeat for {timeout_ms} ms ({heard}); its runtime is presumed gone."
            " Stop work on this task now.",
        )

    return announce


def prune_ended(state: PartitionState, now: datetime, policy: Policy | None) -> list[ev.Event]:
    """Forget the tombstones of trees that ended more than the policy's retention before ``now``, one
    ``TreeForgotten`` each (by root id). Called by :func:`expire`; mutates ``state``."""
    retention_us = policy.limits.ended_tree_retention_ms * 1000 if policy else ENDED_TREE_RETENTION_US
    cutoff = to_micros(now) - retention_us
    version, name = (policy.version, policy.name) if policy else (0, "")
    gone = sorted(root for root, tree in state.trees.items() if tree.ended_at is not None and tree.ended_at <= cutoff)
    events: list[ev.Event] = []
    for root in gone:
        tree = state.trees.pop(root)
        assert tree.ended_at is not None
        out = Emitter(forget_source(root), now, tree.tenant_id, root, policy_name=name)
        ended = from_micros(tree.ended_at)
        out.emit(
            ev.TreeForgotten,
            ended_at=ended,
            policy_version=version,
            message=f"Tree {quote(root)} ended at {ended:%Y-%m-%d %H:%M:%SZ}, more than the retention of"
            f" {retention_us // 1_000_000} s ago: it is forgotten, and its root id may be registered again.",
        )
        events.extend(out.events)
    return events
