"""The spawn gate's recorded inputs, read back from Kafka in the order the gate decided them.

The order is the gate's own (:class:`processors.input_merge.InputRecord.sort_key`: append
time, topic, offset, per partition), so a re-run of the pure core over these records
reproduces the gate's decisions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from agentlog import kafka_config
from agentlog.errors import AgentlogError
from agentlog.settings import Settings
from agentlog.topics import AGENT_LIFECYCLE, SPAWN_REQUESTS
from processors.input_merge import LIFECYCLE, REQUESTS, InputRecord


def read_topic(settings: Settings, topic: str) -> Iterator[tuple[int, int, int, bytes | None, bytes | None]]:
    """Every committed record of ``topic``: (partition, offset, timestamp ms, key, value)."""
    consumer = Consumer({**kafka_config.reader(settings), "enable.partition.eof": True})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            raise AgentlogError(f"cannot read {topic}: {metadata.error.str()}")
        partitions = sorted(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        open_partitions = set(partitions)
        while open_partitions:
            for msg in consumer.consume(1000, 1.0):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        open_partitions.discard(msg.partition())
                        continue
                    raise AgentlogError(f"reading {topic}: {error.str()}")
                _, timestamp = msg.timestamp()
                yield msg.partition() or 0, msg.offset() or 0, timestamp, msg.key(), msg.value()
    finally:
        consumer.close()


def gate_inputs(settings: Settings) -> dict[int, list[InputRecord]]:
    """Per partition, every input record of the spawn gate in decision order."""
    by_partition: dict[int, list[InputRecord]] = defaultdict(list)
    for source, spec in ((REQUESTS, SPAWN_REQUESTS), (LIFECYCLE, AGENT_LIFECYCLE)):
        topic = settings.topic_prefix + spec.name
        for partition, offset, timestamp, key, value in read_topic(settings, topic):
            by_partition[partition].append(InputRecord(source, topic, partition, offset, timestamp, key, value))
    return {p: sorted(records, key=InputRecord.sort_key) for p, records in sorted(by_partition.items())}
