"""Writing a batch's mission rows inside the projector's transaction (step 4 of :mod:`.writer`).

History rows are ``COPY``-ed; the merged mission rows are ``COPY``-ed into a temporary staging
table and upserted in one statement with the merge of :class:`~.mission_events.MissionDelta`
(newest fact wins by offset, the first creation and start are kept). A handoff's attempt the
batch does not know is read from the ``missions`` row first (:func:`resolve_attempts`).
"""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow

from agentlog.projections.copying import copy_rows, copy_types
from agentlog.projections.mission_events import ATTEMPT, MISSION, ROOT, MissionDelta, MissionWrites

_WHERE = {"topic": 'text COLLATE "C"', "partition": "integer", "offset": "bigint"}
TRANSITION_COLUMNS = {
    **_WHERE,
    "event_id": "uuid",
    "causation_id": "uuid",
    "root_id": "text",
    "tenant_id": "text",
    "mission_id": "text",
    "from_state": "text",
    "to_state": "text",
    "attempt": "integer",
    "agent_id": "text",
    "reason": "text",
    "result_summary": "text",
    "quality_score": "double precision",
    "policy_version": "integer",
    "occurred_at": "timestamptz",
}
DEPENDENCY_COLUMNS = {
    **_WHERE,
    "root_id": "text",
    "tenant_id": "text",
    "mission_id": "text",
    "depends_on": "text",
    "kind": "text",
    "policy_version": "integer",
    "occurred_at": "timestamptz",
}
REJECTION_COLUMNS = {
    **_WHERE,
    "causation_id": "uuid",
    "root_id": "text",
    "tenant_id": "text",
    "mission_id": "text",
    "record_name": "text",
    "from_state": "text",
    "to_state": "text",
    "depends_on": "text",
    "kind": "text",
    "reason_code": "text",
    "reason": "text",
    "cycle": "jsonb",
    "policy_version": "integer",
    "occurred_at": "timestamptz",
}
SPEC_COLUMNS = {
    **_WHERE,
    "event_id": "uuid",
    "root_id": "text",
    "tenant_id": "text",
    "mission_id": "text",
    "parent_mission_id": "text",
    "title": "text",
    "description": "text",
    "priority": "text",
    "deadline": "timestamptz",
    "owner_agent_id": "text",
    "max_attempts": "integer",
    "occurred_at": "timestamptz",
}
MISSION_COLUMNS = {
    "root_id": "text",
    "mission_id": "text",
    "tenant_id": "text",
    "state": "text",
    "attempt": "integer",
    "agent_id": "text",
    "result_summary": "text",
    "quality_score": "double precision",
    "policy_version": "integer",
    "spec_event_id": "uuid",
    "created_at": "timestamptz",
    "created_offset": "bigint",
    "started_at": "timestamptz",
    "finished_at": "timestamptz",
    "updated_at": "timestamptz",
    **_WHERE,
}

MISSION_STAGE = "projector_mission_stage"
CREATE_MISSION_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {MISSION_STAGE} ("
    + ", ".join(f'"{c}" {t}' for c, t in MISSION_COLUMNS.items())
    + ") ON COMMIT DELETE ROWS"
)
_NEWEST = {"state", "attempt", "policy_version", "tenant_id", "updated_at", "topic", "partition", "offset"}
_MERGED = {
    "spec_event_id": "COALESCE(m.spec_event_id, EXCLUDED.spec_event_id)",
    "created_at": "COALESCE(m.created_at, EXCLUDED.created_at)",
    "started_at": "COALESCE(m.started_at, EXCLUDED.started_at)",
    "finished_at": "CASE WHEN EXCLUDED.state = 'ARCHIVED' THEN COALESCE(EXCLUDED.finished_at, m.finished_at)"
    " ELSE EXCLUDED.finished_at END",
    "agent_id": "COALESCE(EXCLUDED.agent_id, m.agent_id)",
    "result_summary": "CASE WHEN EXCLUDED.result_summary <> '' THEN EXCLUDED.result_summary ELSE m.result_summary END",
    "quality_score": "COALESCE(EXCLUDED.quality_score, m.quality_score)",
    "created_offset": "m.created_offset",
    **{c: f'EXCLUDED."{c}"' for c in _NEWEST},
}
_MERGE = {
    c: f'CASE WHEN EXCLUDED.created_offset IS NOT NULL THEN EXCLUDED."{c}" ELSE {merged} END'
    for c, merged in _MERGED.items()
}
"""A staged row holding a creation starts the mission anew; otherwise it merges into the stored row."""
UPSERT_MISSIONS = (
    "INSERT INTO missions AS m ("
    + ", ".join(f'"{c}"' for c in MISSION_COLUMNS)
    + ") SELECT "
    + ", ".join(f'"{c}"' for c in MISSION_COLUMNS)
    + f" FROM {MISSION_STAGE} ON CONFLICT (root_id, mission_id) DO UPDATE SET "
    + ", ".join(f'"{c}" = {_MERGE[c]}' for c in MISSION_COLUMNS if c not in ("root_id", "mission_id"))
    + ' WHERE EXCLUDED."offset" > m."offset"'
)


def mission_row(delta: MissionDelta) -> tuple[object, ...]:
    """The staging row (:data:`MISSION_COLUMNS`) of one merged mission delta."""
    return tuple(getattr(delta, c) for c in MISSION_COLUMNS)


def _copy(cur: psycopg.Cursor[TupleRow], table: str, columns: dict[str, str], rows: list[tuple[object, ...]]) -> None:
    if rows:
        copy_rows(cur, table, list(columns), copy_types(columns.values()), rows)


def resolve_attempts(cur: psycopg.Cursor[TupleRow], writes: MissionWrites) -> None:
    """Fill in the attempts of the handoffs of missions the batch has no other fact of: the ``missions`` row's, as
    the facts before the batch left it (1 for a mission the projection never saw created)."""
    if not writes.unresolved:
        return
    keys = sorted({(row[ROOT], row[MISSION]) for row in (writes.transitions[i] for i in writes.unresolved)})
    found = cur.execute(
        "SELECT root_id, mission_id, attempt FROM missions"
        " WHERE (root_id, mission_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        ([r for r, _ in keys], [m for _, m in keys]),
    ).fetchall()
    attempts: dict[tuple[str, str], int] = {(r, m): a for r, m, a in found}
    for i in writes.unresolved:
        row = writes.transitions[i]
        writes.transitions[i] = (*row[:ATTEMPT], attempts.get((row[ROOT], row[MISSION]), 1), *row[ATTEMPT + 1 :])
    for key, delta in writes.missions.items():
        if delta.attempt is None:
            delta.attempt = attempts.get(key, 1)
    writes.unresolved.clear()


def write_missions(cur: psycopg.Cursor[TupleRow], writes: MissionWrites) -> None:
    """Copy the history rows of ``writes`` and upsert its mission rows (inside the caller's transaction)."""
    resolve_attempts(cur, writes)
    _copy(cur, "mission_transitions", TRANSITION_COLUMNS, writes.transitions)
    _copy(cur, "mission_dependencies", DEPENDENCY_COLUMNS, writes.dependencies)
    _copy(cur, "mission_rejections", REJECTION_COLUMNS, writes.rejections)
    _copy(cur, "mission_specs", SPEC_COLUMNS, writes.specs)
    if writes.missions:
        _copy(cur, MISSION_STAGE, MISSION_COLUMNS, [mission_row(d) for d in writes.missions.values()])
        cur.execute(UPSERT_MISSIONS)
