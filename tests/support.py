"""Helpers the tests import (fixtures live in the conftest files; a conftest is never imported)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentlog.settings import Settings, connection_env

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Stack:
    """Addresses of the broker and the database the tests use."""

    bootstrap_servers: str
    database_url: str


TEST_TREE_PARTITIONS = 6
"""The tree partition count of the tests' topics (fewer than the default of 12: less for the broker to do).

The replay tests' recorded run uses the default."""


def stack_settings(stack: Stack, prefix: str, **overrides: Any) -> Settings:
    """Settings pointing at ``stack`` under the topic prefix ``prefix`` (no schema registry)."""
    return Settings(
        bootstrap_servers=stack.bootstrap_servers,
        database_url=stack.database_url,  # type: ignore[arg-type]
        topic_prefix=prefix,
        schema_registry_url=None,
        **overrides,
    )


def agentlog_env(settings: Settings) -> dict[str, str]:
    """The environment that points an ``agentlog`` process at ``settings`` (and nothing else)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
    env.update(
        connection_env(settings),
        # A broker busy deleting the topics of earlier tests may take a while to answer.
        AGENTLOG_CONNECT_TIMEOUT_S="60",
        # Topics a subprocess creates (the benchmarks' scratch topics) get the tests' count.
        AGENTLOG_TREE_PARTITIONS=str(TEST_TREE_PARTITIONS),
    )
    return env
