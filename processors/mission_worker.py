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

from agentlog.partition_reader import PartitionReadError, read_changelog
from agentlog.processors.errors import GateError
from agentlog.processors.input_merge import InputRecord
from agentlog.processors.mission_core import CORE_VERSION, decide, expire
from agentlog.processors.mission_input import MISSION_ORDER, NAME, SOURCES, decode_mission_input
from agentlog.processors.mission_state import MissionPartition, records_of, restore
from agentlog.processors.policy_reader import PolicyReader
from agentlog.processors.runtime import (
    RESTORE_TIMEOUT_S,
    ChangelogRecord,
    Decided,
    ProcessorRuntime,
    RuntimeConfig,
    Unreadable,
)
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import ensure_topics
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


class MissionProcessor:
    """The mission processor's part of a worker: its topics, its core, its changelog and its policy."""

    name = NAME
    stage = STAGE
    order = MISSION_ORDER
    core_version = CORE_VERSION

    def __init__(self, settings: Settings, policy_name: str) -> None:
        self.settings = settings
        self.serde = Serde.from_settings(settings)
        self.input_topics = tuple(settings.topic_prefix + spec.name for spec in SOURCES)
        self.output_topic = settings.topic_prefix + MISSION_EVENTS.name
        self.changelog_topic = settings.topic_prefix + MISSIONS_CHANGELOG.name
        ensure_topics(settings, (MISSIONS_CHANGELOG,))
        self.policies = PolicyReader(settings, policy_name)

    def start(self) -> None:
        self.policies.catch_up()

    def poll(self) -> None:
        self.policies.poll()

    def restore(self, partitions: list[int]) -> dict[int, MissionPartition]:
        try:
            latest = read_changelog(self.settings, self.changelog_topic, partitions, RESTORE_TIMEOUT_S)
        except PartitionReadError as e:
            raise GateError(f"restoring mission partitions {sorted(partitions)}: {e}") from e
        return {p: restore(p, records.items()) for p, records in latest.items()}

    def forget(self, partitions: list[int]) -> None:
        """Nothing is kept beside the states."""

    def decide(self, state: MissionPartition, record: InputRecord) -> Decided:
        try:
            event = decode_mission_input(self.serde, record)
        except Exception as e:  # any input that is not a valid event is dead-lettered, never retried
            raise Unreadable(str(e)) from e
        if event is None:
            return Decided([], set())
        outputs, changed = decide(state, event, self.policies.current)
        return Decided(outputs, changed)

    def expire(self, state: MissionPartition, now: datetime) -> Decided:
        outputs, changed = expire(state, now, self.policies.current)
        return Decided(outputs, changed)

    def changelog(self, partition: int, state: MissionPartition, changed: set[str]) -> list[ChangelogRecord]:
        return records_of(state, changed)


def mission_worker(settings: Settings, config: MissionConfig) -> ProcessorRuntime[MissionPartition]:
    """One mission worker process: the mission processor on the processor runtime."""
    return ProcessorRuntime(settings, MissionProcessor(settings, config.policy_name), config)
