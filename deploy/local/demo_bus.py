"""Agents consulting each other on the bus, against a running spawn gate, mission processor and bus: a decision with
its rationale and impact, a question escalated and expired, a request replied to, a mission handed off, a CRITICAL
alert freezing the tree's spawning until an operator thaws it, and an inbox in priority order.

An orchestrator runs a lead researcher, which runs a worker. The lead's question is decided
by the orchestrator; the worker's goes unanswered, escalates from the lead to the
orchestrator and expires at the root; the orchestrator's request gets the lead's reply; the
lead hands its mission to the worker (the mission processor moves it); the worker's CRITICAL
alert makes the bus freeze the tree (a spawn is denied TREE_FROZEN) until the operator
``ops-oncall`` thaws it. Each answer is printed as it comes back; the tree's root id is
written to ``.state/demo-bus-root``. Run by `make demo` (after `agentlog processors run`
with ``--processor missions`` and ``--processor bus``).

It publishes a new version of the policy ``default`` (the newest version + 1) with
``limits.freeze_on_critical_alert: true`` and ``operators: [ops-oncall]``, unless the
version in force already says so, and leaves it in force.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentlog import events as ev
from agentlog.bus_client import Inbox, InboxMessage, QuestionExpired
from agentlog.client import AgentlogClient
from agentlog.errors import AgentlogError
from agentlog.handles import AgentHandle, SpawnRefused
from agentlog.partition_reader import PartitionReader
from agentlog.processors.policy import load_default_policy, parse_policy
from agentlog.processors.policy_publisher import publish_policy
from agentlog.processors.policy_reader import PolicyReader
from agentlog.producer import Producer
from agentlog.serde import Serde
from agentlog.settings import Settings, get_settings
from agentlog.topics import MISSION_EVENTS, POLICY_DECISIONS, TopicSpec

BOLD, GREEN, RED, YELLOW, DIM, OFF = "\033[1m", "\033[32m", "\033[31m", "\033[33m", "\033[2m", "\033[0m"
OPERATOR = "ops-oncall"
WAIT_S = 20.0
"""Longest wait for any one answer."""
names: dict[str, str] = {}


class DemoFailed(AgentlogError):
    """Something the demo waits for did not come."""


def who(agent_id: str) -> str:
    return names.get(agent_id, agent_id)


def line(label: str, text: str, colour: str = GREEN, note: str = "") -> None:
    print(f"  {colour}{label:<14}{OFF} {text}" + (f"  {DIM}({note}){OFF}" if note else ""))


def accepted(fact: ev.MessageAccepted) -> None:
    to = "every active agent" if fact.broadcast else ", ".join(who(r) for r in fact.recipients) or "the operators"
    line(fact.kind.name, f"{who(fact.from_agent_id)} → {to}", note=f"accepted, policy v{fact.policy_version}")


def text_of(body: ev.Event) -> str:
    if isinstance(body, ev.AgentRequest):
        return body.subject
    if isinstance(body, ev.AgentReply):
        return body.body
    if isinstance(body, ev.AgentQuestion):
        return body.question
    if isinstance(body, ev.DecisionRecorded):
        return body.choice
    if isinstance(body, ev.AgentAlert):
        return body.text
    assert isinstance(body, ev.Handoff)
    return body.task.title


def in_force_with_freeze(settings: Settings) -> int:
    """The version of policy ``default`` that freezes on a CRITICAL alert and names the operator (published now
    as the newest version + 1 unless the version in force already does)."""
    reader = PolicyReader(settings, "default")
    try:
        reader.catch_up(30)
        current = reader.current
    finally:
        reader.close()
    base = current or load_default_policy()
    limits = base.limits
    if current is not None and limits.freeze_on_critical_alert and OPERATOR in limits.operators:
        print(f"{DIM}policy default v{current.version} in force already freezes on a CRITICAL alert{OFF}")
        return current.version
    data = base.model_dump()
    data["version"] = current.version + 1 if current is not None else 1
    data["limits"] |= {"freeze_on_critical_alert": True, "operators": sorted({*limits.operators, OPERATOR})}
    policy = parse_policy(data, "demo_bus")
    publish_policy(settings, policy, "demo_bus")
    print(f"{BOLD}published policy default v{policy.version}{OFF}: freeze_on_critical_alert, operators [{OPERATOR}]")
    return policy.version


class Facts:
    """The tree's partition of a facts topic (the gate's decisions, the mission facts), read from now on."""

    def __init__(self, client: AgentlogClient, root_id: str, spec: TopicSpec) -> None:
        self.key = root_id.encode()
        self.topic = client.settings.topic_prefix + spec.name
        self.serde = Serde.from_settings(client.settings)
        self.reader = PartitionReader(client.settings)
        partition = client.bus.follower().partition(root_id)  # every tree-keyed topic has the same partitions
        self.reader.assign([(self.topic, partition, self.reader.bounds(self.topic, partition)[1])])
        self.read: list[ev.Event] = []
        """The tree's facts read and not looked at yet."""

    def wait(self, types: tuple[type[ev.Event], ...], about: Callable[[ev.Event], bool], what: str) -> ev.Event:
        """The next fact of the tree of one of ``types`` that ``about`` accepts."""
        deadline = time.monotonic() + WAIT_S
        while True:
            for i, fact in enumerate(self.read):
                if isinstance(fact, types) and about(fact):
                    del self.read[: i + 1]
                    return fact
            self.read.clear()
            if time.monotonic() > deadline:
                break
            records = self.reader.follow(200, 0.2)
            self.read = [self.serde.decode(r.value or b"") for r in records if r.key == self.key]
        raise DemoFailed(f"no {what} on {self.topic} within {WAIT_S:g}s")

    def close(self) -> None:
        self.reader.close()


def next_for(inbox: Inbox, message_id: uuid.UUID, agent: AgentHandle) -> InboxMessage:
    """The inbox's message ``message_id`` for ``agent`` (others are handed out and left pending)."""
    deadline = time.monotonic() + WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        message = inbox.get(timeout=left)
        if message is not None and message.message_id == message_id and message.agent_id == agent.agent_id:
            return message
    raise DemoFailed(f"message {message_id} did not reach {who(agent.agent_id)}'s inbox within {WAIT_S:g}s")


def until(at: datetime | None) -> str:
    return "no deadline" if at is None else f"{(at - datetime.now(UTC)).total_seconds():.1f}s"


@dataclass
class Demo:
    """The tree, its agents, the orchestrator's client and what it reads."""

    client: AgentlogClient
    root: AgentHandle
    lead: AgentHandle
    worker: AgentHandle
    inbox: Inbox
    """One inbox (one consumer) for the three agents."""
    decisions: Facts
    missions: Facts

    @property
    def tree(self) -> str:
        return self.root.root_id

    def decision(self) -> None:
        print(f"{BOLD}a question decided by the orchestrator, with its rationale and impact{OFF}")
        question = self.client.bus.agent(self.lead).question(
            "Survey 3 sources in depth or 10 briefly?", ["3 in depth", "10 briefly"],
            decide_by=timedelta(minutes=5), priority=ev.Priority.HIGH,
        )  # fmt: skip
        assert question.accepted is not None
        accepted(question.accepted)
        asked = next_for(self.inbox, question.message_id, self.root)
        line("INBOX", f"orchestrator reads {text_of(asked.body)!r}", note=asked.priority.name)
        accepted(
            self.client.bus.agent(self.root).decide(
                asked, "3 in depth", rationale="the report needs evidence, not breadth",
                impact="fewer sources, a shorter survey", impact_details={"scope_reduction": "70%", "eta": "-2h"},
            )
        )  # fmt: skip
        self.inbox.ack(asked)
        decision = question.decision(WAIT_S)
        line("DECIDED", f"{decision.choice!r} by {who(decision.decided_by)}: {decision.rationale}")
        details = ", ".join(f"{k}: {v}" for k, v in decision.impact_details.items())
        line("", f"impact: {decision.impact}", DIM, details)

    def escalation(self) -> None:
        print(f"{BOLD}a question nobody answers: escalated from the lead to the orchestrator, then expired{OFF}")
        question = self.client.bus.agent(self.worker).question(
            "May I quote the paywalled paper?", ["yes", "no"], decide_by=timedelta(seconds=2),
            priority=ev.Priority.HIGH,
        )  # fmt: skip
        assert question.accepted is not None
        accepted(question.accepted)
        line("", f"to be decided within {until(question.accepted.deadline)}", DIM)
        escalated = next_for(self.inbox, question.message_id, self.root)
        assert isinstance(escalated.fact, ev.QuestionEscalated)
        line(
            "ESCALATED", f"{who(escalated.fact.previous_recipient)} → {who(escalated.agent_id)}, level"
            f" {escalated.escalation}, new deadline in {until(escalated.deadline)}", YELLOW, "the orchestrator's inbox",
        )  # fmt: skip
        try:
            question.decision(WAIT_S)
        except QuestionExpired as e:
            line("EXPIRED", e.expired.message, RED, "QuestionExpired, raised to the worker")
        else:
            raise DemoFailed("the unanswered question was decided")

    def request(self) -> None:
        print(f"{BOLD}a request answered by a reply{OFF}")
        bus = self.client.bus
        request = bus.agent(self.root).request(
            self.lead.agent_id, "summarise the sources", "one line each", reply_by=timedelta(seconds=30)
        )
        assert request.accepted is not None
        accepted(request.accepted)
        asked = next_for(self.inbox, request.message_id, self.lead)
        accepted(bus.agent(self.lead).reply(asked, "three sources: two trials and a review", {"sources": "3"}))
        self.inbox.ack(asked)
        reply = request.reply(WAIT_S)
        line("REPLIED", f"{who(reply.from_agent_id)}: {reply.text!r}", note=f"details {reply.details}")

    def handoff(self) -> None:
        print(f"{BOLD}a handoff that moves a mission: the mission processor changes its owner{OFF}")
        created = self.client.missions.create(
            self.tree, "draft-report", "draft the report", owner_agent_id=self.lead.agent_id
        )
        if not isinstance(created, ev.MissionTransitioned):
            raise DemoFailed(f"the mission was not created: {created.reason}")
        line("MISSION", f"draft-report {created.to_state.value}, owned by lead")
        handoff = ev.Handoff(
            meta=self.client.meta(self.tree), message_id=uuid.uuid4(), from_agent_id=self.lead.agent_id,
            to_agent_id=self.worker.agent_id, task=ev.TaskSpec(title="draft the report"),
            context={"outline": "methods, findings, limits"}, mission_id="draft-report",
        )  # fmt: skip
        accepted(self.client.bus.send(handoff))
        moved = self.missions.wait(
            (ev.MissionHandedOff, ev.MissionHandoffRejected),
            lambda f: getattr(f, "handoff_id", None) == handoff.message_id, "answer to the handoff",
        )  # fmt: skip
        if not isinstance(moved, ev.MissionHandedOff):
            assert isinstance(moved, ev.MissionHandoffRejected)
            raise DemoFailed(f"the mission was not handed off ({moved.reason_code.value}): {moved.reason}")
        owners = f"{who(moved.previous_owner or '')} → {who(moved.owner)}"
        line("HANDED OFF", f"draft-report owner {owners}", note=f"{moved.state.value}, MissionHandedOff")

    def freeze(self, policy_version: int) -> None:
        print(f"{BOLD}a CRITICAL alert freezes the tree's spawning; the operator {OPERATOR} thaws it{OFF}")
        alert = self.client.bus.agent(self.worker).alert("an API key leaked into a tool output",
                                                         priority=ev.Priority.CRITICAL)  # fmt: skip
        accepted(alert)
        if alert.policy_version < policy_version:
            raise DemoFailed(f"the bus applied policy v{alert.policy_version}, not v{policy_version}")
        frozen = self.decisions.wait(
            (ev.TreeFrozen, ev.LifecycleRejected),
            lambda f: not isinstance(f, ev.TreeFrozen) or f.alert_id == alert.message_id, "freeze of the tree",
        )  # fmt: skip
        if not isinstance(frozen, ev.TreeFrozen):
            raise DemoFailed(f"the gate did not freeze the tree: {getattr(frozen, 'message', frozen)}")
        line("FROZEN", frozen.message, YELLOW, f"policy v{frozen.policy_version}")
        try:
            self.lead.spawn("summarizer", "summarise the findings", 10_000)
        except SpawnRefused as e:
            line(e.denial.reason.value, f"lead → summarizer: {e.denial.message}", RED, "SpawnRefused")
        else:
            raise DemoFailed("a spawn was approved in a frozen tree")
        thaw = ev.TreeThawRequested(meta=self.client.meta(self.tree), requested_by=OPERATOR, reason="key rotated")
        with Producer(self.client.settings) as producer:
            producer.publish(thaw)
        thawed = self.decisions.wait(
            (ev.TreeThawed, ev.LifecycleRejected), lambda f: f.meta.causation_id == thaw.meta.event_id, "thaw"
        )
        if not isinstance(thawed, ev.TreeThawed):
            raise DemoFailed(f"the gate did not thaw the tree: {getattr(thawed, 'message', thawed)}")
        line("THAWED", thawed.message)
        child = self.lead.spawn("summarizer", "summarise the findings", 10_000)
        names[child.agent_id] = "summarizer"
        line("APPROVED", "lead → summarizer: spawning works again")

    def show_inbox(self) -> None:
        print(f"{BOLD}the orchestrator's inbox, in priority order (what it has not acknowledged){OFF}")
        for message in self.inbox.pending(self.root.agent_id, timeout=WAIT_S):
            why = f"escalated to it, level {message.escalation}" if message.escalation else ""
            print(
                f"  {message.priority.name:<9} {message.kind.name:<9} from {who(message.from_agent_id):<8}"
                f" {text_of(message.body)!r}" + (f"  {DIM}({why}){OFF}" if why else "")
            )


def main() -> None:
    started = time.monotonic()
    settings = get_settings()
    version = in_force_with_freeze(settings)
    with AgentlogClient("acme", settings, timeout=WAIT_S) as client:
        root = client.start_root("orchestrator", 400_000, 20)
        lead = root.spawn("researcher", "survey the sources", 100_000, 4)
        worker = lead.spawn("researcher", "read the papers", 20_000)
        tree = root.root_id
        names.update({root.agent_id: "orchestrator", lead.agent_id: "lead", worker.agent_id: "worker"})
        print(f"{BOLD}tree {tree}{OFF}: orchestrator → lead → worker")
        decisions, missions = Facts(client, tree, POLICY_DECISIONS), Facts(client, tree, MISSION_EVENTS)
        try:
            with client.bus.inbox([root, lead, worker]) as inbox:
                if not inbox.wait_ready(WAIT_S):
                    raise DemoFailed("the inbox did not read the tree's history in time")
                demo = Demo(client, root, lead, worker, inbox, decisions, missions)
                demo.decision()
                demo.escalation()
                demo.request()
                demo.handoff()
                demo.freeze(version)
                demo.show_inbox()
        finally:
            decisions.close()
            missions.close()
    Path(".state").mkdir(exist_ok=True)
    Path(".state/demo-bus-root").write_text(tree)
    print(f"{DIM}done in {time.monotonic() - started:.1f}s; root id in .state/demo-bus-root{OFF}")


if __name__ == "__main__":
    try:
        main()
    except AgentlogError as e:  # DemoFailed, MessageRefused, BusTimeout, ...
        print(f"{RED}demo_bus failed: {e}{OFF}", file=sys.stderr)
        sys.exit(1)
