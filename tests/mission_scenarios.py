"""Mission plans as the mission processor reads them: the gate's facts and the commands of a tree, in order.

Each plan is a list of inputs with increasing times. :func:`decided` runs them through the
processor's pure core, as the projection tests need the facts; the golden logs send the
same inputs through a real mission worker.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from agentlog import events as ev
from agentlog.processors.mission_core import decide
from agentlog.processors.mission_state import MissionPartition
from agentlog.processors.testing import admitted_tree, small_policy

_S = ev.MissionState
START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


class Plan:
    """Builds one tree's inputs: the gate's facts first, then commands, one second apart."""

    def __init__(self, root: str, agents: list[str], tenant: str = "acme", start: datetime = START) -> None:
        self.root, self.tenant, self.now = root, tenant, start
        self.inputs: list[ev.Event] = []
        for fact in admitted_tree(root, agents, tenant):
            self.inputs.append(fact.model_copy(update={"meta": self.meta()}))

    def meta(self) -> ev.Meta:
        self.now += timedelta(seconds=1)
        return ev.Meta(tenant_id=self.tenant, root_id=self.root, producer="test", occurred_at=self.now)

    def add(self, event: ev.Event) -> datetime:
        self.inputs.append(event)
        return event.meta.occurred_at

    def create(self, mission: str, title: str, parent: str | None = None, **fields: Any) -> datetime:
        task = ev.TaskSpec(title=title)
        return self.add(ev.MissionCreated(meta=self.meta(), mission_id=mission, parent_mission_id=parent, task=task,
                                          **fields))  # fmt: skip

    def depend(self, mission: str, on: str, kind: ev.DependencyKind = ev.DependencyKind.HARD) -> datetime:
        return self.add(ev.DependencyAdded(meta=self.meta(), mission_id=mission, depends_on=on, kind=kind))

    def ask(self, mission: str, to: ev.MissionState, by: str | None = None, **fields: Any) -> datetime:
        return self.add(ev.MissionTransitionRequested(meta=self.meta(), mission_id=mission, to_state=to,
                                                      requested_by=by or self.root, **fields))  # fmt: skip

    def hand(self, mission: str, giver: str, taker: str) -> datetime:
        """The bus's request to move ``mission`` (after a handoff from ``giver`` to ``taker`` it accepted)."""
        meta = self.meta().model_copy(update={"producer": "agentlog.bus"})
        handoff = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.root}/handoff/{len(self.inputs)}")
        return self.add(ev.MissionHandoffRequested(meta=meta, mission_id=mission, from_agent_id=giver,
                                                   to_agent_id=taker, handoff_id=handoff))  # fmt: skip

    def end_agent(self, agent: str, error: str = "crashed") -> datetime:
        return self.add(ev.AgentEnded(meta=self.meta(), agent_id=agent, outcome=ev.EndOutcome.FAILED, error=error,
                                      retryable=True, tokens_used=0, returned_tokens=0, policy_version=0,
                                      message=""))  # fmt: skip


def release_plan(root: str = "acme/release-1", tenant: str = "acme") -> tuple[Plan, dict[str, datetime]]:
    """Phases with a parallel group, a retried attempt, a refused cycle and duplicate, a soft edge, a pending tail.

    design → (build-a ∥ build-b) → test → release (release soft-depends on design; notes is release's child).
    Returns the plan and the moments worth asking about.
    """
    plan = Plan(root, ["w1", "w2"], tenant)
    at: dict[str, datetime] = {}
    plan.create("design", "Design the API")
    plan.create("build-a", "Build service A", max_attempts=2)
    plan.create("build-b", "Build service B")
    plan.create("test", "Integration tests")
    plan.create("release", "Release")
    plan.create("notes", "Release notes", parent="release")
    plan.depend("build-a", "design")
    plan.depend("build-b", "design")
    plan.depend("test", "build-a")
    plan.depend("test", "build-b")
    plan.depend("release", "test")
    plan.depend("release", "design", ev.DependencyKind.SOFT)
    plan.depend("design", "release")  # closes a cycle: refused
    plan.create("design", "A duplicate that must not rename design")  # refused: DUPLICATE_MISSION
    plan.ask("design", _S.RUNNING, agent_id="w1")
    at["design completed"] = plan.ask("design", _S.COMPLETED, result_summary="API v1 agreed", quality_score=0.9)
    plan.ask("build-a", _S.RUNNING, agent_id="w1")
    plan.ask("build-b", _S.RUNNING, agent_id="w2")
    at["build-a failed"] = plan.ask("build-a", _S.FAILED, reason="flaky test", retryable=True)
    plan.ask("build-a", _S.RUNNING, agent_id="w2")
    plan.ask("build-a", _S.COMPLETED, result_summary="A built", quality_score=0.8)
    at["end"] = plan.ask("build-b", _S.COMPLETED, result_summary="B built", quality_score=0.95)
    return plan, at


def cancel_plan(root: str = "acme/cancel-1", tenant: str = "acme") -> tuple[Plan, dict[str, datetime]]:
    """A mission with children cancelled (the cancellation cascades), then archived."""
    plan = Plan(root, ["w1"], tenant)
    at: dict[str, datetime] = {}
    plan.create("x", "Parent")
    plan.create("y", "Child", parent="x")
    plan.create("z", "Grandchild", parent="y")
    plan.ask("y", _S.RUNNING, agent_id="w1")
    at["cancelled"] = plan.ask("x", _S.CANCELLED, reason="plan changed")
    at["archived"] = plan.ask("x", _S.ARCHIVED)
    return plan, at


def handoff_plan(root: str = "acme/handoff-1", tenant: str = "acme") -> tuple[Plan, dict[str, datetime]]:
    """Missions handed off: a waiting one by its owner, a running one by its runner (whose end then leaves it be),
    and handoffs refused (a giver that no longer runs it, a taker that is no agent, a finished mission)."""
    plan = Plan(root, ["w1", "w2", "w3"], tenant)
    at: dict[str, datetime] = {}
    plan.create("spec", "Write the spec", owner_agent_id="w1")
    plan.create("impl", "Implement it", max_attempts=2)
    plan.create("wait", "Ship it", owner_agent_id="w1")
    plan.depend("wait", "impl")
    at["spec handed"] = plan.hand("spec", "w1", "w2")  # READY: the owner changes, nothing else
    at["impl started"] = plan.ask("impl", _S.RUNNING, agent_id="w1")
    at["impl handed"] = plan.hand("impl", "w1", "w3")  # RUNNING: w3 runs it now
    plan.hand("impl", "w1", "w2")  # NOT_THE_OWNER: w1 gave it away
    plan.hand("spec", "w2", "nobody")  # NOT_AN_ACTIVE_AGENT
    at["w1 ended"] = plan.end_agent("w1")  # impl is w3's: it goes on
    at["impl completed"] = plan.ask("impl", _S.COMPLETED, result_summary="implemented", quality_score=0.8)
    plan.hand("impl", "w3", "w2")  # MISSION_FINISHED
    at["end"] = plan.hand("wait", "w1", "w2")  # its owner ended, but still owns it: it may give it away
    return plan, at


def decided(inputs: list[ev.Event]) -> list[ev.Event]:
    """The facts the mission processor's core decides for ``inputs`` (one partition, fed in order)."""
    state, policy = MissionPartition(), small_policy()
    facts: list[ev.Event] = []
    for event in inputs:
        outputs, _ = decide(state, event, policy)
        facts += outputs
    return facts
