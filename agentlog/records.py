"""The vocabulary of a Kafka record that every package shares: its headers, its position, the record.

A record is named everywhere — messages, reports, dead letters, the console — by its
position in one string form, ``topic[partition]@offset`` (:func:`at`).
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

Headers = list[tuple[str, str | bytes | None]]
"""Kafka record headers as confluent-kafka gives and takes them."""


def header(headers: Headers | None, name: str) -> str | bytes | None:
    """The value of the first header called ``name`` (None when there is none; a null value reads as empty)."""
    for key, value in headers or ():
        if key == name:
            return value if value is not None else b""
    return None


def int_header(headers: Headers | None, name: str, default: int) -> int:
    """The non-negative integer header ``name`` holds; ``default`` when it is absent or not one."""
    value = header(headers, name)
    try:
        number = int(value) if value else default
    except ValueError:
        return default
    return number if number >= 0 else default


def headers_as_json(headers: Headers | None) -> list[list[str | None]] | None:
    """Headers as JSON: ``[name, value]`` pairs, values decoded as UTF-8 (agentlog's headers are text)."""
    if not headers:
        return None
    return [[k, v.decode("utf-8", "replace") if isinstance(v, bytes) else v] for k, v in headers]


def at(topic: str, partition: int, offset: int) -> str:
    """The one string form of a record's position: ``topic[partition]@offset``."""
    return f"{topic}[{partition}]@{offset}"


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a record is: topic, partition, offset."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return at(self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record, exactly as the audit chain covers it, with its headers when they were read."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    """Broker append time (every agentlog topic uses LogAppendTime); -1 when absent."""
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None

    @classmethod
    def from_message(cls, message: Message) -> Record:
        """The record a consumed (error-free) confluent ``Message`` holds."""
        return cls(*message_fields(message))

    @property
    def position(self) -> Position:
        """Where the record is."""
        return Position(self.topic, self.partition, self.offset)

    def __str__(self) -> str:
        return at(self.topic, self.partition, self.offset)


def message_fields(message: Message) -> tuple[str, int, int, int, bytes | None, bytes | None, Headers | None]:
    """The fields of :class:`Record`, in order, of a consumed (error-free) confluent ``Message``."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None  # set on every consumed record
    kind, timestamp = message.timestamp()
    headers = message.headers()
    return (
        topic,
        partition,
        offset,
        -1 if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
        message.key(),
        message.value(),
        headers if isinstance(headers, list) else None,
    )
