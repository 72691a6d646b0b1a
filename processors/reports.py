"""Answers to lifecycle reports that change nothing: ``LifecycleRejected``, with a reason and a sentence.

Since core version 2 the gate answers every lifecycle report (usage, start, completion,
failure, termination request): with its accepted fact (``TokensCharged``, ``AgentRunning``,
``AgentEnded``, ``AgentTerminated``) or with a rejection, so that the SDK, the projections
and later processors react to what the gate decided, never to a raw, unchecked report.
A report about another tenant's tree has been rejected since version 1.
"""

from __future__ import annotations

from agentlog import events as ev
from agentlog.limits import quote
from agentlog.processors.emitter import Emitter
from agentlog.processors.policy import Policy
from agentlog.processors.tree_state import AgentState, PartitionState, TreeState

Report = ev.AgentStarted | ev.TokensConsumed | ev.AgentCompleted | ev.AgentFailed | ev.TerminationRequested


def reject(out: Emitter, event: ev.Event, policy: Policy | None, reason: ev.DenialReason, why: str) -> None:
    """Answer ``event`` with a ``LifecycleRejected`` saying ``why`` (a sentence about the tree or the agent)."""
    agent_id = str(getattr(event, "agent_id", ""))
    name = event.avro_name.rsplit(".", 1)[-1]
    emit = out.emit if reason is ev.DenialReason.TENANT_MISMATCH else out.fact
    emit(
        ev.LifecycleRejected,
        agent_id=agent_id,
        report=event.avro_name,
        reported_by_tenant=event.meta.tenant_id,
        reason=reason,
        policy_version=policy.version if policy else 0,
        message=f"{name} about {quote(agent_id)} rejected: {why} Nothing was changed.",
    )


def reported_agent(
    state: PartitionState, event: Report, policy: Policy | None, out: Emitter
) -> tuple[TreeState, AgentState] | None:
    """The live tree and the agent a report names; None, with the report rejected, when either is unknown or
    the tree has ended (whether the agent itself is still active is the caller's question)."""
    root = event.meta.root_id
    tree = state.live_tree(root)
    if tree is None:
        if root in state.trees:
            reject(out, event, policy, ev.DenialReason.AGENT_NOT_ACTIVE, f"the agent tree {quote(root)} has ended.")
        else:
            reject(out, event, policy, ev.DenialReason.UNKNOWN_AGENT, f"no agent tree {quote(root)} is known.")
        return None
    agent = tree.agents.get(event.agent_id)
    if agent is None:
        reject(out, event, policy, ev.DenialReason.UNKNOWN_AGENT, f"the agent tree {quote(root)} has no such agent.")
        return None
    return tree, agent


def reject_ended(out: Emitter, event: Report, policy: Policy | None, agent: AgentState) -> None:
    """Reject a report about an agent that already ended."""
    how = agent.status.name.lower().replace("_", " ")
    reject(out, event, policy, ev.DenialReason.AGENT_NOT_ACTIVE, f"the agent already ended ({how}).")


def reported_active_agent(
    state: PartitionState, event: Report, policy: Policy | None, out: Emitter
) -> tuple[TreeState, AgentState] | None:
    """As :func:`reported_agent`, and the agent must still be active (else the report is rejected)."""
    found = reported_agent(state, event, policy, out)
    if found is not None and not found[1].active:
        reject_ended(out, event, policy, found[1])
        return None
    return found
