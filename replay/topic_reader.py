"""Reading topic partitions back from Kafka, from their first record to their end, as a stream.

Replay never loads a topic: each partition is read by its own
:class:`~agentlog.partition_reader.PartitionReader` in offset order and handed on record by
record, so memory stays flat however long the log. "The end" is the high watermark when
reading starts: records appended later are left for the next run, so that a replay of a
live system terminates and every step of it sees the same records.
"""

from __future__ import annotations

from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError

from agentlog import kafka_config
from agentlog.partition_reader import BEGINNING, PartitionReader, PartitionReadError
from agentlog.records import Record
from agentlog.replay.errors import KafkaReadError
from agentlog.settings import Settings

_PREFETCH = {
    # One partition per reader, several readers at once: a modest prefetch keeps memory flat.
    "fetch.max.bytes": 2 * 1024 * 1024,
    "max.partition.fetch.bytes": 2 * 1024 * 1024,
    "queued.max.messages.kbytes": 4 * 1024,
    "queued.min.messages": 10_000,
}


def _reader(settings: Settings) -> PartitionReader:
    return PartitionReader(settings, config=_PREFETCH)


NO_SUCH_TOPIC = "no such topic"
"""The reason of a :class:`KafkaReadError` for a topic the broker does not have."""


def partitions_of(settings: Settings, topic: str) -> list[int]:
    """The partition numbers of ``topic``; raises :class:`KafkaReadError` if it does not exist."""
    consumer = Consumer(kafka_config.reader(settings))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    finally:
        consumer.close()
    if metadata is None or metadata.error is not None:
        missing = metadata is None or metadata.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        raise KafkaReadError(topic, NO_SUCH_TOPIC if missing or metadata.error is None else metadata.error.str())
    return sorted(metadata.partitions)


def existing_partitions(settings: Settings, topic: str) -> list[int]:
    """As :func:`partitions_of`, and none when ``topic`` does not exist (a side input a deployment never had)."""
    try:
        return partitions_of(settings, topic)
    except KafkaReadError as e:
        if e.reason != NO_SUCH_TOPIC:
            raise
        return []


def read_optional_topic(settings: Settings, topic: str) -> Iterator[Record]:
    """As :func:`read_topic`, and nothing when ``topic`` does not exist."""
    for partition in existing_partitions(settings, topic):
        yield from read_partition(settings, topic, partition)


def read_partition(settings: Settings, topic: str, partition: int) -> Iterator[Record]:
    """Every committed record of one partition, in offset order, up to its end when reading starts."""
    try:
        with _reader(settings) as reader:
            reader.assign([(topic, partition, BEGINNING)])
            yield from reader.read_to_end()
    except PartitionReadError as e:
        raise KafkaReadError(topic, f"partition {partition}: {e.reason}") from e


def read_topic(settings: Settings, topic: str) -> Iterator[Record]:
    """Every committed record of ``topic``, partition after partition, each from its beginning to its current end."""
    for partition in partitions_of(settings, topic):
        yield from read_partition(settings, topic, partition)


def record_ends(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    """For every partition of ``topics`` holding records: the offset after its last committed record, now.

    Not the high watermark: transaction markers and aborted records take offsets too, and a
    projector that read everything stands at the last record + 1. Found by reading the tail
    of each partition (a wider tail when it holds only markers).
    """
    ends: dict[tuple[str, int], int] = {}
    try:
        with _reader(settings) as reader:
            for topic in topics:
                for partition in partitions_of(settings, topic):
                    end = _record_end(reader, topic, partition)
                    if end is not None:
                        ends[(topic, partition)] = end
    except PartitionReadError as e:
        raise KafkaReadError(e.topic, f"partition {e.partition}: {e.reason}") from e
    return ends


def _record_end(reader: PartitionReader, topic: str, partition: int) -> int | None:
    """After the last committed record of the partition, reading ever wider tails; None when it holds none."""
    low, high = reader.bounds(topic, partition)
    window = 64
    while high > low:
        start = max(low, high - window)
        reader.assign([(topic, partition, start)])
        last = None
        for record in reader.read_to_end():
            last = record.offset
        if last is not None:
            return last + 1
        if start == low:
            return None  # markers only: nothing committed to project
        window *= 16
    return None
