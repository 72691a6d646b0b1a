"""Migrations: idempotent, recorded, and refusing databases that are ahead or altered."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from agentlog.projections.errors import MigrationError
from agentlog.projections.migrate import load_migrations, migrate, status
from agentlog.settings import Settings


def test_migrate_is_idempotent_and_records_checksums(
    settings: Settings, schema: str, db: psycopg.Connection[Any]
) -> None:
    """A second migrate applies nothing; every applied version is recorded with its file's checksum."""
    again = migrate(settings, schema)
    assert [s.just_applied for s in again] == [False] * len(load_migrations())
    recorded = db.execute("SELECT version, checksum FROM schema_migrations ORDER BY version").fetchall()
    assert recorded == [(m.version, m.checksum) for m in load_migrations()]
    assert all(s.applied for s in status(settings, schema))


def test_migrate_refuses_a_database_ahead_of_it(settings: Settings, schema: str, db: psycopg.Connection[Any]) -> None:
    """A version newer than the newest file stops the migration with the version named."""
    db.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
    with pytest.raises(MigrationError) as caught:
        migrate(settings, schema)
    assert caught.value.version == 9999
    assert "ahead" in str(caught.value)


def test_migrate_refuses_an_edited_migration(settings: Settings, schema: str, db: psycopg.Connection[Any]) -> None:
    """An applied migration whose checksum differs from the file is reported, not re-applied."""
    db.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError) as caught:
        migrate(settings, schema)
    assert caught.value.version == 1
    assert "checksum" in caught.value.reason
