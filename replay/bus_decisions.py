"""``replay decisions`` for the consultation bus: its pure core re-run over the recorded log.

The inputs are agents' messages (``agentlog.messages``) and the gate's facts
(``agentlog.policy.decisions``), decided by :func:`agentlog.processors.bus_core.decide` at
each record's append time, as the worker decides them; the recorded facts are on
``agentlog.message.events``; timer ticks expire requests and escalate or expire questions
(:func:`agentlog.processors.bus_core.expire`). The walk is
:class:`~agentlog.replay.core_replay.CoreReplay`'s.
"""

from __future__ import annotations

from datetime import datetime

from agentlog.events import Event
from agentlog.processors import (
    BUS_HANDED_OVER,
    BUS_ORDER,
    BUS_PROCESSOR,
    BUS_PRODUCER,
    BUS_SOURCES,
    BusPartition,
    InputRecord,
    Policy,
    bus_record_time_us,
    decide_bus,
    decode_bus_input,
    expire_bus,
)
from agentlog.replay.core_replay import CoreReplay
from agentlog.serde import Serde
from agentlog.topics import MESSAGE_EVENTS


class BusReplay(CoreReplay):
    """Re-runs the consultation bus over a :class:`~agentlog.replay.log_source.LogSource`."""

    processor = "bus"
    group = BUS_PROCESSOR
    sources = BUS_SOURCES
    order = BUS_ORDER
    facts = MESSAGE_EVENTS
    producer = BUS_PRODUCER
    handed_over = BUS_HANDED_OVER

    def fresh(self) -> BusPartition:
        return BusPartition()

    def decode(self, serde: Serde, record: InputRecord) -> Event | None:
        return decode_bus_input(serde, record)

    def decide_input(
        self, state: BusPartition, event: Event, record: InputRecord, policy: Policy | None, core: int
    ) -> list[Event]:
        return decide_bus(state, event, policy, bus_record_time_us(record), core)[0]

    def expire(self, state: BusPartition, at: datetime, policy: Policy | None) -> list[Event]:
        return expire_bus(state, at, policy)[0]
