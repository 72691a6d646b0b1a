"""The reference for the gate's kill tests: its recorded inputs, read back, and the pure core re-run over them.

The order is the gate's own (:meth:`agentlog.processors.InputRecord.sort_key`: append time,
topic, offset, per partition), so a re-run of the pure core over these records reproduces
the decisions of an uninterrupted gate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from agentlog import events as ev
from agentlog.errors import DecodeError
from agentlog.processors import LIFECYCLE, REQUESTS, InputRecord, PartitionState, Policy, decide, decode_input
from agentlog.replay import partitions_of, read_partition
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import AGENT_LIFECYCLE, SPAWN_REQUESTS, TREE_PARTITIONS


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


def redecide(
    inputs: dict[int, list[InputRecord]], policy: Policy | None, partitions: int = TREE_PARTITIONS
) -> dict[int, list[ev.Event]]:
    """The decisions the gate makes for ``inputs`` (per partition, in decision order) under ``policy``.

    Records that do not decode are skipped, as the gate dead-letters them.
    """
    serde = Serde()
    decisions: dict[int, list[ev.Event]] = {}
    for partition, records in sorted(inputs.items()):
        state = PartitionState(partition=partition, partitions=partitions)
        out: list[ev.Event] = []
        for record in records:
            try:
                event = decode_input(serde, record)
            except DecodeError:
                continue
            out += decide(state, event, policy)
        decisions[partition] = out
    return decisions
