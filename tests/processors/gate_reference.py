"""The reference for the gate's kill tests: its recorded inputs, read back, and the pure core re-run over them.

The order is the gate's own (:meth:`agentlog.processors.InputRecord.sort_key`: append time,
topic, offset, per partition), so a re-run of the pure core over these records reproduces
the decisions of an uninterrupted gate.
"""

from __future__ import annotations

from collections import defaultdict

from agentlog import events as ev
from agentlog.errors import DecodeError
from agentlog.processors import LIFECYCLE, REQUESTS, InputRecord, PartitionState, Policy, decide, decode_input
from agentlog.replay import read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import AGENT_LIFECYCLE, SPAWN_REQUESTS, TREE_PARTITIONS


def gate_inputs(settings: Settings) -> dict[int, list[InputRecord]]:
    """Per partition, every input record of the spawn gate in decision order."""
    by_partition: dict[int, list[InputRecord]] = defaultdict(list)
    for source, spec in ((REQUESTS, SPAWN_REQUESTS), (LIFECYCLE, AGENT_LIFECYCLE)):
        topic = settings.topic_prefix + spec.name
        for r in read_topic(settings, topic):
            by_partition[r.partition].append(
                InputRecord(source, topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value)
            )
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
