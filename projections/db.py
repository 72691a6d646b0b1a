"""Connections to the projection database, pointed at one target schema."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from agentlog.projections.errors import DatabaseUnavailableError, NotMigratedError
from agentlog.settings import Settings

DEFAULT_SCHEMA = "agentlog"
PROJECTOR_ROLE = "agentlog_projector"
"""Role the projector writes as: INSERT/SELECT on the audit log, never UPDATE/DELETE."""

Conn = psycopg.Connection[TupleRow]
"""A connection of this package (rows as tuples)."""

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(schema: str) -> str:
    """``schema`` if it is a plain lower-case identifier; raises ValueError otherwise."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema {schema!r}: expected lower-case letters, digits and underscores (at most 63)")
    if schema.startswith("pg_") or schema == "information_schema":
        raise ValueError(f"schema {schema!r}: names starting with pg_, and information_schema, are PostgreSQL's own")
    return schema


def connect(
    settings: Settings,
    schema: str = DEFAULT_SCHEMA,
    *,
    role: str | None = None,
    autocommit: bool = False,
    application_name: str = "agentlog",
) -> Conn:
    """A connection whose ``search_path`` is ``schema`` (and whose role is ``role``, if given)."""
    check_schema_name(schema)
    try:
        conn = psycopg.connect(
            settings.database_url.get_secret_value(),
            autocommit=True,
            connect_timeout=10,
            application_name=application_name,
        )
    except psycopg.OperationalError as e:
        raise DatabaseUnavailableError(f"cannot connect to PostgreSQL: {e}") from e
    try:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        if role is not None:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    except psycopg.OperationalError as e:
        conn.close()
        raise DatabaseUnavailableError(f"PostgreSQL dropped the connection: {e}") from e
    conn.autocommit = autocommit
    return conn


def require_tables(conn: Conn, schema: str) -> None:
    """Raise :class:`NotMigratedError` unless ``schema`` holds the projection tables (the newest included)."""
    newest = (f"{schema}.agents", f"{schema}.missions", f"{schema}.message_states")
    row = conn.execute("SELECT to_regclass(%s), to_regclass(%s), to_regclass(%s)", newest).fetchone()
    if row is None or None in row:
        raise NotMigratedError(schema)


def projected_offsets(conn: Conn, topics: list[str]) -> dict[tuple[str, int], int]:
    """Per (topic, partition) of ``topics``, the offset the projector will read next (what it has written is below)."""
    rows = conn.execute(
        "SELECT topic, partition, next_offset FROM projector_positions WHERE topic = ANY(%s)", (topics,)
    ).fetchall()
    return {(t, p): o for t, p, o in rows}


TENANT_SCHEMA_SUFFIX = "_tenant"
"""The schema beside each projection schema holding its tenant views (migration ``0003``)."""


def tenant_schema(schema: str) -> str:
    """The schema of ``schema``'s tenant views: what a tenant login reads instead of ``schema``."""
    return schema + TENANT_SCHEMA_SUFFIX


def drop_schema(conn: Conn, schema: str) -> None:
    """Drop a projection schema with everything in it, its tenant views' schema included."""
    for name in (tenant_schema(schema), schema):
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def one_row(conn: Conn, query: str, args: dict[str, Any]) -> tuple[Any, ...]:
    """The one row an aggregate query returns."""
    row = conn.execute(query, args).fetchone()
    assert row is not None
    return tuple(row)
