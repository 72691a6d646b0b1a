"""Turning a raw input record of a processor (the spawn gate's, the mission processor's) into an event, or saying
why it cannot be one."""

from __future__ import annotations

from agentlog.errors import DecodeError
from agentlog.events import EVENT_TYPES, Event
from agentlog.limits import record_size_problem
from agentlog.processors.input_merge import InputRecord
from agentlog.serde import Serde
from agentlog.topics import AGENT_LIFECYCLE, SPAWN_REQUESTS, TopicSpec

SOURCES = (SPAWN_REQUESTS, AGENT_LIFECYCLE)
"""The gate's input topics, indexed by ``InputRecord.source``."""


def decode_input(serde: Serde, record: InputRecord) -> Event:
    """The event a gate input record holds (see :func:`decode_record`)."""
    return decode_record(serde, record, SOURCES[record.source])


def decode_record(serde: Serde, record: InputRecord, spec: TopicSpec) -> Event:
    """The event a record of topic ``spec`` holds; raises :class:`DecodeError` for bytes that are not one, for a
    record type that does not belong on the topic, or for a key that is not the event's ``meta.root_id`` (such a
    record may sit in another tree's partition). Records larger than the contract allows and fields longer than
    their kind allows (:mod:`agentlog.limits`) fail too, naming the size or the field."""
    problem = record_size_problem(len(record.value or b""))
    if problem is not None:
        raise DecodeError(problem)
    decoded = serde.decode_value(record.value or b"")
    if not spec.accepts(decoded.full_name):
        raise DecodeError(f"{decoded.full_name} does not belong on {spec.name}")
    try:
        event = EVENT_TYPES[decoded.full_name].model_validate(decoded.value)
    except ValueError as e:
        raise DecodeError(f"{decoded.full_name} fails validation: {e}") from e
    if record.key != event.meta.root_id.encode():
        raise DecodeError(f"key {record.key!r} is not the event's meta.root_id {event.meta.root_id!r}")
    return event
