"""Reading topic partitions back from Kafka, from their first record to their end, as a stream.

Replay never loads a topic: each partition is read by its own consumer in offset order and
handed on record by record, so memory stays flat however long the log. "The end" is the
high watermark when reading starts: records appended later are left for the next run, so
that a replay of a live system terminates and every step of it sees the same records.
Readers are ``read_committed``: aborted records and transaction markers are never seen
(offsets are therefore sparse; nothing here counts them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import (
    Consumer,
    KafkaError,
    Message,
    TopicPartition,
)

from agentlog import kafka_config
from agentlog.errors import AgentlogError
from agentlog.projections import GENESIS, PartitionChain
from agentlog.records import Record
from agentlog.replay.errors import KafkaReadError
from agentlog.settings import Settings
from agentlog.watermarks import watermarks

_BATCH = 2_000
_WAIT_S = 0.5
"""Longest wait for the next record when none is queued (``consume`` returns at the first one)."""


@dataclass(frozen=True, slots=True)
class ChainedRecord:
    """A record with the audit-chain hashes recomputed from Kafka (see :mod:`agentlog.projections.audit_chain`)."""

    record: Record
    prev_hash: bytes
    hash: bytes


def _consumer(settings: Settings) -> Consumer:
    return Consumer(
        {
            **kafka_config.reader(settings),
            "enable.partition.eof": True,
            # One partition per consumer, several consumers at once: a modest prefetch keeps memory flat.
            "fetch.max.bytes": 2 * 1024 * 1024,
            "max.partition.fetch.bytes": 2 * 1024 * 1024,
            "queued.max.messages.kbytes": 4 * 1024,
            "queued.min.messages": 10_000,
            "fetch.wait.max.ms": 10,  # at a partition's end, say so at once (the default waits 500 ms)
        }
    )


def _next_batch(consumer: Consumer) -> list[Message]:
    """What the client has queued, without waiting; or, when nothing is, the first record to arrive.

    ``consume(n, timeout)`` waits for ``n`` records or the timeout, so a plain call costs a
    full timeout whenever fewer are queued (small transactional batches, a partition's end).
    """
    batch = consumer.consume(_BATCH, 0)
    return batch if batch else consumer.consume(1, _WAIT_S)


def partitions_of(settings: Settings, topic: str) -> list[int]:
    """The partition numbers of ``topic``; raises :class:`KafkaReadError` if it does not exist."""
    consumer = _consumer(settings)
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    finally:
        consumer.close()
    if metadata is None or metadata.error is not None:
        reason = metadata.error.str() if metadata is not None and metadata.error is not None else "no such topic"
        raise KafkaReadError(topic, reason)
    return sorted(metadata.partitions)


def read_partition(settings: Settings, topic: str, partition: int) -> Iterator[Record]:
    """Every committed record of one partition, in offset order, up to its end when reading starts."""
    consumer = _consumer(settings)
    try:
        tp = TopicPartition(topic, partition)
        low, high = _watermarks(consumer, tp)
        if high <= low:
            return
        # An explicit offset: OFFSET_BEGINNING costs a lookup of about half a second per partition.
        consumer.assign([TopicPartition(topic, partition, low)])
        last = high - 1
        while True:
            for msg in _next_batch(consumer):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return
                    raise KafkaReadError(topic, f"partition {partition}: {error.str()}")
                record = Record.from_message(msg)
                yield record
                if record.offset >= last:
                    return
    finally:
        consumer.close()


def _watermarks(consumer: Consumer, tp: TopicPartition) -> tuple[int, int]:
    """Low and high watermark, as a :class:`KafkaReadError` when the broker cannot say."""
    try:
        return watermarks(consumer, tp.topic, tp.partition)
    except AgentlogError as e:
        raise KafkaReadError(tp.topic, f"partition {tp.partition}: {e}") from e


def chained(records: Iterator[Record]) -> Iterator[ChainedRecord]:
    """``records`` of one partition (from its first record) with their recomputed chain hashes."""
    prev = GENESIS
    chain: PartitionChain | None = None
    for r in records:
        chain = chain or PartitionChain(r.topic, r.partition)
        digest = chain.link(prev, r.offset, r.timestamp_ms, r.key, r.value)
        yield ChainedRecord(r, prev, digest)
        prev = digest


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
    consumer = _consumer(settings)
    try:
        for topic in topics:
            for partition in partitions_of(settings, topic):
                low, high = _watermarks(consumer, TopicPartition(topic, partition))
                window = 64
                while high > low:
                    start = max(low, high - window)
                    last = _last_offset(consumer, topic, partition, start, high)
                    if last is not None:
                        ends[(topic, partition)] = last + 1
                        break
                    if start == low:
                        break  # markers only: nothing committed to project
                    window *= 16
    finally:
        consumer.close()
    return ends


def _last_offset(consumer: Consumer, topic: str, partition: int, start: int, high: int) -> int | None:
    consumer.assign([TopicPartition(topic, partition, start)])
    last: int | None = None
    try:
        while True:
            for msg in _next_batch(consumer):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return last
                    raise KafkaReadError(topic, f"partition {partition}: {error.str()}")
                last = msg.offset()
                if last is not None and last >= high - 1:
                    return last
    finally:
        consumer.unassign()
