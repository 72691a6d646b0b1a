"""Reading topics back as decoded records, for people debugging (``agentlog tail``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from agentlog import kafka_config
from agentlog.errors import AgentlogError, DecodeError
from agentlog.partition_reader import BEGINNING, END, PartitionReader
from agentlog.records import Record, headers_as_json
from agentlog.serde import Serde, to_jsonable
from agentlog.settings import Settings

_NOT_FOUND = object()


@dataclass(frozen=True)
class TailedRecord:
    """One record as read: its position, and its decoded value or why it could not be decoded."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime | None
    key: str | None
    headers: list[tuple[str, str]]
    record: str | None
    value: dict[str, Any] | None
    raw: bytes | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (the ``--output json`` line)."""
        out: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "key": self.key,
            "headers": dict(self.headers),
            "record": self.record,
            "value": to_jsonable(self.value),
        }
        if self.error is not None:
            out["error"] = self.error
            out["raw_hex"] = (self.raw or b"").hex()
        return out


@dataclass(frozen=True)
class TailOptions:
    """Where to start, when to stop and what to show."""

    topics: list[str]
    from_beginning: bool = False
    since: datetime | None = None
    follow: bool = False
    max_records: int | None = None
    filters: dict[str, str] = field(default_factory=dict)
    """Dotted path into the value → expected value (compared as text)."""


def lookup(value: Any, path: str) -> Any:
    """The value at a dotted path (``meta.root_id``, ``checks.0.name``), or a sentinel if absent."""
    current = value
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _NOT_FOUND
    return current


def matches(value: dict[str, Any] | None, filters: dict[str, str]) -> bool:
    """Whether every filter holds for a decoded value (undecodable records never match filters)."""
    if not filters:
        return True
    if value is None:
        return False
    for path, expected in filters.items():
        found = to_jsonable(lookup(value, path))
        if found is _NOT_FOUND:
            return False
        text = found if isinstance(found, str) else str(found).lower() if isinstance(found, bool) else str(found)
        if text != expected:
            return False
    return True


def tail(settings: Settings, options: TailOptions, serde: Serde | None = None) -> Iterator[TailedRecord]:
    """Yield the records of ``options.topics`` from the chosen start, decoded, until done.

    Without ``follow`` it stops at the end of every partition as it was when reading
    started; with ``follow`` it goes on until interrupted or ``max_records`` is reached.
    The default start is the beginning, or the end when following.
    """
    serde = serde or Serde.from_settings(settings)
    starts = _starts(settings, options)
    if not starts:
        return
    with PartitionReader(settings) as reader:
        reader.assign(starts)
        shown = 0
        for record in _following(reader) if options.follow else reader.read_to_end():
            tailed = _decode(serde, record)
            if not matches(tailed.value, options.filters):
                continue
            yield tailed
            shown += 1
            if options.max_records is not None and shown >= options.max_records:
                return


def _following(reader: PartitionReader) -> Iterator[Record]:
    while True:
        yield from reader.follow(500, 0.5)


def _starts(settings: Settings, options: TailOptions) -> list[tuple[str, int, int]]:
    """Where each partition of ``options.topics`` is read from."""
    consumer = Consumer(kafka_config.reader(settings))
    try:
        metadata = consumer.list_topics(timeout=10)
        partitions: list[TopicPartition] = []
        for topic in options.topics:
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                hidden = f", or {kafka_config.principal(settings)} may not read it" if settings.sasl_username else ""
                raise AgentlogError(f"topic {topic!r} does not exist (run `agentlog topics create`){hidden}")
            partitions += [TopicPartition(topic, p) for p in sorted(info.partitions)]
        if options.since is not None:
            millis = int(options.since.timestamp() * 1000)
            wanted = [TopicPartition(tp.topic, tp.partition, millis) for tp in partitions]
            try:
                found = consumer.offsets_for_times(wanted, timeout=10)
            except KafkaException as e:
                raise AgentlogError(f"cannot look up offsets for {options.since.isoformat()}: {e}") from e
            # -1 means no record at or after that time: start at the end.
            return [(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else END) for tp in found]
    finally:
        consumer.close()
    start = BEGINNING if options.from_beginning or not options.follow else END
    return [(tp.topic, tp.partition, start) for tp in partitions]


def _decode(serde: Serde, record: Record) -> TailedRecord:
    raw = record.value or b""
    try:
        decoded = serde.decode_value(raw)
    except DecodeError as e:
        return _tailed(record, None, None, raw, str(e))
    return _tailed(record, decoded.full_name, decoded.value)


def _tailed(
    record: Record,
    name: str | None,
    value: dict[str, Any] | None,
    raw: bytes | None = None,
    error: str | None = None,
) -> TailedRecord:
    return TailedRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=datetime.fromtimestamp(record.timestamp_ms / 1000, UTC) if record.timestamp_ms >= 0 else None,
        key=record.key.decode("utf-8", "replace") if record.key is not None else None,
        headers=[(str(k), v or "") for k, v in headers_as_json(record.headers) or []],
        record=name,
        value=value,
        raw=raw,
        error=error,
    )
