"""The tree partition count: chosen once when the topics are created, read from the broker, never changed in place."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime

from agentlog import kafka_config
from agentlog.processors.errors import GateError
from agentlog.processors.gate_changelog import _POLICY, GATE_CHANGELOG, changelog_topic, restore_partitions
from agentlog.settings import Settings
from agentlog.topic_admin import delete_topics, ensure_topics, tree_partition_count
from agentlog.topics import (
    AUDIT_CHECKPOINTS,
    DEFAULT_TREE_PARTITIONS,
    DEPLOYED,
    DLQ,
    KEYRING,
    MESSAGES,
    MISSIONS,
    POLICY_CONFIG,
)

from ..support import Stack, agentlog_env, stack_settings


def _counts(settings: Settings) -> dict[str, int]:
    topics = AdminClient(kafka_config.base(settings)).list_topics(timeout=30).topics
    return {spec.name: len(topics[settings.topic_prefix + spec.name].partitions) for spec in DEPLOYED}


def _delete(settings: Settings, name: str) -> None:
    """Delete a topic and wait until the broker's metadata no longer lists it."""
    delete_topics(settings, [name])
    admin = AdminClient(kafka_config.base(settings))
    deadline = time.monotonic() + 60
    while name in admin.list_topics(timeout=30).topics:
        assert time.monotonic() < deadline, f"{name} is still listed after its deletion"
        time.sleep(0.2)


def _topics_create(settings: Settings, tree_partitions: int | None = None) -> subprocess.CompletedProcess[str]:
    env = agentlog_env(settings)
    env.pop("AGENTLOG_TREE_PARTITIONS")  # the product's default unless the test names a count
    if tree_partitions is not None:
        env["AGENTLOG_TREE_PARTITIONS"] = str(tree_partitions)
    return subprocess.run(
        ["agentlog", "topics", "create"], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def fresh(stack: Stack, unique_name: str) -> Iterator[Settings]:
    """Settings for a prefix under which no topic exists yet."""
    settings = stack_settings(stack, f"{unique_name}.")
    yield settings
    delete_topics(settings, [settings.topic_prefix + s.name for s in (*DEPLOYED, GATE_CHANGELOG)])


def test_the_count_is_chosen_when_the_topics_are_created_and_never_changed(fresh: Settings) -> None:
    """A new deployment gets the default; a different AGENTLOG_TREE_PARTITIONS later is refused, naming the topics."""
    created = _topics_create(fresh)
    assert created.returncode == 0, created.stderr
    counts = _counts(fresh)
    assert counts[POLICY_CONFIG.name] == counts[KEYRING.name] == 1 and counts[DLQ.name] == 3
    assert counts[AUDIT_CHECKPOINTS.name] == 1
    fixed = (POLICY_CONFIG.name, KEYRING.name, DLQ.name, AUDIT_CHECKPOINTS.name)
    assert {n for s, n in counts.items() if s not in fixed} == {DEFAULT_TREE_PARTITIONS}
    refused = _topics_create(fresh, 24)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert f"mismatch   {fresh.topic_prefix}{MISSIONS.name}  (has 12 partitions, AGENTLOG_TREE_PARTITIONS says 24)" in (
        refused.stdout
    )
    assert "never changed in place" in refused.stderr
    assert _counts(fresh) == counts
    assert _topics_create(fresh, DEFAULT_TREE_PARTITIONS).returncode == 0


def test_a_missing_topic_is_created_with_the_deployments_count(fresh: Settings) -> None:
    """Topics created with 3 partitions: one recreated later (no setting) gets 3, and every component reads 3."""
    ensure_topics(fresh.model_copy(update={"tree_partitions": 3}))
    _delete(fresh, fresh.topic_prefix + MISSIONS.name)
    ensure_topics(fresh)
    assert _counts(fresh)[MISSIONS.name] == 3
    assert tree_partition_count(fresh) == 3


def test_topics_that_disagree_stop_every_component(settings: Settings) -> None:
    """One tree-keyed topic with another count: topics create, the gate and replay refuse, naming it."""
    name = settings.topic_prefix + MESSAGES.name
    _delete(settings, name)
    admin = AdminClient(kafka_config.base(settings))
    admin.create_topics([NewTopic(name, 2, 1)])[name].result()
    expected = f"{name} has 2"
    env = agentlog_env(settings)
    for command in (["topics", "create"], ["processors", "run", "--worker-id", "odd"], ["replay", "decisions"]):
        done = subprocess.run(["agentlog", *command], env=env, capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode != 0, (command, done.stdout)
        assert expected in done.stderr and "Traceback" not in done.stderr, (command, done.stderr[-2000:])


def test_a_gate_state_decided_with_another_count_is_not_restored(settings: Settings) -> None:
    """The changelog records the count its state was decided with; a restore under another count stops."""
    ensure_topics(settings, (GATE_CHANGELOG,))
    producer = KafkaProducer(kafka_config.producer(settings))
    record = json.dumps({"layout": 2, "policy": "default", "partitions": 4}).encode()
    producer.produce(changelog_topic(settings), record, _POLICY, partition=0)
    assert producer.flush(30) == 0
    with pytest.raises(GateError, match="decided with 4 tree partitions, but the topics have 6"):
        restore_partitions(settings, [0], tree_partition_count(settings, (GATE_CHANGELOG,)))
    delete_topics(settings, [changelog_topic(settings)])
