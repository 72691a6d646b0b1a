"""Records anyone may publish that once stopped the gate for good: each is dead-lettered and deciding goes on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import Producer as KafkaProducer

from agentlog import dead_letters, kafka_config
from agentlog import events as ev
from agentlog.client import AgentlogClient
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.tail import TailOptions, tail
from agentlog.topics import DLQ, SPAWN_REQUESTS

from .gate_harness import Worker, publish_policy


@pytest.fixture
def gate(settings: Settings) -> Iterator[Worker]:
    """A running spawn-gate worker enforcing the default policy."""
    publish_policy(settings)
    worker = Worker(settings, "poison")
    worker.start()
    yield worker
    worker.stop()


def unchecked_root(root_id: str, agent_id: str) -> bytes:
    """A RootAgentRegistered encoded without validation, as a client that ignores the contract would."""
    meta = ev.Meta(tenant_id="acme", root_id=root_id, producer="t")
    event = ev.RootAgentRegistered.model_construct(
        meta=meta, agent_id=agent_id, config="orchestrator", token_budget=1, spawn_budget=0, capabilities=[]
    )
    return Serde().encode(event, "t")


def test_huge_records_are_dead_lettered_and_the_gate_goes_on(gate: Worker, settings: Settings) -> None:
    """A 250,000-character id, a record of about 1 MB and a 500 KB wrong key: dead letters that fit, then decisions."""
    topic = settings.topic_prefix + SPAWN_REQUESTS.name
    raw = KafkaProducer(
        {**kafka_config.base(settings), "partitioner": "murmur2_random", "message.max.bytes": 1_048_576}
    )
    raw.produce(topic, unchecked_root("root-long", "a" * 250_000), b"root-long", partition=0)
    raw.produce(topic, unchecked_root("root-1mb", "b" * 1_039_000), b"root-1mb", partition=1)
    raw.produce(topic, unchecked_root("root-key", "c" * 497_000), b"k" * 500_000, partition=2)
    assert raw.flush(30) == 0
    with AgentlogClient("acme", settings, timeout=60) as client:
        assert isinstance(client.register_root("root-after", "orchestrator", 1_000, 1), ev.RootAdmitted)
    assert gate.alive()
    letters = list(tail(settings, TailOptions(topics=[settings.topic_prefix + DLQ.name])))
    assert len(letters) == 3
    roots = {"0": "root-long", "1": "root-1mb", "2": "root-key"}  # by the partition each was produced to
    by_root = {roots[dict(letter.headers)[dead_letters.SOURCE_PARTITION]]: dict(letter.headers) for letter in letters}
    assert "agent_id" in by_root["root-long"][dead_letters.ERROR_MESSAGE]
    assert dead_letters.TRUNCATED not in by_root["root-long"]  # 250 KB fits whole
    assert "the contract allows" in by_root["root-1mb"][dead_letters.ERROR_MESSAGE]
    assert dead_letters.TRUNCATED in by_root["root-1mb"] and dead_letters.TRUNCATED in by_root["root-key"]
