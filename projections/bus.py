"""Bus queries: a tree's messages with their delivery, its questions, its decision log and its statistics.

They read the views of migration ``0006`` (``messages``, ``questions``, ``decisions``) and
``message_deliveries``; a tenant login reads the same names in its tenant schema, so it sees
its own trees only (another tenant's root is as unknown as one that never existed).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from psycopg.rows import dict_row

from agentlog.projections.db import Conn
from agentlog.projections.errors import ProjectionError

PRIORITIES = ("CRITICAL", "HIGH", "NORMAL", "LOW")
"""Priorities, most urgent first."""


class UnknownTreeError(ProjectionError):
    """No agent tree and no message has this root id (visible to the login asking)."""

    def __init__(self, root_id: str) -> None:
        self.root_id = root_id
        super().__init__(f"unknown tree {root_id!r}: no agent tree or message has this root id")


@dataclass(frozen=True)
class Delivery:
    """One recipient of a message: when the bus addressed it, when its inbox acknowledged the message."""

    agent_id: str
    addressed_at: datetime | None
    acknowledged_at: datetime | None


@dataclass(frozen=True)
class Message:
    """One message: as published, the bus's answer (``pending`` before it), and what became of it."""

    message_id: uuid.UUID
    root_id: str
    tenant_id: str
    kind: str
    from_agent_id: str
    to_agent_id: str | None
    recipients: list[str]
    broadcast: bool
    priority: str | None
    """None for a refusal whose post is not in its tenant (a forgery names another tenant)."""
    summary: str
    """The headline: a request's subject, a reply's body, a question, a decision's choice, an alert, a task title."""
    body: str
    details: dict[str, Any]
    in_reply_to: uuid.UUID | None
    sent_at: datetime | None
    """When its sender says it sent it (``meta.occurred_at``; None if the post was not projected)."""
    answered_at: datetime | None
    """When the bus decided it (record time)."""
    deadline: datetime | None
    accepted: bool
    state: str
    """pending, rejected, accepted, acknowledged, replied, escalated, decided or expired."""
    reason: str | None
    reason_message: str
    replies: int
    escalation_level: int
    recipient: str | None
    """Who must answer now (a question's decider after its escalations; None: the tree's operators)."""
    current_deadline: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    closed_at: datetime | None
    acknowledged_by: list[str]
    policy_version: int
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass(frozen=True)
class Question:
    """An accepted question: whom it waits for, since when, and how it ended."""

    question_id: uuid.UUID
    root_id: str
    tenant_id: str
    asker: str
    question: str
    options: list[str]
    priority: str
    first_recipient: str | None
    recipient: str | None
    escalation_level: int
    first_decide_by: datetime | None
    decide_by: datetime | None
    asked_at: datetime
    status: str
    """open, decided or expired."""
    decided_at: datetime | None
    decided_by: str | None
    decision_id: uuid.UUID | None
    closed_at: datetime | None
    time_to_decide: timedelta | None
    age: timedelta
    """From asking to its close, or to the moment asked about while open."""
    overdue: bool
    """Open past its current deadline (the bus escalates or expires it at its next tick)."""


@dataclass(frozen=True)
class Decision:
    """One entry of the decision log: the question, who decided what and why, and how long it took."""

    decision_id: uuid.UUID
    question_id: uuid.UUID
    root_id: str
    tenant_id: str
    question: str | None
    asker: str | None
    options: list[str]
    decided_by: str
    choice: str
    rationale: str
    impact: str
    impact_details: dict[str, str]
    first_recipient: str | None
    escalation_level: int | None
    asked_at: datetime | None
    decided_at: datetime
    time_to_decide: timedelta | None
    priority: str
    policy_version: int


@dataclass(frozen=True)
class RefusedDecision:
    """A decision the bus refused, with its reason."""

    decision_id: uuid.UUID
    question_id: uuid.UUID | None
    decided_by: str
    choice: str
    reason: str | None
    reason_message: str
    answered_at: datetime | None


@dataclass(frozen=True)
class DecisionLog:
    """A tree's accepted decisions, the refused ones, and the questions that expired undecided."""

    root_id: str
    tenant_id: str | None
    """The tree's tenant (None: no message or agent of the tree names one)."""
    generated_at: datetime
    decisions: list[Decision]
    refused: list[RefusedDecision]
    expired: list[Question]
    median_time_to_decide: timedelta | None


@dataclass(frozen=True)
class BusStats:
    """A tree's bus in numbers (the seed's ``get_message_stats``)."""

    root_id: str
    messages: int
    by_kind: dict[str, dict[str, int]]
    """Messages per kind, per state."""
    rejected_by_reason: dict[str, int]
    pending_per_agent: dict[str, int]
    """Messages addressed to each agent that its inbox has not acknowledged."""
    open_questions: int
    overdue_questions: int
    decisions_recorded: int
    decisions_refused: int
    median_time_to_decide: timedelta | None


_MESSAGES = """
SELECT * FROM messages m WHERE m.root_id = %(root)s
    AND (%(priority)s::text IS NULL OR m.priority = %(priority)s)
    AND (%(agent)s::text IS NULL OR m.from_agent_id = %(agent)s OR m.to_agent_id = %(agent)s OR m.broadcast
        OR EXISTS (SELECT FROM message_deliveries d WHERE d.root_id = m.root_id AND d.message_id = m.message_id
            AND d.tenant_id = m.tenant_id AND d.agent_id = %(agent)s AND d.addressed))
ORDER BY COALESCE(m.answered_at, m.sent_at), m.topic, m."offset"
"""
_DELIVERIES = """
SELECT message_id, tenant_id, agent_id, addressed, addressed_at, acknowledged_at FROM message_deliveries
WHERE root_id = %(root)s AND (addressed OR acknowledged_at IS NOT NULL)
ORDER BY addressed_at NULLS LAST, agent_id COLLATE "C"
"""
_REFUSED = """
SELECT message_id AS decision_id, in_reply_to AS question_id, from_agent_id AS decided_by, summary AS choice, reason,
    reason_message, answered_at
FROM messages WHERE root_id = %(root)s AND kind = 'DECISION' AND state = 'rejected' ORDER BY answered_at, "offset"
"""
_STATS = """
SELECT
    (SELECT count(*) FROM decisions WHERE root_id = %(root)s) AS decisions_recorded,
    (SELECT count(*) FROM messages WHERE root_id = %(root)s AND kind = 'DECISION' AND state = 'rejected')
        AS decisions_refused,
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY time_to_decide) FROM decisions
        WHERE root_id = %(root)s AND time_to_decide IS NOT NULL) AS median_time_to_decide,
    COALESCE((SELECT tenant_id FROM agents WHERE agent_id = %(root)s),
        (SELECT tenant_id FROM message_states WHERE root_id = %(root)s ORDER BY "offset" DESC LIMIT 1)) AS tenant_id
"""
T = TypeVar("T")


class Bus:
    """The bus queries over one connection (whose search path is the projection schema, or its tenant schema)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def messages(self, root_id: str, agent: str | None = None, priority: str | None = None) -> list[Message]:
        """The tree's messages in the order the bus decided them (unanswered ones by their sending time); with
        ``agent``, those it sent, was addressed (or escalated) or broadcast; with ``priority``, of that one."""
        self._require(root_id)
        params = {"root": root_id, "agent": agent, "priority": priority.upper() if priority else None}
        rows = self._rows(_MESSAGES, params)
        deliveries = self._deliveries(root_id)
        return [self._message(row, deliveries) for row in rows]

    def questions(
        self, root_id: str, open_only: bool = False, overdue_only: bool = False, now: datetime | None = None
    ) -> list[Question]:
        """The tree's accepted questions, oldest first, with their age as of ``now`` (default: the present)."""
        self._require(root_id)
        moment = now or datetime.now(UTC)
        rows = self._rows('SELECT * FROM questions WHERE root_id = %(root)s ORDER BY asked_at, "offset"', root_id)
        found = [_question(row, moment) for row in rows]
        return [q for q in found if (not open_only or q.status == "open") and (not overdue_only or q.overdue)]

    def decision_log(self, root_id: str, now: datetime | None = None) -> DecisionLog:
        """The tree's decisions in the order they were taken, the refused ones, and the questions that expired."""
        self._require(root_id)
        moment = now or datetime.now(UTC)
        rows = self._rows('SELECT * FROM decisions WHERE root_id = %(root)s ORDER BY decided_at, "offset"', root_id)
        decisions = [_made(Decision, row) for row in rows]
        refused = [_made(RefusedDecision, row) for row in self._rows(_REFUSED, root_id)]
        expired = [q for q in self.questions(root_id, now=moment) if q.status == "expired"]
        (numbers,) = self._rows(_STATS, root_id)
        tenant = numbers["tenant_id"]
        return DecisionLog(root_id, tenant, moment, decisions, refused, expired, numbers["median_time_to_decide"])

    def stats(self, root_id: str, now: datetime | None = None) -> BusStats:
        """Totals per kind and state, rejections per reason, pending per agent, questions and decisions."""
        self._require(root_id)
        by_kind: dict[str, dict[str, int]] = {}
        for kind, state, count in self.conn.execute(
            "SELECT kind, state, count(*) FROM messages WHERE root_id = %s GROUP BY 1, 2 ORDER BY 1, 2", (root_id,)
        ):
            by_kind.setdefault(kind, {})[state] = count
        reasons = self.conn.execute(
            "SELECT reason, count(*) FROM messages WHERE root_id = %s AND state = 'rejected' GROUP BY 1 ORDER BY 2"
            " DESC, 1",
            (root_id,),
        ).fetchall()
        pending = self.conn.execute(
            "SELECT agent_id, count(*) FROM message_deliveries WHERE root_id = %s AND addressed"
            ' AND acknowledged_at IS NULL GROUP BY 1 ORDER BY 2 DESC, agent_id COLLATE "C"',
            (root_id,),
        ).fetchall()
        (numbers,) = self._rows(_STATS, root_id)
        questions = self.questions(root_id, now=now)
        return BusStats(
            root_id,
            sum(sum(states.values()) for states in by_kind.values()),
            by_kind,
            {str(reason): count for reason, count in reasons},
            {str(agent): count for agent, count in pending},
            sum(1 for q in questions if q.status == "open"),
            sum(1 for q in questions if q.overdue),
            numbers["decisions_recorded"],
            numbers["decisions_refused"],
            numbers["median_time_to_decide"],
        )

    def _require(self, root_id: str) -> None:
        row = self.conn.execute(
            "SELECT EXISTS (SELECT FROM agents WHERE agent_id = %(root)s)"
            " OR EXISTS (SELECT FROM message_states WHERE root_id = %(root)s)"
            " OR EXISTS (SELECT FROM message_posts WHERE root_id = %(root)s)",
            {"root": root_id},
        ).fetchone()
        if row is None or not row[0]:
            raise UnknownTreeError(root_id)

    def _rows(self, query: str, params: str | dict[str, Any]) -> list[dict[str, Any]]:
        values = {"root": params} if isinstance(params, str) else params
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query.encode(), values).fetchall()

    def _deliveries(self, root_id: str) -> dict[tuple[uuid.UUID, str], list[tuple[bool, Delivery]]]:
        found: dict[tuple[uuid.UUID, str], list[tuple[bool, Delivery]]] = {}
        for row in self._rows(_DELIVERIES, root_id):
            delivery = Delivery(row["agent_id"], row["addressed_at"], row["acknowledged_at"])
            found.setdefault((row["message_id"], row["tenant_id"]), []).append((row["addressed"], delivery))
        return found

    @staticmethod
    def _message(row: dict[str, Any], deliveries: dict[tuple[uuid.UUID, str], list[tuple[bool, Delivery]]]) -> Message:
        mine = deliveries.get((row["message_id"], row["tenant_id"]), []) if row["accepted"] else []
        row["deliveries"] = [d for addressed, d in mine if addressed or row["broadcast"]]
        return _made(Message, row)


def _made(kind: type[T], row: dict[str, Any]) -> T:
    """A ``kind`` from the row's columns of its fields' names (the others ignored)."""
    return kind(**{f.name: row[f.name] for f in fields(kind) if f.name in row})  # type: ignore[arg-type]


def _question(row: dict[str, Any], now: datetime) -> Question:
    open_ = row["status"] == "open"
    end = row["closed_at"] if not open_ and row["closed_at"] is not None else now
    deadline = row["decide_by"]
    row = {
        **row,
        "age": max(end - row["asked_at"], timedelta(0)),
        "overdue": open_ and deadline is not None and deadline < now,
    }
    return _made(Question, row)
