"""Fixtures of the replay tests: one real gate run per session, projected into its own schema (never altered)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from agentlog.projections import drop_schema as drop_projection_schema
from agentlog.projections.migrate import migrate
from agentlog.projections.projector import Projector, ProjectorOptions
from agentlog.settings import Settings
from agentlog.topic_admin import delete_topics, ensure_topics
from agentlog.topics import DEPLOYED

from .gate_run import run_scenario
from .scenarios import lifecycle


@dataclass(frozen=True)
class Recorded:
    """A gate run on the real stack: its topics (under ``settings.topic_prefix``) and a projected schema."""

    settings: Settings
    schema: str
    root_id: str

    def env(self) -> dict[str, str]:
        """Environment for the ``agentlog`` CLI against these topics."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
        env.update(
            AGENTLOG_BOOTSTRAP_SERVERS=self.settings.bootstrap_servers,
            AGENTLOG_DATABASE_URL=self.settings.database_url.get_secret_value(),
            AGENTLOG_TOPIC_PREFIX=self.settings.topic_prefix,
        )
        return env


def project(settings: Settings, schema: str) -> None:
    """Migrate ``schema`` and project every topic into it until the topics are quiet."""
    migrate(settings, schema)
    group = f"projector-{schema}"
    Projector(settings, ProjectorOptions(schema=schema, group_id=group, idle_exit_s=1.5)).run()


def drop_schema(settings: Settings, schema: str) -> None:
    """Drop a test schema and everything in it."""
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        drop_projection_schema(conn, schema)


@pytest.fixture(scope="session")
def recorded(stack: object) -> Iterator[Recorded]:
    """The lifecycle scenario decided by a real gate worker, projected into a fresh schema."""
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        bootstrap_servers=stack.bootstrap_servers,  # type: ignore[attr-defined]
        database_url=stack.database_url,  # type: ignore[attr-defined]
        topic_prefix=f"replay_{tag}.",
        schema_registry_url=None,
    )
    ensure_topics(settings)
    run_scenario(settings, lifecycle())
    schema = f"replay_{tag}"
    project(settings, schema)
    yield Recorded(settings, schema, "golden-lifecycle")
    drop_schema(settings, schema)
    delete_topics(settings, [settings.topic_prefix + spec.name for spec in DEPLOYED])
