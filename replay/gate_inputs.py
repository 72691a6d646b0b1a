"""The spawn gate's recorded inputs, read back from Kafka in the order the gate decided them.

The order is the gate's own (:class:`agentlog.processors.input_merge.InputRecord.sort_key`: append
time, topic, offset, per partition), so a re-run of the pure core over these records
reproduces the gate's decisions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from agentlog.processors.input_merge import LIFECYCLE, REQUESTS, InputRecord
from agentlog.replay.topic_reader import partitions_of, read_partition
from agentlog.settings import Settings
from agentlog.topics import AGENT_LIFECYCLE, SPAWN_REQUESTS


def read_topic(settings: Settings, topic: str) -> Iterator[tuple[int, int, int, bytes | None, bytes | None]]:
    """Every committed record of ``topic``: (partition, offset, timestamp ms, key, value)."""
    for partition in partitions_of(settings, topic):
        for record in read_partition(settings, topic, partition):
            yield partition, record.offset, record.timestamp_ms, record.key, record.value


def gate_inputs(settings: Settings) -> dict[int, list[InputRecord]]:
    """Per partition, every input record of the spawn gate in decision order."""
    by_partition: dict[int, list[InputRecord]] = defaultdict(list)
    for source, spec in ((REQUESTS, SPAWN_REQUESTS), (LIFECYCLE, AGENT_LIFECYCLE)):
        topic = settings.topic_prefix + spec.name
        for partition, offset, timestamp, key, value in read_topic(settings, topic):
            by_partition[partition].append(InputRecord(source, topic, partition, offset, timestamp, key, value))
    return {p: sorted(records, key=InputRecord.sort_key) for p, records in sorted(by_partition.items())}
