"""Audit log queries: filtered listings, and checking the hash chains of the stored rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from agentlog.events import event_type
from agentlog.projections.audit_chain import ChainBreak, ChainedRecord, verify
from agentlog.projections.db import Conn
from agentlog.records import Record
from agentlog.signing import SIGNATURE_HEADER


@dataclass(frozen=True)
class AuditFilter:
    """Which audit rows to show; every given field must match."""

    root_id: str | None = None
    agent_id: str | None = None
    """Rows naming this agent in any role (agent, child, parent, handoff end)."""
    record: str | None = None
    """Record name, short (``SpawnDenied``) or full (``agentlog.decision.SpawnDenied``)."""
    since: datetime | None = None
    until: datetime | None = None
    """Kafka timestamps in ``[since, until)``."""
    undecodable: bool = False
    """Only rows that could not be decoded or were misplaced."""
    limit: int = 100
    trace_id: str | None = None
    """Only records whose ``traceparent`` header names this trace (32 lower-case hex digits)."""


@dataclass(frozen=True)
class AuditEntry:
    """One audit row."""

    topic: str
    partition: int
    offset: int
    kafka_ts: datetime | None
    record_name: str | None
    root_id: str | None
    agent_ids: list[str]
    value: Any
    error: str | None
    hash: bytes


def full_record_name(name: str) -> str:
    """The Avro full name of ``name``; full names of records this build does not know pass through."""
    if "." in name:
        return name
    return event_type(name).avro_name


def show(conn: Conn, query: AuditFilter) -> list[AuditEntry]:
    """Audit rows matching ``query``, oldest first (by Kafka timestamp, then position)."""
    conditions = []
    params: dict[str, Any] = {"limit": query.limit}
    if query.root_id is not None:
        conditions.append("root_id = %(root)s")
        params["root"] = query.root_id
    if query.agent_id is not None:
        conditions.append("agent_ids @> ARRAY[%(agent)s]::text[]")
        params["agent"] = query.agent_id
    if query.record is not None:
        conditions.append("record_name = %(record)s")
        params["record"] = full_record_name(query.record)
    if query.since is not None:
        conditions.append("kafka_ts >= %(since)s")
        params["since"] = query.since
    if query.until is not None:
        conditions.append("kafka_ts < %(until)s")
        params["until"] = query.until
    if query.undecodable:
        conditions.append("error IS NOT NULL")
    if query.trace_id is not None:
        conditions.append(
            "EXISTS (SELECT 1 FROM jsonb_array_elements(headers) h"
            " WHERE h->>0 = 'traceparent' AND substr(h->>1, 4, 32) = %(trace)s)"
        )
        params["trace"] = query.trace_id
    where = sql.SQL(" AND ").join(sql.SQL(c) for c in conditions) if conditions else sql.SQL("true")
    statement = sql.SQL(
        'SELECT topic, partition, "offset", kafka_ts, record_name, root_id, agent_ids, value, error, hash'
        ' FROM audit_log WHERE {} ORDER BY kafka_ts, topic, partition, "offset" LIMIT %(limit)s'
    ).format(where)
    with conn.cursor(row_factory=dict_row) as cur:
        return [AuditEntry(**row) for row in cur.execute(statement, params)]


def chained_records(conn: Conn) -> Iterator[ChainedRecord]:
    """Every audit row's chained fields, partition by partition in offset order (server-side cursor)."""
    with conn.transaction(), conn.cursor(name="audit_chain_scan") as cur:
        cur.itersize = 5000
        cur.execute(
            'SELECT topic, partition, "offset", timestamp_ms, key, raw_value, prev_hash, hash, chain_version,'
            ' signature FROM audit_log ORDER BY topic, partition, "offset"'
        )
        for topic, partition, offset, timestamp_ms, key, value, prev_hash, chain_hash, version, signature in cur:
            record = Record(
                topic,
                partition,
                offset,
                timestamp_ms,
                bytes(key) if key is not None else None,
                bytes(value) if value is not None else None,
                [(SIGNATURE_HEADER, signature)] if signature is not None else None,
            )
            yield ChainedRecord(record, bytes(prev_hash), bytes(chain_hash), version)


def verify_stored_chains(conn: Conn) -> list[ChainBreak]:
    """Breaks in the chains as stored (a check of the table alone; ``replay verify`` also compares with Kafka)."""
    return verify(chained_records(conn))
