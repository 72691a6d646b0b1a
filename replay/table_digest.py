"""Row counts and digests of the projection tables, at any size.

:func:`projections.checksums.table_checksums` hashes one string of every row's text, which
PostgreSQL cannot build beyond 1 GB (about a million audit rows). This digests each row
first (``md5(row::text)``) and then the ordered row digests, so the string aggregated is 32
bytes per row; the order and the tables are the same (:data:`projections.checksums.TABLES`).
"""

from __future__ import annotations

from psycopg import sql

from projections.checksums import TABLES
from projections.db import Conn


def table_digests(conn: Conn) -> dict[str, tuple[int, str]]:
    """Row count and MD5 of the ordered row MD5s of every projection table."""
    result = {}
    for table, key in TABLES.items():
        order = sql.SQL(", ").join(
            sql.SQL('t.{} COLLATE "C"').format(sql.Identifier(k))
            if k in ("topic", "agent_id")
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
