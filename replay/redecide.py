"""Re-running the spawn gate's pure core over recorded inputs."""

from __future__ import annotations

from agentlog.errors import DecodeError
from agentlog.events import Event
from agentlog.processors.gate_input import decode_input
from agentlog.processors.input_merge import InputRecord
from agentlog.processors.policy import Policy
from agentlog.processors.spawn_gate import decide
from agentlog.processors.tree_state import PartitionState
from agentlog.serde import Serde
from agentlog.topics import TREE_PARTITIONS


def redecide(
    inputs: dict[int, list[InputRecord]], policy: Policy | None, partitions: int = TREE_PARTITIONS
) -> dict[int, list[Event]]:
    """The decisions the gate makes for ``inputs`` (per partition, in decision order) under ``policy``.

    Records that do not decode are skipped, as the gate dead-letters them.
    """
    serde = Serde()
    decisions: dict[int, list[Event]] = {}
    for partition, records in sorted(inputs.items()):
        state = PartitionState(partition=partition, partitions=partitions)
        out: list[Event] = []
        for record in records:
            try:
                event = decode_input(serde, record)
            except DecodeError:
                continue
            out += decide(state, event, policy)
        decisions[partition] = out
    return decisions
