"""Helpers of the projection tests: raw records in and out of a topic."""

from __future__ import annotations

from typing import Any

from agentlog.settings import Settings


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
