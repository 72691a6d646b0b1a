"""What each decoded mission record does to the mission tables, as plain data (no I/O).

The mission processor's facts (``agentlog.mission.events``) are the truth: a mission exists
from its accepting ``MissionTransitioned`` (``UNKNOWN`` → ``PENDING``/``READY``) on, and its
state is the ``to_state`` of its newest transition. Every fact of one tree is on one
partition of that topic, in the order the processor decided, so "newest" is the highest
offset — whatever the interleaving with the other topics the projector reads.

The commands (``agentlog.missions``) are claims, kept for what the facts do not repeat: a
``MissionCreated``'s title, parent, owner and attempts. The accepting fact names its command
(``meta.causation_id``), and the queries join the two on it (with the tree, the tenant and
the mission id, so that a forged command reusing an event id joins nothing).

Tables: ``missions`` (one row per mission, merged: newest fact wins, first start kept; a
creation fact starts the row anew, as when a root id is used again after the gate forgot
its tree),
``mission_transitions`` (the history), ``mission_dependencies`` (accepted edges),
``mission_rejections`` (rejected commands) and ``mission_specs`` (creation commands).

A ``MissionHandedOff`` is a step of the history that keeps the state (``from_state`` =
``to_state``, the taker as ``agent_id``, its message as the reason): the mission's owner is
then the taker of its latest handoff, and a running mission's agent the taker too. The fact
names no attempt; its row takes the mission's, from the batch or else from the ``missions``
row the writer reads (:data:`MissionWrites.unresolved`). A ``MissionHandoffRejected`` is a
rejection without states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentlog import events as ev
from agentlog.projections.jsonb import jsonb_text
from agentlog.records import Position

FINISHED = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
"""States a mission's ``finished_at`` is set by (``ARCHIVED`` keeps it; anything else clears it: a retry)."""
OPEN = frozenset({"PENDING", "READY", "RUNNING", "BLOCKED"})
"""States of a mission still under way (or waiting)."""

_CREATED = ev.MissionCreated.avro_name
_TRANSITIONED = ev.MissionTransitioned.avro_name
_ACCEPTED = ev.DependencyAccepted.avro_name
_HANDED_OFF = ev.MissionHandedOff.avro_name
_REJECTED = (
    ev.MissionTransitionRejected.avro_name,
    ev.DependencyRejected.avro_name,
    ev.MissionHandoffRejected.avro_name,
)
_STATES_NAMED = frozenset({ev.MissionTransitionRejected.avro_name})
"""The rejections that name the states of the transition refused."""
ROOT, MISSION, ATTEMPT = 5, 7, 10
"""Where ``root_id``, ``mission_id`` and ``attempt`` are in a row of :attr:`MissionWrites.transitions`."""


@dataclass(slots=True)
class MissionDelta:
    """The merged effect of one or more transitions of one mission (newest wins; earliest firsts kept)."""

    root_id: str
    mission_id: str
    tenant_id: str
    state: str
    attempt: int | None
    """None for a handoff's (it keeps the mission's attempt; the writer fills it in when the batch has no other)."""
    agent_id: str | None
    result_summary: str
    quality_score: float | None
    policy_version: int
    spec_event_id: Any
    """``causation_id`` of the accepting fact: the ``MissionCreated`` it accepted (None if not seen here)."""
    created_at: datetime | None
    created_offset: int | None
    """Offset of its newest creation fact among those merged (a root id reused after the gate forgot its tree
    creates the mission anew: what came before is another tree's)."""
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    topic: str
    partition: int
    offset: int

    def merge(self, newer: MissionDelta) -> None:
        """Fold ``newer`` (a later fact about the same mission, same partition) into this one; a creation starts
        the row anew."""
        if newer.created_offset is not None:
            for name in MissionDelta.__slots__:
                setattr(self, name, getattr(newer, name))
            return
        self.spec_event_id = self.spec_event_id or newer.spec_event_id
        self.created_at = self.created_at or newer.created_at
        self.started_at = self.started_at or newer.started_at
        self.finished_at = self.finished_at if newer.state == "ARCHIVED" else newer.finished_at
        self.agent_id = newer.agent_id if newer.agent_id is not None else self.agent_id
        self.result_summary = newer.result_summary or self.result_summary
        self.quality_score = newer.quality_score if newer.quality_score is not None else self.quality_score
        self.attempt = newer.attempt if newer.attempt is not None else self.attempt
        self.state, self.policy_version = newer.state, newer.policy_version
        self.tenant_id, self.updated_at = newer.tenant_id, newer.updated_at
        self.topic, self.partition, self.offset = newer.topic, newer.partition, newer.offset


@dataclass
class MissionWrites:
    """The mission rows of a batch of records."""

    missions: dict[tuple[str, str], MissionDelta] = field(default_factory=dict)
    transitions: list[tuple[Any, ...]] = field(default_factory=list)
    dependencies: list[tuple[Any, ...]] = field(default_factory=list)
    rejections: list[tuple[Any, ...]] = field(default_factory=list)
    specs: list[tuple[Any, ...]] = field(default_factory=list)
    unresolved: list[int] = field(default_factory=list)
    """Indexes of :attr:`transitions` rows of handoffs whose attempt (None) is the ``missions`` row's."""


def apply_mission(writes: MissionWrites, record_name: str, value: dict[str, Any], position: Position) -> None:
    """Add what the mission record ``record_name`` with ``value`` does to ``writes`` (other records: nothing)."""
    if not record_name.startswith("agentlog.mission."):
        return
    meta = value["meta"]
    where = (position.topic, position.partition, position.offset)
    root, tenant, at = meta["root_id"], meta["tenant_id"], meta["occurred_at"]
    if record_name == _TRANSITIONED:
        _transitioned(writes, value, position, at)
        writes.transitions.append(
            (
                *where,
                meta["event_id"],
                meta.get("causation_id"),
                root,
                tenant,
                value["mission_id"],
                str(value["from_state"]),
                str(value["to_state"]),
                value["attempt"],
                value.get("agent_id"),
                value["reason"],
                value.get("result_summary", ""),
                value.get("quality_score"),
                value.get("policy_version", 0),
                at,
            )
        )
    elif record_name == _HANDED_OFF:
        _handed_off(writes, value, position, at)
    elif record_name == _ACCEPTED:
        writes.dependencies.append(
            (
                *where,
                root,
                tenant,
                value["mission_id"],
                value["depends_on"],
                str(value["kind"]),
                value["policy_version"],
                at,
            )
        )
    elif record_name in _REJECTED:
        dependency = record_name == ev.DependencyRejected.avro_name
        states = record_name in _STATES_NAMED
        writes.rejections.append(
            (
                *where,
                meta.get("causation_id"),
                root,
                tenant,
                value["mission_id"],
                record_name.rsplit(".", 1)[-1],
                str(value["from_state"]) if states else None,
                str(value["to_state"]) if states else None,
                value["depends_on"] if dependency else None,
                str(value["kind"]) if dependency else None,
                str(value["reason_code"]),
                value["reason"],
                jsonb_text(value.get("cycle", [])),
                value["policy_version"],
                at,
            )
        )
    elif record_name == _CREATED:
        task = value["task"]
        writes.specs.append(
            (
                *where,
                meta["event_id"],
                root,
                tenant,
                value["mission_id"],
                value.get("parent_mission_id"),
                task["title"],
                task.get("description", ""),
                str(task.get("priority", "NORMAL")),
                task.get("deadline"),
                value.get("owner_agent_id"),
                value.get("max_attempts", 3),
                at,
            )
        )


def _handed_off(writes: MissionWrites, value: dict[str, Any], position: Position, at: datetime) -> None:
    """A handoff: a history row that keeps the state, and a delta that changes no state, no attempt."""
    meta = value["meta"]
    state, owner = str(value["state"]), value["owner"]
    key = (meta["root_id"], value["mission_id"])
    current = writes.missions.get(key)
    attempt = current.attempt if current is not None else None
    if attempt is None:
        writes.unresolved.append(len(writes.transitions))
    writes.transitions.append(
        (
            position.topic,
            position.partition,
            position.offset,
            meta["event_id"],
            meta.get("causation_id"),
            key[0],
            meta["tenant_id"],
            key[1],
            state,
            state,
            attempt,
            owner,
            value["message"],
            "",
            None,
            value.get("policy_version", 0),
            at,
        )
    )
    delta = MissionDelta(
        root_id=key[0],
        mission_id=key[1],
        tenant_id=meta["tenant_id"],
        state=state,
        attempt=None,
        agent_id=owner if state == "RUNNING" else None,
        result_summary="",
        quality_score=None,
        policy_version=value.get("policy_version", 0),
        spec_event_id=None,
        created_at=None,
        created_offset=None,
        started_at=None,
        finished_at=None,
        updated_at=at,
        topic=position.topic,
        partition=position.partition,
        offset=position.offset,
    )
    _merge(writes, delta)


def _transitioned(writes: MissionWrites, value: dict[str, Any], position: Position, at: datetime) -> None:
    meta = value["meta"]
    state, previous = str(value["to_state"]), str(value["from_state"])
    created = previous == "UNKNOWN"
    delta = MissionDelta(
        root_id=meta["root_id"],
        mission_id=value["mission_id"],
        tenant_id=meta["tenant_id"],
        state=state,
        attempt=value["attempt"],
        agent_id=value.get("agent_id"),
        result_summary=value.get("result_summary", ""),
        quality_score=value.get("quality_score"),
        policy_version=value.get("policy_version", 0),
        spec_event_id=meta.get("causation_id") if created else None,
        created_at=at if created else None,
        created_offset=position.offset if created else None,
        started_at=at if state == "RUNNING" else None,
        finished_at=at if state in FINISHED else None,
        updated_at=at,
        topic=position.topic,
        partition=position.partition,
        offset=position.offset,
    )
    _merge(writes, delta)


def _merge(writes: MissionWrites, delta: MissionDelta) -> None:
    key = (delta.root_id, delta.mission_id)
    current = writes.missions.get(key)
    if current is None:
        writes.missions[key] = delta
    else:
        current.merge(delta)
