"""Synthetic agent forests: the events of spawning, running and ending agent trees.

Deterministic for a given seed (ids, times and numbers), so that tests can compare
projections of the same workload and benchmarks can build a forest of any size.
Used by the projection tests, ``bench/projector.py`` and demos.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agentlog import events as ev

EPOCH = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_IDS = uuid.UUID("0b7e4f7c-4d1e-4b8a-9a51-2a3c1f0e9d10")


@dataclass(frozen=True)
class ForestShape:
    """How large a forest is."""

    roots: int = 10
    fanout: int = 3
    """Children per agent above the leaves."""
    depth: int = 2
    """Depth of the leaves (the root is 0)."""
    tokens_per_agent: int = 2
    """TokensConsumed events per agent."""
    denied_per_agent: int = 1
    """SpawnDenied events under each agent that has children."""
    handoffs: bool = True
    """A Handoff from each parent to its first child."""
    lifecycle: bool = True
    """AgentStarted, TokensConsumed and AgentCompleted/AgentFailed/AgentTerminated per agent, each report
    followed by the spawn gate's answer (AgentRunning, TokensCharged, AgentEnded)."""
    failures: bool = True
    """One agent in seven fails and one in seven is terminated (else every agent completes)."""


class _Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def tick(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def forest(shape: ForestShape, *, seed: int = 0, tenant: str = "tenant-a", start: datetime = EPOCH) -> list[ev.Event]:
    """Every event of ``shape.roots`` trees, tree after tree, each in causal order."""
    clock = _Clock(start)
    return [event for r in range(shape.roots) for event in tree(f"root-{seed}-{r}", shape, clock, tenant, seed)]


def tree(root: str, shape: ForestShape, clock: _Clock, tenant: str, seed: int = 0) -> Iterator[ev.Event]:
    """The events of one tree: registration and admission, spawns (approved and denied), handoffs, lifecycle."""

    def meta() -> ev.Meta:
        at = clock.tick()
        return ev.Meta(
            event_id=uuid.uuid5(_IDS, f"{seed}:{root}:{at.isoformat()}"),
            occurred_at=at,
            tenant_id=tenant,
            root_id=root,
            producer="projections.workload",
        )

    budget = 1_000 * (shape.fanout + 1) ** (shape.depth + 1)
    yield ev.RootAgentRegistered(meta=meta(), agent_id=root, config="planner", token_budget=budget, spawn_budget=100)
    yield ev.RootAdmitted(
        meta=meta(),
        agent_id=root,
        config="planner",
        token_budget=budget,
        spawn_budget=100,
        policy_version=1,
        message="admitted",
    )
    frontier = [(root, 0, budget)]
    agents = [root]
    grants = {root: budget}
    while frontier:
        parent, depth, tokens = frontier.pop(0)
        if depth >= shape.depth:
            continue
        grant = tokens // (shape.fanout + 1)
        for i in range(shape.fanout):
            child = f"{parent}.{i}"
            request = uuid.uuid5(_IDS, f"{seed}:{child}")
            yield ev.SpawnApproved(
                meta=meta(),
                request_id=request,
                parent_agent_id=parent,
                child_agent_id=child,
                child_config="worker",
                depth=depth + 1,
                granted_token_budget=grant,
                granted_spawn_budget=shape.fanout,
                parent_remaining_tokens=tokens - grant * (i + 1),
                parent_remaining_spawn_budget=shape.fanout - i - 1,
                checks=[ev.LimitCheck(name="max_depth", limit=shape.depth, value=depth + 1, passed=True)],
                policy_version=1,
                message="approved",
            )
            frontier.append((child, depth + 1, grant))
            agents.append(child)
            grants[child] = grant
            if shape.handoffs and i == 0:
                yield ev.Handoff(
                    meta=meta(),
                    message_id=uuid.uuid5(_IDS, f"{seed}:handoff:{child}"),
                    from_agent_id=parent,
                    to_agent_id=child,
                    task=ev.TaskSpec(title=f"part of {parent}"),
                )
        for d in range(shape.denied_per_agent):
            yield ev.SpawnDenied(
                meta=meta(),
                request_id=uuid.uuid5(_IDS, f"{seed}:{parent}:denied:{d}"),
                parent_agent_id=parent,
                child_config="worker",
                reason=ev.DenialReason.DEPTH_EXCEEDED if d % 2 == 0 else ev.DenialReason.SPAWN_BUDGET_EXHAUSTED,
                checks=[ev.LimitCheck(name="max_depth", limit=shape.depth, value=shape.depth + 1, passed=False)],
                policy_version=1,
                message=f"Cannot spawn: maximum depth {shape.depth} reached.",
            )
    if not shape.lifecycle:
        return
    for n, agent in enumerate(agents):
        # Each report is followed by the gate's answer, the fact the lineage shows.
        yield ev.AgentStarted(meta=meta(), agent_id=agent)
        yield ev.AgentRunning(meta=meta(), agent_id=agent, policy_version=1, message="running")
        used = 0
        for t in range(shape.tokens_per_agent):
            yield ev.TokensConsumed(meta=meta(), agent_id=agent, tokens=10 + t)
            used += 10 + t
            yield ev.TokensCharged(
                meta=meta(),
                agent_id=agent,
                charged_agent_id=agent,
                tokens=10 + t,
                tokens_used=used,
                remaining_tokens=grants[agent] - used,
                policy_version=1,
                message="charged",
            )
        if shape.failures and n % 7 == 5:
            yield ev.AgentTerminated(
                meta=meta(),
                agent_id=agent,
                reason=ev.TerminationReason.REQUESTED,
                returned_tokens=5,
                policy_version=1,
                message="terminated on request",
            )
            continue
        failed = shape.failures and n % 7 == 3
        if failed:
            yield ev.AgentFailed(meta=meta(), agent_id=agent, error="tool crashed")
        else:
            yield ev.AgentCompleted(meta=meta(), agent_id=agent, result_summary="done")
        yield ev.AgentEnded(
            meta=meta(),
            agent_id=agent,
            outcome=ev.EndOutcome.FAILED if failed else ev.EndOutcome.COMPLETED,
            result_summary="" if failed else "done",
            error="tool crashed" if failed else "",
            tokens_used=used,
            returned_tokens=max(grants[agent] - used, 0),
            policy_version=1,
            message="ended",
        )
