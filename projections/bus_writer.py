"""Writing a batch's bus rows inside the projector's transaction (beside the mission writer's step).

Posts and answers are ``COPY``-ed (one row per record, so a batch written once writes them
once). Follow-ups about rows stored before are ``COPY``-ed into a staging table and applied
in one ``UPDATE`` to the newest accepted row of their id below them (newest fact wins; the
first decision and closing are kept; replies add up). Deliveries are staged and upserted
with their commutative merge (addressed OR'd, earliest times kept), so their rows are the
same whatever the order the two topics were read in.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow

from agentlog.projections.bus_events import Answer, BusWrites, FollowUp
from agentlog.projections.copying import copy_rows, copy_types

_WHERE = {"topic": 'text COLLATE "C"', "partition": "integer", "offset": "bigint"}
POST_COLUMNS = {
    **_WHERE,
    "event_id": "uuid",
    "root_id": "text",
    "tenant_id": "text",
    "message_id": "uuid",
    "kind": "text",
    "from_agent_id": "text",
    "to_agent_id": "text",
    "in_reply_to": "uuid",
    "priority": "text",
    "summary": "text",
    "body": "text",
    "details": "jsonb",
    "deadline": "timestamptz",
    "sent_at": "timestamptz",
}
_PROGRESS = {
    "state": "text",
    "replies": "integer",
    "last_reply_at": "timestamptz",
    "escalation_level": "integer",
    "recipient": "text",
    "current_deadline": "timestamptz",
    "decided_at": "timestamptz",
    "decided_by": "text",
    "decision_id": "uuid",
    "closed_at": "timestamptz",
    "updated_at": "timestamptz",
    "updated_offset": "bigint",
}
STATE_COLUMNS = {
    **_WHERE,
    "event_id": "uuid",
    "post_event_id": "uuid",
    "root_id": "text",
    "tenant_id": "text",
    "message_id": "uuid",
    "kind": "text",
    "from_agent_id": "text",
    "recipients": "text[]",
    "broadcast": "bool",
    "priority": "text",
    "in_reply_to": "uuid",
    "deadline": "timestamptz",
    "accepted": "bool",
    "reason": "text",
    "reason_message": "text",
    "policy_version": "integer",
    "answered_at": "timestamptz",
    **_PROGRESS,
}
FOLLOWUP_COLUMNS = {**_WHERE, "root_id": "text", "kind": "text", "message_id": "uuid", **_PROGRESS}
"""``offset``: the first follow-up's; the row updated is the newest accepted one of the id below it."""
DELIVERY_COLUMNS = {
    "root_id": "text",
    "message_id": "uuid",
    "agent_id": "text",
    "tenant_id": "text",
    "addressed": "bool",
    "addressed_at": "timestamptz",
    "acknowledged_at": "timestamptz",
}

FOLLOWUP_STAGE = "projector_bus_followup_stage"
DELIVERY_STAGE = "projector_bus_delivery_stage"
CREATE_BUS_STAGES = "; ".join(
    f"CREATE TEMP TABLE IF NOT EXISTS {stage} ("
    + ", ".join(f'"{c}" {t}' for c, t in columns.items())
    + ") ON COMMIT DELETE ROWS"
    for stage, columns in ((FOLLOWUP_STAGE, FOLLOWUP_COLUMNS), (DELIVERY_STAGE, DELIVERY_COLUMNS))
)
"""The staging tables of a projector connection (one string: run it once when the connection opens)."""

_NEWEST = ("state", "last_reply_at", "escalation_level", "recipient", "current_deadline")
_FIRST = ("decided_at", "decided_by", "decision_id", "closed_at")
APPLY_FOLLOWUPS = (
    "UPDATE message_states s SET "
    + ", ".join(
        ["replies = s.replies + f.replies", "updated_at = f.updated_at", "updated_offset = f.updated_offset"]
        + [f"{c} = COALESCE(f.{c}, s.{c})" for c in _NEWEST]
        + [f"{c} = COALESCE(s.{c}, f.{c})" for c in _FIRST]
    )
    + ' FROM (SELECT f.*, (SELECT max(t."offset") FROM message_states t WHERE t.root_id = f.root_id'
    " AND t.message_id = f.message_id AND t.kind = f.kind AND t.accepted AND t.topic = f.topic"
    f' AND t.partition = f.partition AND t."offset" < f."offset") AS target FROM {FOLLOWUP_STAGE} f) f'
    ' WHERE s.topic = f.topic AND s.partition = f.partition AND s."offset" = f.target'
)
"""Each follow-up finds its row once (the newest accepted one of its id below it) and updates it by its key."""
UPSERT_DELIVERIES = (
    "INSERT INTO message_deliveries AS d ("
    + ", ".join(DELIVERY_COLUMNS)
    + ") SELECT "
    + ", ".join(DELIVERY_COLUMNS)
    + f" FROM {DELIVERY_STAGE} ON CONFLICT (root_id, message_id, agent_id, tenant_id) DO UPDATE SET"
    " addressed = d.addressed OR EXCLUDED.addressed,"
    " addressed_at = LEAST(d.addressed_at, EXCLUDED.addressed_at),"
    " acknowledged_at = LEAST(d.acknowledged_at, EXCLUDED.acknowledged_at)"
)


def state_row(answer: Answer) -> tuple[object, ...]:
    """The ``message_states`` row (:data:`STATE_COLUMNS`) of one answer with its progress in the batch."""
    p = answer.progress
    return (
        *(getattr(answer, c) for c in STATE_COLUMNS if c not in _PROGRESS),
        *(getattr(p, c) for c in _PROGRESS),
    )


def followup_row(followup: FollowUp) -> tuple[object, ...]:
    """The staging row (:data:`FOLLOWUP_COLUMNS`) of one follow-up."""
    topic, partition, root, kind, message_id = followup.key
    p = followup.progress
    return (topic, partition, followup.first_offset, root, kind, message_id, *(getattr(p, c) for c in _PROGRESS))


def _copy(cur: psycopg.Cursor[TupleRow], table: str, columns: dict[str, str], rows: list[tuple[object, ...]]) -> None:
    if rows:
        copy_rows(cur, table, list(columns), copy_types(columns.values()), rows)


def write_bus(cur: psycopg.Cursor[TupleRow], writes: BusWrites) -> None:
    """Copy the posts and answers of ``writes``, then apply its follow-ups and deliveries (inside the caller's
    transaction)."""
    _copy(cur, "message_posts", POST_COLUMNS, writes.posts)
    _copy(cur, "message_states", STATE_COLUMNS, [state_row(a) for a in writes.answers])
    if writes.followups:
        _copy(cur, FOLLOWUP_STAGE, FOLLOWUP_COLUMNS, [followup_row(f) for f in writes.followups.values()])
        cur.execute(APPLY_FOLLOWUPS)
    if writes.deliveries:
        rows: list[tuple[object, ...]] = [
            (*key, d.addressed, d.addressed_at, d.acknowledged_at) for key, d in writes.deliveries.items()
        ]
        _copy(cur, DELIVERY_STAGE, DELIVERY_COLUMNS, rows)
        cur.execute(UPSERT_DELIVERIES)
