"""Turning a batch of Kafka records into the rows of one transaction (no I/O).

Every record becomes one audit row, chained to the row before it in its partition.
Records that decode and belong on their topic also feed the lineage and the missions. The others are
marked in their audit row and dead-lettered, except on the dead-letter topic itself,
which holds arbitrary bytes by design: its records are audited (decoded when they can be)
but never projected into the lineage and never dead-lettered again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from agentlog.dead_letters import DeadLetter
from agentlog.errors import DecodeError
from agentlog.events.limits_scan import over_limit
from agentlog.limits import MAX_CHARS, record_size_problem
from agentlog.projections import audit_chain
from agentlog.projections.bus_events import BusWrites, apply_bus
from agentlog.projections.jsonb import jsonb_text, prepare
from agentlog.projections.lineage_events import LineageWrites, apply
from agentlog.projections.mission_events import MissionWrites, apply_mission
from agentlog.records import Headers, Record, headers_as_json
from agentlog.schema_store import RecordSchema
from agentlog.serde import Serde
from agentlog.topics import DLQ, TopicSpec, by_name

STAGE = "projections.projector"
AUDIT_COLUMNS = (
    "topic",
    "partition",
    "offset",
    "timestamp_ms",
    "kafka_ts",
    "key",
    "record_name",
    "value",
    "raw_value",
    "error",
    "headers",
    "root_id",
    "event_id",
    "occurred_at",
    "prev_hash",
    "hash",
    "chain_version",
    "signature",
)
TopicPartition = tuple[str, int]


class PartitionState(NamedTuple):
    """Where a partition's projection stands: the next offset and the chain's head hash."""

    next_offset: int
    chain_head: bytes


class OverLimitError(DecodeError):
    """A record decoded, but is larger, or has a longer id, than the contract allows (:mod:`agentlog.limits`).

    Its audit row keeps the exact bytes but no decoded value: an over-long id must not
    reach an index.
    """


class MisplacedRecordError(DecodeError):
    """A record decoded, but does not belong on the topic it was read from."""

    def __init__(self, record: str, topic: str) -> None:
        self.record = record
        self.topic = topic
        super().__init__(f"record {record} does not belong on topic {topic}")


@dataclass
class Batch:
    """The rows of one projector transaction and the positions it moves."""

    start: dict[TopicPartition, PartitionState]
    end: dict[TopicPartition, PartitionState] = field(default_factory=dict)
    audit_rows: list[tuple[Any, ...]] = field(default_factory=list)
    lineage: LineageWrites = field(default_factory=LineageWrites)
    missions: MissionWrites = field(default_factory=MissionWrites)
    bus: BusWrites = field(default_factory=BusWrites)
    dead_letters: list[tuple[DeadLetter, Headers | None]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.audit_rows)


def build_batch(
    records: Iterable[Record], states: Mapping[TopicPartition, PartitionState], serde: Serde, prefix: str
) -> Batch:
    """The rows of ``records``, skipping those of partitions not in ``states`` or already projected."""
    batch = Batch(start={})
    specs: dict[str, TopicSpec | None] = {}
    accepted: dict[tuple[str, str], bool] = {}
    chains: dict[TopicPartition, audit_chain.PartitionChain] = {}
    for record in records:
        where = (record.topic, record.partition)
        state = batch.end.get(where) or states.get(where)
        if state is None or record.offset < state.next_offset:
            continue  # not ours (any more), or read again before a seek took effect
        batch.start.setdefault(where, states[where])
        chain = chains.get(where)
        if chain is None:
            chain = chains[where] = audit_chain.PartitionChain(*where)
        signature = audit_chain.signature_of(record.headers)
        chain_hash = chain.link(
            state.chain_head, record.offset, record.timestamp_ms, record.key, record.value, signature
        )
        if record.topic not in specs:
            specs[record.topic] = by_name(record.topic, prefix)
        spec = specs[record.topic]
        row = _audit_row(batch, record, spec, serde, accepted, state.chain_head, chain_hash)
        batch.audit_rows.append((*row, audit_chain.CHAIN_VERSION, signature))
        batch.end[where] = PartitionState(record.offset + 1, chain_hash)
    return batch


def _audit_row(
    batch: Batch,
    record: Record,
    spec: TopicSpec | None,
    serde: Serde,
    accepted: dict[tuple[str, str], bool],
    prev_hash: bytes,
    chain_hash: bytes,
) -> tuple[Any, ...]:
    on_dlq = spec is DLQ
    name: str | None = None
    schema: RecordSchema | None = None
    value: dict[str, Any] | None = None
    error: str | None = None
    try:
        if record.value is None:
            raise DecodeError("record has no value (tombstone)")
        decoded = serde.decode_value(record.value)
        name, value, schema = decoded.full_name, decoded.value, decoded.schema
        if spec is not None:
            accepts = accepted.get((record.topic, name))
            if accepts is None:
                accepts = accepted[(record.topic, name)] = spec.accepts(name)
            if not accepts:
                raise MisplacedRecordError(name, record.topic)
        problem = record_size_problem(len(record.value)) or over_limit(decoded.full_name, decoded.value)
        if problem is not None:
            raise OverLimitError(problem)
    except (DecodeError, ArithmeticError) as e:  # ArithmeticError: a timestamp out of range
        error = f"{type(e).__name__}: {e}"
        if isinstance(e, OverLimitError):
            value = None
        if not on_dlq:
            dead = DeadLetter(STAGE, e, record.topic, record.partition, record.offset, record.key, record.value)
            batch.dead_letters.append((dead, record.headers))
    text = None
    if value is not None and schema is not None:
        text, value = prepare(value, schema)
    if value is not None and error is None and not on_dlq:
        position = record.position
        apply(batch.lineage, name or "", value, position)
        apply_mission(batch.missions, name or "", value, position)
        apply_bus(batch.bus, name or "", value, position)
    meta: dict[str, Any] = value.get("meta", {}) if value is not None else {}
    root_id = meta.get("root_id")
    if root_id is None and record.key is not None and spec is not None and spec.key == "meta.root_id":
        root_id = record.key.decode("utf-8", "replace").replace("\x00", "\ufffd")
    if root_id is not None and len(root_id) > MAX_CHARS["id"]:
        root_id = None  # not a root id of the contract, and too long for the index
    timestamp = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC) if record.timestamp_ms >= 0 else None
    return (
        record.topic,
        record.partition,
        record.offset,
        record.timestamp_ms,
        timestamp,
        record.key,
        name,
        text,
        record.value,
        error.replace("\x00", "\ufffd") if error is not None else None,
        _headers_json(record.headers),
        root_id,
        meta.get("event_id"),
        meta.get("occurred_at"),
        prev_hash,
        chain_hash,
    )


def _headers_json(headers: Headers | None) -> str | None:
    as_json = headers_as_json(headers)
    return jsonb_text(as_json, floats=False) if as_json is not None else None  # pairs of strings
