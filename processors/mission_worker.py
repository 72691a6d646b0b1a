"""The mission processor as a processor of the runtime: mission commands and the gate's facts in, mission facts out.

- Inputs: ``agentlog.missions`` (commands) and ``agentlog.policy.decisions`` (the gate's
  facts: which agents a tree has, and when each ends), co-partitioned by tree, facts
  first within a millisecond.
- Core: :func:`agentlog.processors.mission_core.decide` on the partition's
  :class:`~agentlog.processors.mission_state.MissionPartition`; timer ticks archive finished
  missions after the policy's ``mission_retention_ms``.
- Outputs: ``agentlog.mission.events``, same partition.
- State: ``agentlog.missions.changelog``, one record per tree and per mission
  (:mod:`agentlog.processors.mission_state`).
- Side input: the deployment's policy (operators, its version named on every fact).

Run with ``agentlog processors run --processor missions``; several workers share the
partitions. The commit protocol, recovery and rebalancing are the runtime's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agentlog.events import Event
from agentlog.processors.core_processor import CoreProcessor
from agentlog.processors.input_merge import InputRecord
from agentlog.processors.mission_core import CORE_VERSION, decide, expire
from agentlog.processors.mission_input import MISSION_ORDER, NAME, SOURCES, decode_mission_input
from agentlog.processors.mission_state import MissionPartition, records_of, restore
from agentlog.processors.policy import Policy
from agentlog.processors.runtime import ChangelogRecord, Decided, ProcessorRuntime, RuntimeConfig
from agentlog.settings import Settings
from agentlog.topics import MISSION_EVENTS, TREE_KEYED, TopicSpec

STAGE = "processors.missions"
__all__ = ["MISSIONS_CHANGELOG", "NAME", "SOURCES", "MissionConfig", "MissionProcessor", "mission_worker"]
MISSIONS_CHANGELOG = TopicSpec(
    "agentlog.missions-processor.changelog",
    TREE_KEYED,
    (),
    "root_id, or root_id NUL mission_id",
    "Internal: the mission processor's state, one compacted record per tree and per mission.",
    cleanup_policy="compact",
)


@dataclass
class MissionConfig(RuntimeConfig):
    """Tuning of one mission worker, and the policy whose version it names."""

    policy_name: str = "default"


class MissionProcessor(CoreProcessor[MissionPartition]):
    """The mission processor's part of a worker: its topics, its core, its changelog and its policy."""

    name = NAME
    stage = STAGE
    order = MISSION_ORDER
    core_version = CORE_VERSION
    sources = SOURCES
    output = MISSION_EVENTS
    state_changelog = MISSIONS_CHANGELOG
    what = "mission partitions"

    def decode(self, record: InputRecord) -> Event | None:
        return decode_mission_input(self.serde, record)

    def decide_event(
        self, state: MissionPartition, event: Event, record: InputRecord, policy: Policy | None
    ) -> Decided:
        outputs, changed = decide(state, event, policy)
        return Decided(outputs, changed)

    def expire(self, state: MissionPartition, now: datetime) -> Decided:
        outputs, changed = expire(state, now, self.policies.current)
        return Decided(outputs, changed)

    def restore_partition(self, partition: int, records: dict[bytes, bytes | None]) -> MissionPartition:
        return restore(partition, records.items())

    def changelog(self, partition: int, state: MissionPartition, changed: set[str]) -> list[ChangelogRecord]:
        return records_of(state, changed)


def mission_worker(settings: Settings, config: MissionConfig) -> ProcessorRuntime[MissionPartition]:
    """One mission worker process: the mission processor on the processor runtime."""
    return ProcessorRuntime(settings, MissionProcessor(settings, config.policy_name), config)
