"""Writing one batch in one PostgreSQL transaction, positions included.

The commit protocol of a batch (what makes each event affect the tables exactly once):

1. ``BEGIN``.
2. Lock the position rows of the batch's partitions (``SELECT … FOR UPDATE``) and check
   that they still hold the offsets the batch starts from; if another projector moved
   one on, raise :class:`StalePositionsError` (the caller re-seeks; nothing is written).
3. ``COPY`` the audit rows; a row already there (two projectors raced for an unowned
   partition) violates the primary key and aborts the batch the same way.
4. ``COPY`` the history rows (agent events, denied spawns, handoffs), then upsert the
   merged agent rows: ``COPY`` into a temporary staging table, then one ``INSERT … SELECT …
   ON CONFLICT`` that computes paths as if the rows were upserted one by one in reading order;
   the mission rows the same way (:mod:`agentlog.projections.mission_writer`); then the bus rows
   (:mod:`agentlog.projections.bus_writer`).
5. Upsert the positions: next offset and chain head of every partition of the batch.
6. ``COMMIT``. Only now does the caller advance its in-memory positions.

A crash before 6 leaves the database as it was; one after 6 leaves rows and positions
that agree, and the projector resumes from the positions.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import errors
from psycopg.rows import TupleRow
from psycopg.types.json import set_json_dumps

from agentlog.projections import audit_chain
from agentlog.projections.batch import AUDIT_COLUMNS, Batch, PartitionState, TopicPartition
from agentlog.projections.bus_writer import CREATE_BUS_STAGES, write_bus
from agentlog.projections.copying import copy_rows, copy_types
from agentlog.projections.db import DEFAULT_SCHEMA, PROJECTOR_ROLE, Conn, connect, require_tables
from agentlog.projections.errors import DatabaseUnavailableError, StalePositionsError
from agentlog.projections.jsonb import jsonb_text
from agentlog.projections.lineage_events import AgentDelta
from agentlog.projections.mission_writer import CREATE_MISSION_STAGE, write_missions
from agentlog.settings import Settings

AGENT_EVENT_COLUMNS = (
    "topic",
    "partition",
    "offset",
    "agent_id",
    "root_id",
    "record_name",
    "occurred_at",
    "status",
    "status_rank",
    "tokens_consumed",
    "tokens_reported",
    "tokens_returned",
    "tokens_topped_up",
)
DENIED_COLUMNS = (
    "topic",
    "partition",
    "offset",
    "request_id",
    "root_id",
    "tenant_id",
    "parent_agent_id",
    "agent_id",
    "child_config",
    "reason",
    "checks",
    "policy_version",
    "message",
    "occurred_at",
)
HANDOFF_COLUMNS = (
    "topic",
    "partition",
    "offset",
    "message_id",
    "root_id",
    "from_agent_id",
    "to_agent_id",
    "priority",
    "title",
    "occurred_at",
)

_IDENTITY_WINS = (
    "(EXCLUDED.ident_rank > a.ident_rank OR (EXCLUDED.ident_rank = a.ident_rank AND a.ident_rank > 0"
    " AND (EXCLUDED.ident_at, EXCLUDED.ident_topic, EXCLUDED.ident_partition, EXCLUDED.ident_offset)"
    " < (a.ident_at, a.ident_topic, a.ident_partition, a.ident_offset)))"
)
_STATUS_WINS = (
    "(EXCLUDED.status_rank IS NOT NULL AND (a.status_rank IS NULL OR EXCLUDED.status_rank > a.status_rank"
    " OR (EXCLUDED.status_rank = a.status_rank"
    " AND (EXCLUDED.status_at, EXCLUDED.status_topic, EXCLUDED.status_partition, EXCLUDED.status_offset)"
    " < (a.status_at, a.status_topic, a.status_partition, a.status_offset))))"
)
_IDENTITY = [
    "tenant_id",
    "parent_id",
    "depth",
    "path",
    "config",
    "token_budget",
    "spawn_budget",
    "deadline",
    "policy_version",
    "request_id",
    "ident_rank",
    "ident_at",
    "ident_topic",
    "ident_partition",
    "ident_offset",
]
_STATUS = ["status", "status_rank", "status_at", "status_topic", "status_partition", "status_offset"]
_SUMS = ["tokens_consumed", "tokens_returned", "tokens_topped_up"]
_BIGINT_MAX = 2**63 - 1
_EARLIEST = ["created_at", "started_at", "budget_exhausted_at"]
_STAGE_TYPES = {
    "ord": "integer",
    "agent_id": "text",
    "root_id": "text",
    "tenant_id": "text",
    "parent_id": "text",
    "depth": "integer",
    "config": "text",
    "token_budget": "bigint",
    "spawn_budget": "integer",
    "deadline": "timestamptz",
    "policy_version": "integer",
    "request_id": "uuid",
    "created_at": "timestamptz",
    "ident_rank": "smallint",
    "ident_at": "timestamptz",
    "ident_topic": 'text COLLATE "C"',
    "ident_partition": "integer",
    "ident_offset": "bigint",
    "status": "text",
    "status_rank": "smallint",
    "status_at": "timestamptz",
    "status_topic": 'text COLLATE "C"',
    "status_partition": "integer",
    "status_offset": "bigint",
    "started_at": "timestamptz",
    "tokens_consumed": "bigint",
    "tokens_reported": "bigint",
    "tokens_returned": "bigint",
    "tokens_topped_up": "bigint",
    "budget_exhausted_at": "timestamptz",
}
AGENT_STAGE_COLUMNS = tuple(_STAGE_TYPES)
"""Columns of the staging table the merged agent deltas are copied into (``ord``: reading order)."""
AGENT_STAGE_TYPES = copy_types(_STAGE_TYPES.values())
AGENT_STAGE = "projector_agent_stage"
CREATE_AGENT_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {AGENT_STAGE} ("
    + ", ".join(f"{c} {t}" for c, t in _STAGE_TYPES.items())
    + ") ON COMMIT DELETE ROWS"
)
_AGENT_COLUMNS = [c for c in AGENT_STAGE_COLUMNS if c != "ord"]
UPSERT_AGENTS = (
    # The staged rows are upserted in one statement, with the same result as upserting them one
    # by one in reading order: an agent's path is its parent's stored path (or [parent] if there
    # is none yet) plus itself -- unless the parent's identity is staged earlier in the same batch
    # and wins over the stored one: then it is the path the parent gets in this statement.
    # (Correlated subqueries, so that stored rows are looked up by key, never scanned.)
    "WITH RECURSIVE wins AS ("
    f" SELECT s.agent_id, s.ord FROM {AGENT_STAGE} s WHERE s.ident_rank > 0"
    " AND COALESCE((SELECT " + _IDENTITY_WINS.replace("EXCLUDED.", "s.") + " FROM agents a"
    " WHERE a.agent_id = s.agent_id), true)"
    "), paths (agent_id, ord, path) AS ("
    " SELECT s.agent_id, s.ord, CASE WHEN s.parent_id IS NULL THEN ARRAY[s.agent_id]"
    " ELSE COALESCE((SELECT p.path FROM agents p WHERE p.agent_id = s.parent_id AND p.path IS NOT NULL),"
    " ARRAY[s.parent_id]) || s.agent_id END"
    f" FROM {AGENT_STAGE} s WHERE s.ident_rank > 0"
    " AND NOT EXISTS (SELECT FROM wins w WHERE w.agent_id = s.parent_id AND w.ord < s.ord)"
    " UNION ALL"
    " SELECT s.agent_id, s.ord, up.path || s.agent_id FROM paths up JOIN wins w ON w.agent_id = up.agent_id"
    f" JOIN {AGENT_STAGE} s ON s.parent_id = up.agent_id AND s.ord > up.ord AND s.ident_rank > 0"
    ") INSERT INTO agents AS a (path, "
    + ", ".join(_AGENT_COLUMNS)
    + ") SELECT p.path, "
    + ", ".join(f"s.{c}" for c in _AGENT_COLUMNS)
    + f" FROM {AGENT_STAGE} s LEFT JOIN paths p ON p.agent_id = s.agent_id ORDER BY s.ord"
    " ON CONFLICT (agent_id) DO UPDATE SET "
    + ", ".join(
        [f"{c} = CASE WHEN {_IDENTITY_WINS} THEN EXCLUDED.{c} ELSE a.{c} END" for c in _IDENTITY]
        + [f"{c} = CASE WHEN {_STATUS_WINS} THEN EXCLUDED.{c} ELSE a.{c} END" for c in _STATUS]
        # Saturating sums: absurd reported counts must not overflow bigint and stop the projector.
        + [f"{c} = LEAST(a.{c}::numeric + EXCLUDED.{c}, {_BIGINT_MAX})::bigint" for c in _SUMS]
        + ["tokens_reported = GREATEST(a.tokens_reported, EXCLUDED.tokens_reported)"]
        + [f"{c} = LEAST(a.{c}, EXCLUDED.{c})" for c in _EARLIEST]
    )
)
UPSERT_POSITION = (
    "INSERT INTO projector_positions (topic, partition, next_offset, chain_head) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset,"
    " chain_head = EXCLUDED.chain_head, updated_at = now()"
)


def agent_row(ord_: int, delta: AgentDelta) -> tuple[object, ...]:
    """The staging row (:data:`AGENT_STAGE_COLUMNS`) of one merged delta, ``ord_`` its place in reading order."""
    ident, status = delta.identity, delta.status
    if ident is None:
        identity: tuple[object, ...] = (None,) * 8 + (delta.created_at, 0, None, None, None, None)
    else:
        where = ident.position
        identity = (
            ident.parent_id,
            ident.depth,
            ident.config,
            ident.token_budget,
            ident.spawn_budget,
            ident.deadline,
            ident.policy_version,
            ident.request_id,
            delta.created_at,
            ident.rank,
            ident.at,
            where.topic,
            where.partition,
            where.offset,
        )
    state: tuple[object, ...] = (None,) * 6
    if status is not None:
        where = status.position
        state = (status.name, status.rank, status.at, where.topic, where.partition, where.offset)
    return (
        ord_,
        delta.agent_id,
        delta.root_id,
        delta.tenant_id,
        *identity,
        *state,
        delta.started_at,
        delta.tokens_consumed,
        delta.tokens_reported,
        delta.tokens_returned,
        delta.tokens_topped_up,
        delta.budget_exhausted_at,
    )


AUDIT_TYPES = [
    "text",
    "int4",
    "int8",
    "int8",
    "timestamptz",
    "bytea",
    "text",
    "jsonb",
    "bytea",
    "text",
    "jsonb",
    "text",
    "uuid",
    "timestamptz",
    "bytea",
    "bytea",
    "int2",
    "text",
]
AGENT_EVENT_TYPES = [
    "text",
    "int4",
    "int8",
    "text",
    "text",
    "text",
    "timestamptz",
    "text",
    "int2",
    "int8",
    "int8",
    "int8",
    "int8",
]
DENIED_TYPES = [
    "text",
    "int4",
    "int8",
    "uuid",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "jsonb",
    "int4",
    "text",
    "timestamptz",
]
HANDOFF_TYPES = ["text", "int4", "int8", "uuid", "text", "text", "text", "text", "text", "timestamptz"]


def _json_passthrough(value: object) -> str:
    """JSON columns arrive as text already made by :func:`agentlog.projections.jsonb.jsonb_text`."""
    return value if isinstance(value, str) else jsonb_text(value)


class BatchWriter:
    """Writes batches into one schema as the projector role; reconnects after a failure."""

    def __init__(self, settings: Settings, schema: str = DEFAULT_SCHEMA, role: str | None = PROJECTOR_ROLE) -> None:
        self.settings = settings
        self.schema = schema
        self.role = role
        self._conn: Conn | None = None

    def connection(self) -> Conn:
        """The open connection, opened (and the schema checked) if there is none."""
        if self._conn is None or self._conn.closed:
            conn = connect(
                self.settings, self.schema, role=self.role, application_name=f"agentlog-projector:{self.schema}"
            )
            try:
                require_tables(conn, self.schema)
                conn.execute("SET jit = off")  # compiling the batch statements costs more than running them
                conn.execute(CREATE_AGENT_STAGE)
                conn.execute(CREATE_MISSION_STAGE)
                conn.execute(CREATE_BUS_STAGES)
                conn.commit()
                set_json_dumps(_json_passthrough, context=conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Close the connection (a new one is opened on the next call)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def load_positions(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, PartitionState]:
        """The stored state of each partition; partitions never projected start at offset 0 and genesis."""
        wanted = list(partitions)
        states = {tp: PartitionState(0, audit_chain.GENESIS) for tp in wanted}
        if not wanted:
            return states
        try:
            conn = self.connection()
            with conn.transaction():
                rows = conn.execute(
                    "SELECT topic, partition, next_offset, chain_head FROM projector_positions"
                    " WHERE (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))",
                    ([t for t, _ in wanted], [p for _, p in wanted]),
                ).fetchall()
        except psycopg.OperationalError as e:
            self.close()
            raise DatabaseUnavailableError(f"cannot read positions: {e}") from e
        for topic, partition, next_offset, head in rows:
            states[(topic, partition)] = PartitionState(next_offset, bytes(head))
        return states

    def row_counts(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """How many audit rows each partition has (call it between batches: it uses the writer's connection)."""
        counts = dict.fromkeys(partitions, 0)
        try:
            conn = self.connection()
            with conn.transaction():
                rows = conn.execute(
                    "SELECT topic, partition, count(*) FROM audit_log"
                    " WHERE (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[])) GROUP BY 1, 2",
                    ([t for t, _ in partitions], [p for _, p in partitions]),
                ).fetchall()
        except psycopg.OperationalError as e:
            self.close()
            raise DatabaseUnavailableError(f"cannot count the audit rows: {e}") from e
        counts.update({(topic, partition): int(n) for topic, partition, n in rows})
        return counts

    def write(self, batch: Batch) -> None:
        """Write ``batch`` and its positions atomically (steps 1-6 of the module docstring)."""
        try:
            conn = self.connection()
            with conn.transaction(), conn.cursor() as cur:
                self._check_positions(cur, batch.start)
                for table, columns, types, rows in (
                    ("audit_log", AUDIT_COLUMNS, AUDIT_TYPES, batch.audit_rows),
                    ("agent_events", AGENT_EVENT_COLUMNS, AGENT_EVENT_TYPES, batch.lineage.agent_events),
                    ("denied_spawns", DENIED_COLUMNS, DENIED_TYPES, batch.lineage.denied),
                    ("handoffs", HANDOFF_COLUMNS, HANDOFF_TYPES, batch.lineage.handoffs),
                ):
                    if rows:
                        copy_rows(cur, table, columns, types, rows)
                agents = batch.lineage.ordered_agents()
                if agents:
                    staged = (agent_row(i, delta) for i, delta in enumerate(agents))
                    copy_rows(cur, AGENT_STAGE, AGENT_STAGE_COLUMNS, AGENT_STAGE_TYPES, staged)
                    cur.execute(UPSERT_AGENTS)
                write_missions(cur, batch.missions)
                write_bus(cur, batch.bus)
                cur.executemany(
                    UPSERT_POSITION,
                    [(t, p, s.next_offset, s.chain_head) for (t, p), s in sorted(batch.end.items())],
                )
        except errors.UniqueViolation as e:
            raise StalePositionsError(None, None) from e
        except psycopg.OperationalError as e:
            self.close()
            raise DatabaseUnavailableError(f"batch not written: {e}") from e

    def _check_positions(self, cur: psycopg.Cursor[TupleRow], start: dict[TopicPartition, PartitionState]) -> None:
        wanted = sorted(start)
        rows = cur.execute(
            "SELECT topic, partition, next_offset FROM projector_positions"
            " WHERE (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))"
            " ORDER BY topic, partition FOR UPDATE",
            ([t for t, _ in wanted], [p for _, p in wanted]),
        ).fetchall()
        found = {(t, p): o for t, p, o in rows}
        for where in wanted:
            stored = found.get(where, 0)
            if stored != start[where].next_offset:
                raise StalePositionsError(where[0], where[1], start[where].next_offset, stored)
