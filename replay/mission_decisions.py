"""``replay decisions`` for the mission processor: its pure core re-run over the recorded log.

The inputs are mission commands (``agentlog.missions``) and the gate's facts
(``agentlog.policy.decisions``), decided by :func:`agentlog.processors.mission_core.decide`;
the recorded facts are on ``agentlog.mission.events``; timer ticks archive finished
missions (:func:`agentlog.processors.mission_core.expire`). The walk is
:class:`~agentlog.replay.core_replay.CoreReplay`'s.
"""

from __future__ import annotations

from datetime import datetime

from agentlog.events import Event
from agentlog.processors import (
    MISSION_ORDER,
    MISSION_PROCESSOR,
    MISSION_SOURCES,
    InputRecord,
    MissionPartition,
    Policy,
    decide_missions,
    decode_mission_input,
    expire_missions,
)
from agentlog.replay.core_replay import CoreReplay
from agentlog.serde import Serde
from agentlog.topics import MISSION_EVENTS


class MissionReplay(CoreReplay):
    """Re-runs the mission processor over a :class:`~agentlog.replay.log_source.LogSource`."""

    processor = "missions"
    group = MISSION_PROCESSOR
    sources = MISSION_SOURCES
    order = MISSION_ORDER
    facts = MISSION_EVENTS

    def fresh(self) -> MissionPartition:
        return MissionPartition()

    def decode(self, serde: Serde, record: InputRecord) -> Event | None:
        return decode_mission_input(serde, record)

    def decide_input(
        self, state: MissionPartition, event: Event, record: InputRecord, policy: Policy | None, core: int
    ) -> list[Event]:
        return decide_missions(state, event, policy, core)[0]

    def expire(self, state: MissionPartition, at: datetime, policy: Policy | None) -> list[Event]:
        return expire_missions(state, at, policy)[0]
