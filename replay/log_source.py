"""Where a decision replay reads the recorded log from: Kafka, or an export file (golden logs).

Both give, per partition, the spawn gate's inputs as one stream per input topic and the
recorded decisions (with their headers, where the source kept them), in offset order; and
any catalogue topic's partition, with a consumer group's committed offsets, for the other
processors' replays.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from confluent_kafka import Consumer, TopicPartition

from agentlog import kafka_config
from agentlog.access import GATE_NAME
from agentlog.processors import LIFECYCLE, REQUESTS, InputRecord
from agentlog.records import Record
from agentlog.replay.check_export import load_manifest, read_lines
from agentlog.replay.topic_reader import (
    existing_partitions,
    partitions_of,
    read_optional_topic,
    read_partition,
    read_topic,
)
from agentlog.settings import Settings
from agentlog.topic_admin import tree_partition_count
from agentlog.topics import AGENT_LIFECYCLE, KEYRING, POLICY_CONFIG, POLICY_DECISIONS, SPAWN_REQUESTS
from agentlog.watermarks import committed_offsets


class LogSource(Protocol):
    """A recorded log, read partition by partition."""

    def partitions(self) -> list[int]:
        """The partitions of the tree-keyed topics that hold records."""
        ...

    def partition_count(self) -> int:
        """The partition count of the tree-keyed topics (a tree's partition follows from it)."""
        ...

    def inputs(self, partition: int) -> list[Iterator[InputRecord]]:
        """The gate's inputs of ``partition``: one stream per input topic (requests, lifecycle), in offset order."""
        ...

    def decisions(self, partition: int) -> Iterator[Record]:
        """The recorded decisions of ``partition`` in offset order."""
        ...

    def policy_records(self) -> Iterator[Record]:
        """Every record of the policy topic."""
        ...

    def keyring_records(self) -> Iterator[Record]:
        """Every record of the keyring topic."""
        ...

    def decided_up_to(self, partition: int) -> dict[int, int] | None:
        """Per input source, the offset up to which (excluded) the gate has committed its decisions; None: all."""
        ...

    def topic_partitions(self, base: str) -> list[int]:
        """The partitions of the catalogue topic ``base`` (unprefixed) that the log may hold records of."""
        ...

    def records(self, base: str, partition: int) -> Iterator[Record]:
        """The records of one partition of the catalogue topic ``base`` (unprefixed), in offset order."""
        ...

    def committed(self, group: str, bases: tuple[str, ...], partition: int) -> dict[int, int] | None:
        """Per topic of ``bases`` (by index), the offset consumer group ``group`` (unprefixed) committed on
        ``partition``: below it, the processor's outputs are written; None: everything is (an export)."""
        ...


def _inputs(requests: Iterator[Record], lifecycle: Iterator[Record]) -> list[Iterator[InputRecord]]:
    def inputs(source: int, records: Iterator[Record]) -> Iterator[InputRecord]:
        for r in records:
            yield InputRecord.of(source, r)

    return [inputs(REQUESTS, requests), inputs(LIFECYCLE, lifecycle)]


class KafkaLog:
    """The log on the broker (``settings.topic_prefix``).

    The gate's committed input offsets are read first, so that every input below them has
    its decisions in the decision streams read afterwards; inputs past them may not be
    decided yet.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        prefix = settings.topic_prefix
        self.requests = prefix + SPAWN_REQUESTS.name
        self.lifecycle = prefix + AGENT_LIFECYCLE.name
        self.decisions_topic = prefix + POLICY_DECISIONS.name
        self._partition_count = tree_partition_count(settings)
        self._groups: dict[tuple[str, tuple[str, ...]], dict[tuple[int, int], int]] = {}
        self._committed = self._gate_offsets()

    def _gate_offsets(self) -> dict[tuple[int, int], int]:
        return self._group_offsets(GATE_NAME, (SPAWN_REQUESTS.name, AGENT_LIFECYCLE.name))

    def _group_offsets(self, group: str, bases: tuple[str, ...]) -> dict[tuple[int, int], int]:
        """Per (index in ``bases``, partition), the offset consumer group ``group`` (unprefixed) committed: one
        request for every partition of the tree-keyed topics."""
        prefix = self.settings.topic_prefix
        consumer = Consumer(kafka_config.reader(self.settings, prefix + group))
        try:
            tps = [TopicPartition(prefix + base, p) for base in bases for p in self.partitions()]
            committed = committed_offsets(consumer, tps)
        finally:
            consumer.close()
        sources = {prefix + base: i for i, base in enumerate(bases)}
        return {(sources[tp.topic], tp.partition): max(tp.offset, 0) for tp in committed}

    def partitions(self) -> list[int]:
        return partitions_of(self.settings, self.requests)

    def partition_count(self) -> int:
        return self._partition_count

    def inputs(self, partition: int) -> list[Iterator[InputRecord]]:
        return _inputs(
            read_partition(self.settings, self.requests, partition),
            read_partition(self.settings, self.lifecycle, partition),
        )

    def decisions(self, partition: int) -> Iterator[Record]:
        return read_partition(self.settings, self.decisions_topic, partition)

    def policy_records(self) -> Iterator[Record]:
        return read_topic(self.settings, self.settings.topic_prefix + POLICY_CONFIG.name)

    def keyring_records(self) -> Iterator[Record]:
        return read_optional_topic(self.settings, self.settings.topic_prefix + KEYRING.name)

    def decided_up_to(self, partition: int) -> dict[int, int] | None:
        return {source: self._committed.get((source, partition), 0) for source in (REQUESTS, LIFECYCLE)}

    def topic_partitions(self, base: str) -> list[int]:
        return existing_partitions(self.settings, self.settings.topic_prefix + base)

    def records(self, base: str, partition: int) -> Iterator[Record]:
        return read_partition(self.settings, self.settings.topic_prefix + base, partition)

    def committed(self, group: str, bases: tuple[str, ...], partition: int) -> dict[int, int] | None:
        if (group, bases) not in self._groups:  # once, for every partition, before any output is read
            self._groups[(group, bases)] = self._group_offsets(group, bases)
        offsets = self._groups[(group, bases)]
        return {i: offsets.get((i, partition), 0) for i in range(len(bases))}


LEGACY_TREE_PARTITIONS = 6
"""The tree partition count of exports whose manifest does not record one (it was fixed at 6 then)."""


class ExportLog:
    """A log recorded by ``replay export`` (a golden log): the file is read once per stream."""

    def __init__(self, path: Path) -> None:
        self.path = path
        manifest = load_manifest(path)
        self.encoding = str(manifest.get("encoding", "jsonl"))
        prefix = str(manifest.get("topic_prefix", ""))
        self.requests = prefix + SPAWN_REQUESTS.name
        self.lifecycle = prefix + AGENT_LIFECYCLE.name
        self.decisions_topic = prefix + POLICY_DECISIONS.name
        self.policy_topic = prefix + POLICY_CONFIG.name
        self.keyring_topic = prefix + KEYRING.name
        self.prefix = prefix
        self._partition_count = int(manifest.get("tree_partitions") or LEGACY_TREE_PARTITIONS)
        self._listed = [(str(p["topic"]), int(p["partition"])) for p in manifest.get("partitions", [])]
        self._partitions = self.topic_partitions(SPAWN_REQUESTS.name)

    def _records(self, topic: str, partition: int | None = None) -> Iterator[Record]:
        for _, line in read_lines(self.path, self.encoding):
            if line.topic == topic and (partition is None or line.partition == partition):
                yield Record(
                    line.topic, line.partition, line.offset, line.timestamp_ms, line.key, line.value, line.headers
                )

    def partitions(self) -> list[int]:
        return self._partitions

    def partition_count(self) -> int:
        return self._partition_count

    def inputs(self, partition: int) -> list[Iterator[InputRecord]]:
        return _inputs(self._records(self.requests, partition), self._records(self.lifecycle, partition))

    def decisions(self, partition: int) -> Iterator[Record]:
        return self._records(self.decisions_topic, partition)

    def policy_records(self) -> Iterator[Record]:
        return self._records(self.policy_topic)

    def keyring_records(self) -> Iterator[Record]:
        return self._records(self.keyring_topic)

    def decided_up_to(self, partition: int) -> dict[int, int] | None:
        return None

    def topic_partitions(self, base: str) -> list[int]:
        return sorted({p for t, p in self._listed if t == self.prefix + base})

    def records(self, base: str, partition: int) -> Iterator[Record]:
        return self._records(self.prefix + base, partition)

    def committed(self, group: str, bases: tuple[str, ...], partition: int) -> dict[int, int] | None:
        return None
