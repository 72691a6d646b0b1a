"""The reference for the gate's kill tests: its recorded inputs, read back, and the pure core re-run over them.

The order is the one the gate recorded: each decision's point (the ``agentlog-decided``
header) says which inputs it had decided before, which is append-time order
(:data:`agentlog.processors.GATE_ORDER`) except around an input that became visible late.
A re-run of the pure core over these records reproduces the decisions of an
uninterrupted gate that read its inputs in that order.
"""

from __future__ import annotations

from agentlog import events as ev
from agentlog.errors import DecodeError
from agentlog.processors import DecisionPoint, InputRecord, PartitionState, Policy, decide, decode_input
from agentlog.replay.input_order import RecordedOrder
from agentlog.replay.log_source import KafkaLog
from agentlog.serde import Serde
from agentlog.settings import Settings


def gate_inputs(settings: Settings) -> dict[int, list[InputRecord]]:
    """Per partition, every input the spawn gate has committed, in the order its decisions recorded."""
    log = KafkaLog(settings)
    by_partition: dict[int, list[InputRecord]] = {}
    for partition in log.partitions():
        order = RecordedOrder(log.inputs(partition))
        records: list[InputRecord] = []
        last: DecisionPoint | None = None
        for decision in log.decisions(partition):
            point = DecisionPoint.of(decision.headers)
            assert point is not None, f"decision {decision} has no decision point"
            if point == last:
                continue  # another output of the same cause
            last = point
            records += order.through(point)
        committed = log.decided_up_to(partition) or {}
        records += (r for r in order.until(2**63 - 1) if r.offset < committed.get(r.source, 0))  # decided, no outputs
        if records:
            by_partition[partition] = records
    return by_partition


def out_of_append_order(inputs: dict[int, list[InputRecord]]) -> int:
    """How many inputs were decided after one that sorts behind them (late inputs, as the gate logs them)."""
    late = 0
    for records in inputs.values():
        highest = None
        for record in records:
            key = record.sort_key()
            if highest is not None and key < highest:
                late += 1
            highest = key if highest is None else max(highest, key)
    return late


def redecide(inputs: dict[int, list[InputRecord]], policy: Policy | None, partitions: int) -> dict[int, list[ev.Event]]:
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
