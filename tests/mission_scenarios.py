"""Mission plans as the mission processor reads them: the gate's facts and the commands of a tree, in order.

Each plan is a list of inputs with increasing times. :func:`decided` runs them through the
processor's pure core, as the projection tests need the facts; the golden logs send the
same inputs through a real mission worker.
"""

from __future__ import annotations

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


def decided(inputs: list[ev.Event]) -> list[ev.Event]:
    """The facts the mission processor's core decides for ``inputs`` (one partition, fed in order)."""
    state, policy = MissionPartition(), small_policy()
    facts: list[ev.Event] = []
    for event in inputs:
        outputs, _ = decide(state, event, policy)
        facts += outputs
    return facts
