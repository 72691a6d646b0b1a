"""A consultation bus fed by hand: the gate's facts and agents' messages of one tree, at chosen record times.

Shared by the core's tests, its invariants and the golden logs' scenarios.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from agentlog import events as ev
from agentlog.processors.bus_core import CORE_VERSION, decide, expire
from agentlog.processors.bus_state import BusPartition, records_of, restore
from agentlog.processors.clock import to_micros
from agentlog.processors.policy import Policy
from agentlog.processors.testing import small_policy

ROOT = "acme/bus-1"
START = datetime(2026, 1, 1, tzinfo=UTC)
_IDS = uuid.UUID("0e9b7c52-4d1a-4a8e-9f3b-2c6d8e1a7f40")


def bus_policy(**limits: Any) -> Policy:
    """The tests' policy: small limits, an operator, and a config (``auditor``) that may override decisions."""
    configs = [
        {"name": "orchestrator", "may_spawn": True, "spawnable_by": [], "max_token_grant": 1_000_000,
         "max_spawn_grant": 30},
        {"name": "worker", "may_spawn": True, "spawnable_by": ["orchestrator", "worker"], "max_token_grant": 100_000,
         "max_spawn_grant": 10},
        {"name": "auditor", "spawnable_by": ["orchestrator"], "max_token_grant": 1_000, "can_override_decisions": True},
    ]  # fmt: skip
    limits.setdefault("bus_rate_per_agent", 5)
    limits.setdefault("bus_rate_window_ms", 60_000)
    limits.setdefault("bus_max_message_chars", 2_000)
    return small_policy(configs=configs, **limits)


class Bus:
    """Feeds the bus core one tree's facts and messages, a second of record time apart, and keeps the state."""

    def __init__(self, root: str = ROOT, tenant: str = "acme", policy: Policy | None = None) -> None:
        self.root = root
        self.tenant = tenant
        self.policy = policy if policy is not None else bus_policy()
        self.state = BusPartition()
        self.now = START
        self.inputs: list[tuple[ev.Event, int]] = []
        """Every input with its record time (µs), as the worker would read it."""
        self.records: list[tuple[bytes, bytes | None]] = []
        self.serial = 0
        self.core = CORE_VERSION
        """The version of the core the messages are decided as."""
        self.fact(ev.RootAdmitted, agent_id=root, config="orchestrator", token_budget=1, spawn_budget=9)

    def meta(self, tenant: str | None = None) -> ev.Meta:
        self.serial += 1
        event_id = uuid.uuid5(_IDS, f"{self.root}/{self.serial}")
        return ev.Meta(event_id=event_id, tenant_id=tenant or self.tenant, root_id=self.root, producer="test",
                       occurred_at=self.now)  # fmt: skip

    def message_id(self) -> uuid.UUID:
        self.serial += 1
        return uuid.uuid5(_IDS, f"{self.root}/message/{self.serial}")

    def send(self, event: ev.Event, step: timedelta = timedelta(seconds=1)) -> list[ev.Event]:
        self.now += step
        at_us = to_micros(self.now)
        self.inputs.append((event, at_us))
        outputs, changed = decide(self.state, event, self.policy, at_us, self.core)
        self.records += records_of(self.state, changed)
        return outputs

    def tick(self, at: datetime) -> list[ev.Event]:
        self.now = max(self.now, at)
        outputs, changed = expire(self.state, at, self.policy)
        self.records += records_of(self.state, changed)
        return outputs

    def restored(self) -> BusPartition:
        return restore(0, self.records)

    def fact(self, kind: type[ev.Event], **fields: Any) -> list[ev.Event]:
        fields.setdefault("policy_version", 1)
        fields.setdefault("message", "")
        return self.send(kind(meta=self.meta(), **fields))

    def spawn(self, agent: str, parent: str | None = None, config: str = "worker") -> None:
        self.fact(ev.SpawnApproved, request_id=self.message_id(), parent_agent_id=parent or self.root,
                  child_agent_id=agent, child_config=config, depth=1, granted_token_budget=1, granted_spawn_budget=1,
                  parent_remaining_tokens=0, parent_remaining_spawn_budget=0)  # fmt: skip

    def end(self, agent: str) -> None:
        self.fact(ev.AgentEnded, agent_id=agent, outcome=ev.EndOutcome.COMPLETED, tokens_used=0)

    def request(self, sender: str, to: str, **fields: Any) -> tuple[uuid.UUID, list[ev.Event]]:
        message_id = fields.pop("message_id", None) or self.message_id()
        step = fields.pop("step", timedelta(seconds=1))
        fields.setdefault("subject", "please")
        request = ev.AgentRequest(meta=self.meta(fields.pop("tenant", None)), message_id=message_id,
                                  from_agent_id=sender, to_agent_id=to, **fields)  # fmt: skip
        return message_id, self.send(request, step)

    def reply(self, sender: str, request_id: uuid.UUID, body: str = "done") -> list[ev.Event]:
        reply = ev.AgentReply(meta=self.meta(), message_id=self.message_id(), request_id=request_id,
                              from_agent_id=sender, body=body)  # fmt: skip
        return self.send(reply)

    def ask(self, sender: str, to: str | None = None, **fields: Any) -> tuple[uuid.UUID, list[ev.Event]]:
        message_id = self.message_id()
        fields.setdefault("question", "which way?")
        question = ev.AgentQuestion(meta=self.meta(), message_id=message_id, from_agent_id=sender, to_agent_id=to,
                                    **fields)  # fmt: skip
        return message_id, self.send(question)

    def decide(self, by: str, question_id: uuid.UUID, choice: str = "left", **fields: Any) -> list[ev.Event]:
        decision = ev.DecisionRecorded(meta=self.meta(), message_id=self.message_id(), question_id=question_id,
                                       decided_by=by, choice=choice, **fields)  # fmt: skip
        return self.send(decision)

    def alert(self, sender: str, text: str = "fire", **fields: Any) -> list[ev.Event]:
        alert = ev.AgentAlert(meta=self.meta(), message_id=self.message_id(), from_agent_id=sender, text=text, **fields)
        return self.send(alert)

    def handoff(self, sender: str, to: str, **fields: Any) -> list[ev.Event]:
        handoff = ev.Handoff(meta=self.meta(), message_id=self.message_id(), from_agent_id=sender, to_agent_id=to,
                             task=ev.TaskSpec(title="the rest"), **fields)  # fmt: skip
        return self.send(handoff)


def accepted(outputs: list[ev.Event]) -> ev.MessageAccepted:
    (only,) = outputs
    assert isinstance(only, ev.MessageAccepted), only
    return only


def rejected(outputs: list[ev.Event]) -> ev.MessageRejection:
    (only,) = outputs
    assert isinstance(only, ev.MessageRejected), only
    return only.reason
