"""Fixtures of the projection tests: a migrated schema per test and a projector to run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from agentlog.events import Event
from agentlog.producer import Producer
from agentlog.projections import drop_schema
from agentlog.projections.migrate import migrate
from agentlog.projections.projector import Projector, ProjectorOptions, ProjectorStats
from agentlog.settings import Settings


@pytest.fixture
def schema(settings: Settings, unique_name: str) -> Iterator[str]:
    """A freshly migrated schema, unique to this test, dropped afterwards."""
    name = "t_" + unique_name.lower()
    migrate(settings, name)
    yield name
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        drop_schema(conn, name)


@pytest.fixture
def db(settings: Settings, schema: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection (as the owner) with the test's schema on its search path."""
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        yield conn


@pytest.fixture
def publish(settings: Settings) -> Callable[[list[Event]], None]:
    """Publish events to the test's topics and wait for the acknowledgements."""

    def publish(events: list[Event]) -> None:
        with Producer(settings) as producer:
            producer.publish_many(events)

    return publish


@pytest.fixture
def project(settings: Settings, schema: str, unique_name: str) -> Callable[..., ProjectorStats]:
    """Run a projector into the test's schema until the topics have been quiet for a moment."""

    def project(**options: Any) -> ProjectorStats:
        options.setdefault("group_id", f"projector-{unique_name}")
        options.setdefault("idle_exit_s", 2.0)
        return Projector(settings, ProjectorOptions(schema=schema, **options)).run()

    return project
