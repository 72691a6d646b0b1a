"""What each decoded event does to the lineage tables, as plain data (no I/O).

Events of one agent tree arrive on several topics (spawn requests, decisions, lifecycle,
messages) that the projector reads in no fixed interleaving. So that the tables do not
depend on that interleaving, every effect on an agent is a *merge* that is commutative and
associative:

* identity (parent, depth, config, budgets granted, policy version) comes from the
  identity event of highest rank (2 for a gate decision, 1 for a registration), ties going
  to the earliest ``(occurred_at, topic, partition, offset)``;
* status comes from the status event of highest rank (registered 0 < approved 1 <
  running 2 < ended 3), ties going to the earliest, so the first ending wins;
* token counters add up (``tokens_reported`` keeps the largest report); first-seen
  timestamps keep the earliest.

The SQL upsert in :mod:`agentlog.projections.writer` applies the very same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from agentlog import events as ev
from agentlog.projections.jsonb import jsonb_text
from agentlog.records import Position
from agentlog.topics import LIFECYCLE_REPORTS

# Records of the spawn-gate issue, matched by full name so that this module does not need
# their generated models to load.
ROOT_ADMITTED = "agentlog.decision.RootAdmitted"
ROOT_REJECTED = "agentlog.decision.RootRejected"
BUDGET_TOPPED_UP = "agentlog.decision.BudgetToppedUp"
LIFECYCLE_REJECTED = "agentlog.decision.LifecycleRejected"

_REPORTS = frozenset(t.avro_name for t in LIFECYCLE_REPORTS)
"""Lifecycle reports: claims the spawn gate checks and answers (since its core version 2) with facts."""

_NOT_THIS_TREE = frozenset({"TENANT_MISMATCH"})
"""Denial reasons of inputs that named a tree they have no part in: nothing of them enters its lineage."""

IDENT_DECISION = 2
IDENT_REGISTRATION = 1
STATUS_RANKS = {"registered": 0, "admitted": 1, "approved": 1, "running": 2}
ENDED_RANK = 3
ENDED = ("completed", "failed", "terminated", "timed_out", "rejected")

_BIGINT_MAX = 2**63 - 1
"""Token counters saturate here (a PostgreSQL bigint) instead of overflowing."""


class Identity(NamedTuple):
    """Where an agent sits in its tree and what it was granted."""

    rank: int
    at: datetime
    position: Position
    parent_id: str | None
    depth: int
    config: str
    token_budget: int
    spawn_budget: int
    deadline: datetime | None = None
    policy_version: int | None = None
    request_id: Any = None

    def beats(self, other: Identity) -> bool:
        """Whether this identity wins the merge over ``other``."""
        return (-self.rank, self.at, self.position) < (-other.rank, other.at, other.position)


class Status(NamedTuple):
    """A status an event gives an agent."""

    name: str
    rank: int
    at: datetime
    position: Position

    def beats(self, other: Status) -> bool:
        """Whether this status wins the merge over ``other``."""
        return (-self.rank, self.at, self.position) < (-other.rank, other.at, other.position)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass(slots=True)
class AgentDelta:
    """The merged effect of one or more events on one agent row."""

    agent_id: str
    root_id: str
    tenant_id: str
    identity: Identity | None = None
    created_at: datetime | None = None
    status: Status | None = None
    started_at: datetime | None = None
    tokens_consumed: int = 0
    tokens_reported: int = 0
    tokens_returned: int = 0
    tokens_topped_up: int = 0
    budget_exhausted_at: datetime | None = None

    def merge(self, other: AgentDelta) -> None:
        """Fold ``other`` (an effect on the same agent) into this one."""
        if other.identity is not None and (self.identity is None or other.identity.beats(self.identity)):
            self.identity = other.identity
            self.tenant_id = other.tenant_id
        self.created_at = _earliest(self.created_at, other.created_at)
        if other.status is not None and (self.status is None or other.status.beats(self.status)):
            self.status = other.status
        self.started_at = _earliest(self.started_at, other.started_at)
        self.tokens_consumed = min(self.tokens_consumed + other.tokens_consumed, _BIGINT_MAX)
        self.tokens_reported = max(self.tokens_reported, other.tokens_reported)
        self.tokens_returned = min(self.tokens_returned + other.tokens_returned, _BIGINT_MAX)
        self.tokens_topped_up = min(self.tokens_topped_up + other.tokens_topped_up, _BIGINT_MAX)
        self.budget_exhausted_at = _earliest(self.budget_exhausted_at, other.budget_exhausted_at)


@dataclass
class LineageWrites:
    """The lineage rows of a batch of events."""

    agents: dict[str, AgentDelta] = field(default_factory=dict)
    identity_order: dict[str, None] = field(default_factory=dict)
    """Agents in the order their identity events were read (a parent before its children); a dict as ordered set."""
    agent_events: list[tuple[Any, ...]] = field(default_factory=list)
    denied: list[tuple[Any, ...]] = field(default_factory=list)
    handoffs: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, delta: AgentDelta, record_name: str, at: datetime, position: Position) -> None:
        """Merge ``delta`` into the batch and record the event in the agent's history."""
        current = self.agents.get(delta.agent_id)
        if current is None:
            self.agents[delta.agent_id] = delta  # callers hand over a fresh delta per event
        else:
            current.merge(delta)
        if delta.identity is not None:
            self.identity_order.setdefault(delta.agent_id)
        status = delta.status
        self.agent_events.append(
            (
                position.topic,
                position.partition,
                position.offset,
                delta.agent_id,
                delta.root_id,
                record_name,
                at,
                status.name if status else None,
                status.rank if status else None,
                delta.tokens_consumed,
                delta.tokens_reported,
                delta.tokens_returned,
                delta.tokens_topped_up,
            )
        )

    def ordered_agents(self) -> list[AgentDelta]:
        """Deltas with identity first, in reading order, then the others."""
        first = [self.agents[a] for a in self.identity_order]
        return first + [d for a, d in self.agents.items() if a not in self.identity_order]


def apply(writes: LineageWrites, record_name: str, value: dict[str, Any], position: Position) -> None:  # noqa: PLR0912  (one branch per record type reads best)
    """Add what the record ``record_name`` with ``value`` does to the lineage to ``writes``.

    A repeated answer (``repeat``: the gate answering a retried request again) adds nothing:
    its outcome is the original decision's, already applied.
    """
    if value.get("repeat"):
        return
    if record_name.startswith("agentlog.decision.") and str(value.get("reason")) in _NOT_THIS_TREE:
        return  # another tenant's input, or a root id already taken: the tree is not theirs (the audit log keeps it)
    meta = value["meta"]
    at: datetime = meta["occurred_at"]
    root: str = meta["root_id"]
    tenant: str = meta["tenant_id"]

    def delta(agent_id: str, **changes: Any) -> None:
        writes.add(AgentDelta(agent_id, root, tenant, **changes), record_name, at, position)

    def status(name: str) -> Status:
        return Status(name, STATUS_RANKS.get(name, ENDED_RANK), at, position)

    if record_name == ROOT_REJECTED and str(value.get("reason")) == "DUPLICATE_REQUEST":
        # The id is another registration's: the row (if any) is that tree's root, not this request's.
        _denied(writes, value, position, root, tenant, at, parent=None, agent=value["agent_id"])
    elif record_name == ev.RootAgentRegistered.avro_name or record_name in (ROOT_ADMITTED, ROOT_REJECTED):
        decision = record_name != ev.RootAgentRegistered.avro_name
        identity = Identity(
            IDENT_DECISION if decision else IDENT_REGISTRATION,
            at,
            position,
            None,
            0,
            value["config"],
            value.get("token_budget", 0),
            value.get("spawn_budget", 0),
            value.get("deadline"),
            value.get("policy_version"),
        )
        name = {ROOT_ADMITTED: "admitted", ROOT_REJECTED: "rejected"}.get(record_name, "registered")
        # A registration is a claim (its time included): the agent exists from the gate's answer on.
        delta(value["agent_id"], identity=identity, created_at=at if decision else None, status=status(name))
        if record_name == ROOT_REJECTED:
            _denied(writes, value, position, root, tenant, at, parent=None, agent=value["agent_id"])
    elif record_name == ev.SpawnApproved.avro_name:
        identity = Identity(
            IDENT_DECISION,
            at,
            position,
            value["parent_agent_id"],
            value["depth"],
            value["child_config"],
            value["granted_token_budget"],
            value["granted_spawn_budget"],
            value.get("deadline"),
            value["policy_version"],
            value["request_id"],
        )
        delta(value["child_agent_id"], identity=identity, created_at=at, status=status("approved"))
    elif record_name == ev.SpawnDenied.avro_name:
        _denied(writes, value, position, root, tenant, at, parent=value["parent_agent_id"], agent=None)
    elif record_name in _REPORTS:
        return  # a raw report is a claim: the lineage shows what the gate made of it (the facts below)
    elif record_name == ev.AgentRunning.avro_name:
        delta(value["agent_id"], status=status("running"), started_at=at)
    elif record_name == ev.TokensCharged.avro_name:
        delta(value["agent_id"], tokens_consumed=value["tokens"])
    elif record_name == ev.AgentEnded.avro_name:
        delta(value["agent_id"], status=status("completed" if str(value["outcome"]) == "COMPLETED" else "failed"))
    elif record_name == ev.AgentTerminated.avro_name:
        delta(value["agent_id"], status=status("terminated"), tokens_returned=value["returned_tokens"])
    elif record_name == ev.AgentTimedOut.avro_name:
        delta(value["agent_id"], status=status("timed_out"), tokens_returned=value["returned_tokens"])
    elif record_name == ev.BudgetExhausted.avro_name:
        delta(value["agent_id"], budget_exhausted_at=at)
    elif record_name == BUDGET_TOPPED_UP:
        delta(value["agent_id"], tokens_topped_up=value["additional_tokens"])
    elif record_name == ev.Handoff.avro_name:
        writes.handoffs.append(
            (
                position.topic,
                position.partition,
                position.offset,
                value["message_id"],
                root,
                value["from_agent_id"],
                value["to_agent_id"],
                str(value["priority"]),
                value["task"]["title"],
                at,
            )
        )
    elif record_name == LIFECYCLE_REJECTED or str(value.get("reason")) == "UNKNOWN_AGENT":
        return  # a report or request the gate refused changed nothing (and may name no agent at all)
    elif record_name.startswith("agentlog.decision.") and isinstance(value.get("agent_id"), str):
        delta(value["agent_id"])  # a decision about an agent with no effect on its row: history only


def _denied(
    writes: LineageWrites,
    value: dict[str, Any],
    position: Position,
    root: str,
    tenant: str,
    at: datetime,
    *,
    parent: str | None,
    agent: str | None,
) -> None:
    writes.denied.append(
        (
            position.topic,
            position.partition,
            position.offset,
            value.get("request_id"),
            root,
            tenant,
            parent,
            agent,
            value.get("child_config", value.get("config", "")),
            str(value.get("reason", "UNKNOWN")),
            jsonb_text(value.get("checks", []), floats=False),  # LimitChecks: names and longs
            value.get("policy_version", 0),
            value.get("message", ""),
            at,
        )
    )
