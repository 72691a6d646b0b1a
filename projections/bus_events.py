"""What each decoded bus record does to the bus tables, as plain data (no I/O).

Two topics feed them, read by the projector in no fixed interleaving:

* **posts** (``agentlog.messages``) are claims: what an agent published, kept as published in
  ``message_posts``, and inboxes' ``MessageAcknowledged``, merged into ``message_deliveries``;
* **facts** (``agentlog.message.events``) are the bus's word: each post's answer
  (``MessageAccepted`` or ``MessageRejected``, whose ``causation_id`` is the post's event id)
  starts a row of ``message_states``; what happens later to an accepted request or question
  (a reply, a decision, an escalation, an expiry) updates that row. Every fact of a tree is
  on one partition in the bus's order, so "later" is "at a higher offset".

So that no table depends on the interleaving, each is written from one side only, or merges
commutatively (``message_deliveries``: addressed by the bus OR'd, first acknowledgement
kept); the views of migration ``0006`` join posts to states when read. A follow-up fact whose
request or question was accepted earlier in the same batch is folded into that row here; one
about a row stored before is a :class:`FollowUp` the writer applies to the newest accepted row
of that id below its offset (a root id used again after the gate forgot its tree starts anew).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentlog import events as ev
from agentlog.messages import KINDS_BY_NAME
from agentlog.projections.jsonb import jsonb_text
from agentlog.records import Position

_ACCEPTED = ev.MessageAccepted.avro_name
_REJECTED = ev.MessageRejected.avro_name
_EXPIRED = ev.MessageExpired.avro_name
_ESCALATED = ev.QuestionEscalated.avro_name
_ACKNOWLEDGED = ev.MessageAcknowledged.avro_name
_KINDS = KINDS_BY_NAME
TargetKey = tuple[str, int, str, str, Any]
"""(topic, partition, root_id, kind, message_id) of an accepted request or question."""


@dataclass(slots=True)
class Progress:
    """What follow-up facts did to a request or question; ``None``: unchanged by them (a :class:`FollowUp`)."""

    state: str | None = None
    replies: int = 0
    """Replies accepted (added to the stored count)."""
    last_reply_at: datetime | None = None
    escalation_level: int | None = None
    recipient: str | None = None
    """Who must answer now (a question's decider after its escalations)."""
    current_deadline: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    decision_id: Any = None
    closed_at: datetime | None = None
    updated_at: datetime | None = None
    updated_offset: int | None = None

    def touch(self, state: str, at: datetime, offset: int) -> None:
        """The newest fact's state, time and offset."""
        self.state, self.updated_at, self.updated_offset = state, at, offset

    def replied(self, at: datetime, offset: int) -> None:
        self.replies += 1
        self.last_reply_at = at
        self.touch("replied", at, offset)

    def escalated(self, level: int, to: str, decide_by: datetime, at: datetime, offset: int) -> None:
        self.escalation_level, self.recipient, self.current_deadline = level, to, decide_by
        self.touch("escalated", at, offset)

    def decided(self, by: str, decision_id: Any, at: datetime, offset: int) -> None:
        if self.decided_at is None:  # the bus accepts one decision per question
            self.decided_at, self.decided_by, self.decision_id = at, by, decision_id
        self.closed_at = self.closed_at or at
        self.touch("decided", at, offset)

    def expired(self, at: datetime, offset: int) -> None:
        self.closed_at = self.closed_at or at
        self.touch("expired", at, offset)


@dataclass(slots=True)
class Answer:
    """One ``message_states`` row: the bus's answer to one post, and what happened since (in this batch)."""

    topic: str
    partition: int
    offset: int
    event_id: Any
    post_event_id: Any
    root_id: str
    tenant_id: str
    message_id: Any
    kind: str
    from_agent_id: str
    recipients: list[str]
    broadcast: bool
    priority: str | None
    in_reply_to: Any
    deadline: datetime | None
    accepted: bool
    reason: str | None
    reason_message: str
    policy_version: int
    answered_at: datetime
    progress: Progress


@dataclass(slots=True)
class FollowUp:
    """Follow-up facts of this batch about a request or question accepted in an earlier batch."""

    key: TargetKey
    first_offset: int
    """Offset of the first of them: the row they update is the newest accepted one below it."""
    progress: Progress = field(default_factory=Progress)


@dataclass(slots=True)
class Delivery:
    """A ``message_deliveries`` merge: addressed by the bus (OR) and first acknowledgement (earliest)."""

    addressed: bool = False
    addressed_at: datetime | None = None
    acknowledged_at: datetime | None = None

    def address(self, at: datetime) -> None:
        self.addressed = True
        self.addressed_at = min(self.addressed_at, at) if self.addressed_at else at

    def acknowledge(self, at: datetime) -> None:
        self.acknowledged_at = min(self.acknowledged_at, at) if self.acknowledged_at else at


DeliveryKey = tuple[str, Any, str, str]
"""(root_id, message_id, agent_id, tenant_id): an acknowledgement counts only in its own tenant's row."""


@dataclass
class BusWrites:
    """The bus rows of a batch of records."""

    posts: list[tuple[Any, ...]] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    followups: dict[TargetKey, FollowUp] = field(default_factory=dict)
    deliveries: dict[DeliveryKey, Delivery] = field(default_factory=dict)
    open: dict[TargetKey, Answer] = field(default_factory=dict)
    """The newest request or question accepted in this batch, per id: where its follow-ups go."""

    def delivery(self, root: str, message_id: Any, agent: str, tenant: str) -> Delivery:
        key = (root, message_id, agent, tenant)
        found = self.deliveries.get(key)
        if found is None:
            found = self.deliveries[key] = Delivery()
        return found

    def progress(self, key: TargetKey, offset: int) -> Progress:
        """Where a follow-up fact at ``offset`` about ``key`` goes: its answer in this batch, or a follow-up."""
        answer = self.open.get(key)
        if answer is not None:
            return answer.progress
        followup = self.followups.get(key)
        if followup is None:
            followup = self.followups[key] = FollowUp(key, offset)
        return followup.progress


def apply_bus(writes: BusWrites, record_name: str, value: dict[str, Any], position: Position) -> None:
    """Add what the bus record ``record_name`` with ``value`` does to ``writes`` (other records: nothing)."""
    if not record_name.startswith("agentlog.message."):
        return
    if record_name in _KINDS:
        writes.posts.append(post_row(_KINDS[record_name], value, position))
    elif record_name == _ACKNOWLEDGED:
        meta = value["meta"]
        writes.delivery(meta["root_id"], value["message_id"], value["agent_id"], meta["tenant_id"]).acknowledge(
            meta["occurred_at"]
        )
    elif record_name in (_ACCEPTED, _REJECTED):
        _answered(writes, record_name == _ACCEPTED, value, position)
    elif record_name == _EXPIRED:
        key = _target(position, value, str(value["kind"]), value["message_id"])
        writes.progress(key, position.offset).expired(value["meta"]["occurred_at"], position.offset)
    elif record_name == _ESCALATED:
        meta, at = value["meta"], value["meta"]["occurred_at"]
        key = _target(position, value, "QUESTION", value["question_id"])
        progress = writes.progress(key, position.offset)
        progress.escalated(value["level"], value["to_agent_id"], value["decide_by"], at, position.offset)
        writes.delivery(meta["root_id"], value["question_id"], value["to_agent_id"], meta["tenant_id"]).address(at)


def post_row(kind: str, value: dict[str, Any], position: Position) -> tuple[Any, ...]:
    """The ``message_posts`` row of one published message of ``kind``."""
    meta = value["meta"]
    to, in_reply_to, deadline = value.get("to_agent_id"), None, None
    summary, body, details = "", "", {}
    if kind == "REQUEST":
        summary, body, deadline = value["subject"], value.get("body", ""), value.get("reply_by")
        details = {"max_replies": value.get("max_replies", 1)}
    elif kind == "REPLY":
        summary, in_reply_to, details = (
            value.get("body", ""),
            value["request_id"],
            {"details": value.get("details", {})},
        )
    elif kind == "QUESTION":
        summary, deadline = value["question"], value.get("decide_by")
        details = {"options": value.get("options", [])}
    elif kind == "DECISION":
        summary, body, in_reply_to = value["choice"], value.get("rationale", ""), value["question_id"]
        details = {"impact": value.get("impact", ""), "impact_details": value.get("impact_details", {})}
    elif kind == "ALERT":
        summary = value["text"]
    else:
        task = value["task"]
        summary, body, deadline = task["title"], task.get("description", ""), task.get("deadline")
        details = {"task": task, "context": value.get("context", {})}
    sender = value["decided_by"] if kind == "DECISION" else value["from_agent_id"]
    return (
        position.topic,
        position.partition,
        position.offset,
        meta["event_id"],
        meta["root_id"],
        meta["tenant_id"],
        value["message_id"],
        kind,
        sender,
        to,
        in_reply_to,
        str(value.get("priority", "NORMAL")),
        summary,
        body,
        jsonb_text(details),
        deadline,
        meta["occurred_at"],
    )


def _target(position: Position, value: dict[str, Any], kind: str, message_id: Any) -> TargetKey:
    return (position.topic, position.partition, value["meta"]["root_id"], kind, message_id)


def _answered(writes: BusWrites, accepted: bool, value: dict[str, Any], position: Position) -> None:
    meta, at = value["meta"], value["meta"]["occurred_at"]
    kind, recipients = str(value["kind"]), list(value.get("recipients", [])) if accepted else []
    deadline = value.get("deadline") if accepted else None
    progress = Progress(
        "accepted" if accepted else "rejected",
        escalation_level=0,
        recipient=recipients[0] if recipients else None,
        current_deadline=deadline,
        updated_at=at,
        updated_offset=position.offset,
    )
    answer = Answer(
        position.topic,
        position.partition,
        position.offset,
        meta["event_id"],
        meta.get("causation_id"),
        meta["root_id"],
        meta["tenant_id"],
        value["message_id"],
        kind,
        value["from_agent_id"],
        recipients,
        bool(value.get("broadcast", False)) if accepted else False,
        str(value["priority"]) if accepted else None,
        value.get("in_reply_to") if accepted else None,
        deadline,
        accepted,
        None if accepted else str(value["reason"]),
        "" if accepted else value.get("message", ""),
        value.get("policy_version", 0),
        at,
        progress,
    )
    writes.answers.append(answer)
    if not accepted:
        return
    for recipient in recipients:
        writes.delivery(answer.root_id, answer.message_id, recipient, answer.tenant_id).address(at)
    if kind in ("REQUEST", "QUESTION"):
        writes.open[_target(position, value, kind, answer.message_id)] = answer
    elif kind == "REPLY" and answer.in_reply_to is not None:
        key = _target(position, value, "REQUEST", answer.in_reply_to)
        writes.progress(key, position.offset).replied(at, position.offset)
    elif kind == "DECISION" and answer.in_reply_to is not None:
        key = _target(position, value, "QUESTION", answer.in_reply_to)
        writes.progress(key, position.offset).decided(answer.from_agent_id, answer.message_id, at, position.offset)
