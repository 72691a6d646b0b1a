"""The consultation bus as a processor of the runtime: messages and the gate's facts in, message facts out.

- Inputs: ``agentlog.messages`` (agents' requests, replies, questions, decisions, alerts and
  handoffs) and ``agentlog.policy.decisions`` (the gate's facts: which agents a tree has,
  and when each ends), co-partitioned by tree, facts first within a millisecond.
- Core: :func:`agentlog.processors.bus_core.decide` on the partition's
  :class:`~agentlog.processors.bus_state.BusPartition`, at each record's append time; timer
  ticks expire requests and escalate or expire questions past their deadlines.
- Outputs: ``agentlog.message.events``, same partition.
- State: ``agentlog.bus.changelog``, one record per tree, per agent and per request or
  question (:mod:`agentlog.processors.bus_state`).
- Side input: the deployment's policy (rates, sizes, operators, who may override decisions).

Run with ``agentlog processors run --processor bus``; several workers share the partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agentlog.events import Event
from agentlog.processors.bus_core import CORE_VERSION, HANDED_OVER, decide, expire
from agentlog.processors.bus_input import BUS_ORDER, NAME, SOURCES, decode_bus_input, record_time_us
from agentlog.processors.bus_state import BusPartition, records_of, restore
from agentlog.processors.core_processor import CoreProcessor
from agentlog.processors.input_merge import InputRecord
from agentlog.processors.policy import Policy
from agentlog.processors.runtime import ChangelogRecord, Decided, ProcessorRuntime, RuntimeConfig
from agentlog.settings import Settings
from agentlog.topics import MESSAGE_EVENTS, TREE_KEYED, TopicSpec

STAGE = "processors.bus"
__all__ = ["BUS_CHANGELOG", "NAME", "SOURCES", "BusConfig", "BusProcessor", "bus_worker"]
BUS_CHANGELOG = TopicSpec(
    "agentlog.bus.changelog",
    TREE_KEYED,
    (),
    "root_id, root_id NUL a NUL agent_id, or root_id NUL m NUL message_id",
    "Internal: the consultation bus's state, one compacted record per tree, agent, request and question.",
    cleanup_policy="compact",
)


@dataclass
class BusConfig(RuntimeConfig):
    """Tuning of one bus worker, and the policy whose version it names."""

    policy_name: str = "default"


class BusProcessor(CoreProcessor[BusPartition]):
    """The consultation bus's part of a worker: its topics, its core, its changelog and its policy."""

    name = NAME
    stage = STAGE
    order = BUS_ORDER
    core_version = CORE_VERSION
    sources = SOURCES
    output = MESSAGE_EVENTS
    handed_over = HANDED_OVER
    state_changelog = BUS_CHANGELOG
    what = "bus partitions"

    def decode(self, record: InputRecord) -> Event | None:
        return decode_bus_input(self.serde, record)

    def decide_event(self, state: BusPartition, event: Event, record: InputRecord, policy: Policy | None) -> Decided:
        outputs, changed = decide(state, event, policy, record_time_us(record))
        return Decided(outputs, changed)

    def expire(self, state: BusPartition, now: datetime) -> Decided:
        outputs, changed = expire(state, now, self.policies.current)
        return Decided(outputs, changed)

    def restore_partition(self, partition: int, records: dict[bytes, bytes | None]) -> BusPartition:
        return restore(partition, records.items())

    def changelog(self, partition: int, state: BusPartition, changed: set[str]) -> list[ChangelogRecord]:
        return records_of(state, changed)


def bus_worker(settings: Settings, config: BusConfig) -> ProcessorRuntime[BusPartition]:
    """One bus worker process: the consultation bus on the processor runtime."""
    return ProcessorRuntime(settings, BusProcessor(settings, config.policy_name), config)
