"""Versioned SQL migrations: ``projections/migrations/NNNN_name.sql``, applied in order.

``migrate`` is idempotent. In one transaction, under an advisory lock (so that two
migrators never interleave), it:

1. creates the target schema and its ``schema_migrations`` table if missing;
2. refuses to go on if the database holds a version this agentlog does not know (it is
   ahead of the code) or an applied file whose checksum differs from the file here;
3. applies every missing migration in version order, recording version, name and SHA-256.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from agentlog.projections.db import DEFAULT_SCHEMA, Conn, check_schema_name, connect
from agentlog.projections.errors import MigrationError
from agentlog.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6167_6C6F_675F_6D67  # "aglog_mg": one key for every schema; migrations are rare


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text, hex."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    """One migration and whether the schema has it."""

    version: int
    name: str
    applied: bool
    just_applied: bool = False


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files of ``directory`` in version order; raises on a gap or a duplicate."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError("-", None, f"migration file {path.name} is not named NNNN_name.sql")
        migrations.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError("-", migration.version, f"expected migration {expected:04d} next")
    return migrations


def migrate(
    settings: Settings, schema: str = DEFAULT_SCHEMA, *, migrations: list[Migration] | None = None
) -> list[MigrationStatus]:
    """Bring ``schema`` to the newest migration; returns every migration's status."""
    check_schema_name(schema)
    known = migrations if migrations is not None else load_migrations()
    with connect(settings, schema) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = _applied(conn)
        _check(schema, known, applied)
        statuses = []
        for migration in known:
            if migration.version in applied:
                statuses.append(MigrationStatus(migration.version, migration.name, applied=True))
                continue
            try:
                conn.execute(migration.sql.encode())
            except psycopg.Error as e:
                raise MigrationError(schema, migration.version, f"{migration.name} failed: {e}") from e
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            statuses.append(MigrationStatus(migration.version, migration.name, applied=True, just_applied=True))
        return statuses


def status(settings: Settings, schema: str = DEFAULT_SCHEMA) -> list[MigrationStatus]:
    """Which migrations ``schema`` has; raises like :func:`migrate` when it is ahead or altered."""
    known = load_migrations()
    with connect(settings, schema) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f"{schema}.schema_migrations",)).fetchone()
        applied = _applied(conn) if exists and exists[0] is not None else {}
    _check(schema, known, applied)
    return [MigrationStatus(m.version, m.name, m.version in applied) for m in known]


def _applied(conn: Conn) -> dict[int, str]:
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(version): str(checksum) for version, checksum in rows}


def _check(schema: str, known: list[Migration], applied: dict[int, str]) -> None:
    newest = max((m.version for m in known), default=0)
    ahead = sorted(v for v in applied if v > newest)
    if ahead:
        raise MigrationError(
            schema, ahead[-1], f"the database is ahead of this agentlog (it knows migrations up to {newest:04d})"
        )
    for migration in known:
        checksum = applied.get(migration.version)
        if checksum is not None and checksum != migration.checksum:
            raise MigrationError(
                schema, migration.version, f"{migration.name} was applied with a different checksum; files were edited"
            )
