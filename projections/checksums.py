"""Checksums of the projection tables: equal checksums, equal contents.

Each table is hashed row by row in primary-key order, over every column, so that a
projection rebuilt from Kafka (or one that survived crashes) can be compared with
another in one query per table. Each row is digested first (``md5(row::text)``) and then
the ordered digests, so the string PostgreSQL aggregates is 32 bytes a row and stays far
below its 1 GB limit at millions of rows. ``projector_positions`` is left out: it records
when it was written.
"""

from __future__ import annotations

from psycopg import sql

from agentlog.projections.db import Conn

TABLES: dict[str, tuple[str, ...]] = {
    "audit_log": ("topic", "partition", "offset"),
    "agents": ("agent_id",),
    "agent_events": ("topic", "partition", "offset"),
    "denied_spawns": ("topic", "partition", "offset"),
    "handoffs": ("topic", "partition", "offset"),
    "missions": ("root_id", "mission_id"),
    "mission_transitions": ("topic", "partition", "offset"),
    "mission_dependencies": ("topic", "partition", "offset"),
    "mission_rejections": ("topic", "partition", "offset"),
    "mission_specs": ("topic", "partition", "offset"),
    "message_posts": ("topic", "partition", "offset"),
    "message_states": ("topic", "partition", "offset"),
    "message_deliveries": ("root_id", "message_id", "agent_id", "tenant_id"),
}


def table_checksums(conn: Conn) -> dict[str, tuple[int, str]]:
    """Row count and MD5 of the ordered rows of every projection table."""
    result = {}
    for table, key in TABLES.items():
        order = sql.SQL(", ").join(
            sql.SQL('t.{} COLLATE "C"').format(sql.Identifier(k))
            if k in ("topic", "agent_id", "root_id", "mission_id")
            else sql.SQL("t.{}").format(sql.Identifier(k))
            for k in key
        )
        row = conn.execute(
            sql.SQL("SELECT count(*), md5(COALESCE(string_agg(md5(t::text), '' ORDER BY {}), '')) FROM {} t").format(
                order, sql.Identifier(table)
            )
        ).fetchone()
        assert row is not None  # an aggregate always returns a row
        result[table] = (int(row[0]), str(row[1]))
    return result
