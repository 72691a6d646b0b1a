"""Fixtures of the projection tests: a migrated schema per test and a projector to run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from agentlog.events import Event
from agentlog.producer import Producer
from agentlog.settings import Settings
from projections.migrate import migrate
from projections.projector import Projector, ProjectorOptions, ProjectorStats


@pytest.fixture
def schema(settings: Settings, unique_name: str) -> Iterator[str]:
    """A freshly migrated schema, unique to this test, dropped afterwards."""
    name = "t_" + unique_name.lower()
    migrate(settings, name)
    yield name
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


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


def read_topic(settings: Settings, base_topic: str, timeout: float = 10.0) -> list[Any]:
    """Every record of a catalogue topic (confluent ``Message`` objects), beginning to current end."""
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    from agentlog import kafka_config

    topic = settings.topic_prefix + base_topic
    consumer = Consumer(kafka_config.reader(settings, f"reader-{uuid.uuid4()}"))
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Any] = []
        remaining = {p for p, end in ends.items() if end > 0}
        while remaining:
            message = consumer.poll(timeout)
            assert message is not None, f"timed out reading {topic}"
            if message.error() is None:
                messages.append(message)
                if (message.offset() or 0) + 1 >= ends[message.partition()]:
                    remaining.discard(message.partition())
        return messages
    finally:
        consumer.close()


def produce_raw(
    settings: Settings, base_topic: str, records: list[tuple[bytes | None, bytes | None]], *, big: bool = False
) -> None:
    """Produce raw ``(key, value)`` bytes to a catalogue topic, as a broken client would (``big``: up to 1 MiB)."""
    from confluent_kafka import Producer as KafkaProducer

    from agentlog import kafka_config

    extra = {"message.max.bytes": 1_048_576} if big else {}
    producer = KafkaProducer({**kafka_config.producer(settings), **extra})
    for key, value in records:
        producer.produce(settings.topic_prefix + base_topic, value, key)
    assert producer.flush(30) == 0
