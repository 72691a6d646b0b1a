"""Shared fixtures: a real Kafka broker and a real PostgreSQL, and unique names per test.

Which stack: the one named by ``AGENTLOG_BOOTSTRAP_SERVERS`` / ``AGENTLOG_DATABASE_URL``
if set; else testcontainers when a Docker daemon answers; else the local stack of
``deploy/local`` (started if it is not running).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from agentlog.settings import Settings
from agentlog.topic_admin import delete_topics, ensure_topics
from agentlog.topics import DEPLOYED

from .processors.gate_harness import Worker, running_gate
from .support import REPO, TEST_TREE_PARTITIONS, Stack, agentlog_env, stack_settings


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], check=False, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _local_stack() -> Stack:
    subprocess.run(["bash", str(REPO / "deploy/local/stack.sh"), "up"], check=True, stdout=subprocess.DEVNULL)
    exports = subprocess.run(
        ["bash", str(REPO / "deploy/local/stack.sh"), "env"], check=True, capture_output=True, text=True
    ).stdout
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in exports.splitlines() if line.startswith("export ")
    )
    env = {k: shlex.split(v)[0] if v else v for k, v in env.items()}
    return Stack(env["AGENTLOG_BOOTSTRAP_SERVERS"], env["AGENTLOG_DATABASE_URL"])


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The real broker and database for this test session."""
    servers = os.environ.get("AGENTLOG_BOOTSTRAP_SERVERS")
    database = os.environ.get("AGENTLOG_DATABASE_URL")
    if servers and database:
        yield Stack(servers, database)
    elif _docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with KafkaContainer("apache/kafka:4.4.0").with_kraft() as kafka, PostgresContainer("postgres:15") as pg:
            yield Stack(kafka.get_bootstrap_server(), pg.get_connection_url(driver=None))
    else:
        yield _local_stack()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A short name unique to this test, usable in topic, group and database names."""
    base = "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:24]
    return f"{base}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings(stack: Stack, unique_name: str) -> Iterator[Settings]:
    """Settings whose topics (the whole catalogue, under a unique prefix) exist and are empty."""
    settings = stack_settings(stack, f"{unique_name}.", tree_partitions=TEST_TREE_PARTITIONS)
    ensure_topics(settings)
    yield settings
    delete_topics(settings, [settings.topic_prefix + spec.name for spec in DEPLOYED])


@pytest.fixture
def gate(settings: Settings) -> Iterator[Worker]:
    """A running spawn-gate worker enforcing the default policy on this test's topics."""
    with running_gate(settings, "tests") as worker:
        yield worker


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for running the ``agentlog`` CLI against this test's topics."""
    return agentlog_env(settings)
