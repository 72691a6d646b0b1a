"""The consultation bus's inputs: which topics, in which order, and how a record becomes an event.

Shared by the worker (:mod:`.bus_worker`) and ``replay decisions``, so that both read the
inputs alike.
"""

from __future__ import annotations

from agentlog.events import Event
from agentlog.processors.bus_core import HANDLED
from agentlog.processors.gate_input import decode_record
from agentlog.processors.input_merge import InputRecord, MergeOrder
from agentlog.serde import Serde
from agentlog.topics import MESSAGES, POLICY_DECISIONS

NAME = "agentlog.bus"
"""The processor's name: its consumer group, transactional ids and changelog start with it (under the prefix)."""
SOURCES = (MESSAGES, POLICY_DECISIONS)
"""The inputs, indexed by ``InputRecord.source``."""
BUS_ORDER = MergeOrder(ranks=(1, 0))
"""Within one millisecond the gate's facts come before messages: an agent admitted then may send and receive."""
_FACTS = 1
"""The source index of the gate's facts."""
_HANDLED_NAMES = frozenset(t.avro_name for t in HANDLED)


def decode_bus_input(serde: Serde, record: InputRecord) -> Event | None:
    """The event an input of the bus holds, or None for a gate fact that changes no agent (not decoded further);
    raises :class:`~agentlog.errors.DecodeError` as :func:`decode_record` does."""
    if record.source == _FACTS and serde.record_name(record.value or b"") not in _HANDLED_NAMES:
        return None
    return decode_record(serde, record, SOURCES[record.source])


def record_time_us(record: InputRecord) -> int:
    """The time the bus decides an input at: its append time, in µs."""
    return record.timestamp_ms * 1000
