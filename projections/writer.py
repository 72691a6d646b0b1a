"""Writing one batch in one PostgreSQL transaction, positions included.

The commit protocol of a batch (what makes each event affect the tables exactly once):

1. ``BEGIN``.
2. Lock the position rows of the batch's partitions (``SELECT … FOR UPDATE``) and check
   that they still hold the offsets the batch starts from; if another projector moved
   one on, raise :class:`StalePositionsError` (the caller re-seeks; nothing is written).
3. ``COPY`` the audit rows; a row already there (two projectors raced for an unowned
   partition) violates the primary key and aborts the batch the same way.
4. ``COPY`` the history rows (agent events, denied spawns, handoffs), then upsert the
   merged agent rows in one pipelined ``executemany``, parents before children.
5. Upsert the positions: next offset and chain head of every partition of the batch.
6. ``COMMIT``. Only now does the caller advance its in-memory positions.

A crash before 6 leaves the database as it was; one after 6 leaves rows and positions
that agree, and the projector resumes from the positions.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import errors, sql
from psycopg.rows import TupleRow
from psycopg.types.json import set_json_dumps

from agentlog.settings import Settings
from projections import audit_chain
from projections.batch import AUDIT_COLUMNS, Batch, PartitionState, TopicPartition
from projections.db import DEFAULT_SCHEMA, PROJECTOR_ROLE, Conn, connect, require_tables
from projections.errors import DatabaseUnavailableError, StalePositionsError
from projections.jsonb import jsonb_text
from projections.lineage_events import AgentDelta

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
_EARLIEST = ["created_at", "started_at", "budget_exhausted_at"]
UPSERT_AGENT = (
    "INSERT INTO agents AS a (agent_id, root_id, tenant_id, parent_id, depth, path, config, token_budget,"
    " spawn_budget, deadline, policy_version, request_id, created_at, ident_rank, ident_at, ident_topic,"
    " ident_partition, ident_offset, status, status_rank, status_at, status_topic, status_partition,"
    " status_offset, started_at, tokens_consumed, tokens_reported, tokens_returned, tokens_topped_up,"
    " budget_exhausted_at) VALUES ("
    " %(agent_id)s, %(root_id)s, %(tenant_id)s, %(parent_id)s, %(depth)s,"
    " CASE WHEN %(ident_rank)s::smallint = 0 THEN NULL"
    " WHEN %(parent_id)s::text IS NULL THEN ARRAY[%(agent_id)s::text]"
    " ELSE COALESCE((SELECT p.path FROM agents p WHERE p.agent_id = %(parent_id)s::text AND p.path IS NOT NULL),"
    " ARRAY[%(parent_id)s::text]) || %(agent_id)s::text END,"
    " %(config)s, %(token_budget)s, %(spawn_budget)s, %(deadline)s, %(policy_version)s, %(request_id)s,"
    " %(created_at)s, %(ident_rank)s, %(ident_at)s, %(ident_topic)s, %(ident_partition)s, %(ident_offset)s,"
    " %(status)s, %(status_rank)s, %(status_at)s, %(status_topic)s, %(status_partition)s, %(status_offset)s,"
    " %(started_at)s, %(tokens_consumed)s, %(tokens_reported)s, %(tokens_returned)s, %(tokens_topped_up)s,"
    " %(budget_exhausted_at)s)"
    " ON CONFLICT (agent_id) DO UPDATE SET "
    + ", ".join(
        [f"{c} = CASE WHEN {_IDENTITY_WINS} THEN EXCLUDED.{c} ELSE a.{c} END" for c in _IDENTITY]
        + [f"{c} = CASE WHEN {_STATUS_WINS} THEN EXCLUDED.{c} ELSE a.{c} END" for c in _STATUS]
        + [f"{c} = a.{c} + EXCLUDED.{c}" for c in _SUMS]
        + ["tokens_reported = GREATEST(a.tokens_reported, EXCLUDED.tokens_reported)"]
        + [f"{c} = LEAST(a.{c}, EXCLUDED.{c})" for c in _EARLIEST]
    )
)
UPSERT_POSITION = (
    "INSERT INTO projector_positions (topic, partition, next_offset, chain_head) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset,"
    " chain_head = EXCLUDED.chain_head, updated_at = now()"
)


def agent_params(delta: AgentDelta) -> dict[str, object]:
    """The parameters of :data:`UPSERT_AGENT` for one merged delta."""
    ident, status = delta.identity, delta.status
    return {
        "agent_id": delta.agent_id,
        "root_id": delta.root_id,
        "tenant_id": delta.tenant_id,
        "parent_id": ident.parent_id if ident else None,
        "depth": ident.depth if ident else None,
        "config": ident.config if ident else None,
        "token_budget": ident.token_budget if ident else None,
        "spawn_budget": ident.spawn_budget if ident else None,
        "deadline": ident.deadline if ident else None,
        "policy_version": ident.policy_version if ident else None,
        "request_id": ident.request_id if ident else None,
        "created_at": delta.created_at,
        "ident_rank": ident.rank if ident else 0,
        "ident_at": ident.at if ident else None,
        "ident_topic": ident.position.topic if ident else None,
        "ident_partition": ident.position.partition if ident else None,
        "ident_offset": ident.position.offset if ident else None,
        "status": status.name if status else None,
        "status_rank": status.rank if status else None,
        "status_at": status.at if status else None,
        "status_topic": status.position.topic if status else None,
        "status_partition": status.position.partition if status else None,
        "status_offset": status.position.offset if status else None,
        "started_at": delta.started_at,
        "tokens_consumed": delta.tokens_consumed,
        "tokens_reported": delta.tokens_reported,
        "tokens_returned": delta.tokens_returned,
        "tokens_topped_up": delta.tokens_topped_up,
        "budget_exhausted_at": delta.budget_exhausted_at,
    }


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


def _copy_sql(table: str, columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )


def _json_passthrough(value: object) -> str:
    """JSON columns arrive as text already made by :func:`projections.jsonb.jsonb_text`."""
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
                conn.rollback()
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
                        with cur.copy(_copy_sql(table, columns)) as copy:
                            copy.set_types(types)
                            for row in rows:
                                copy.write_row(row)
                agents = [agent_params(d) for d in batch.lineage.ordered_agents()]
                if agents:
                    cur.executemany(UPSERT_AGENT, agents)
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
