"""``replay verify``: the audit table checked against Kafka, row by row.

For every (topic, partition) of the catalogue, the Kafka records (the truth) and the
audit rows are walked together in offset order, and the hash chain is recomputed from the
Kafka records as the projector computes it (:func:`projections.audit_chain.link`). Each
row must hold exactly the record's timestamp, key and value bytes, link to the recomputed
hash before it and carry the recomputed hash. What is found:

- ``missing``: Kafka has the record, below the projector's stored position, but there is
  no row (records at or after the position are *lag*, reported but not a difference);
- ``extra``: a row for an offset Kafka does not hold (on the compacted policy topic, a
  row whose record compaction removed is expected: it is checked against its own chain);
- ``altered``: the row differs from its record; the differing columns are named;
- ``reordered``: an altered row holds, intact, the record of another offset of its
  partition (rows swapped or moved); it names both offsets.

With ``deep``, the decoded columns (record name, value, root id, event id, occurred at,
error) are also compared with what the projector derives from the record's bytes.

Both sides are streamed (one consumer and one server-side cursor per partition); memory
grows with the number of differences only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import CATALOGUE, by_name
from projections.audit_chain import GENESIS, link
from projections.batch import PartitionState as ProjectedState
from projections.batch import RawRecord, build_batch
from projections.db import DEFAULT_SCHEMA, Conn, connect, require_tables
from replay.progress import Progress
from replay.topic_reader import Record, partitions_of, read_partition

CHAINED_COLUMNS = ("timestamp_ms", "key", "raw_value", "prev_hash", "hash")
DEEP_COLUMNS = ("record_name", "value", "error", "root_id", "event_id", "occurred_at")


@dataclass(frozen=True)
class Difference:
    """One row that does not agree with Kafka."""

    kind: str
    """``missing``, ``extra``, ``altered`` or ``reordered``."""
    topic: str
    partition: int
    offset: int
    detail: str
    columns: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind:<9} {self.topic}[{self.partition}]@{self.offset}: {self.detail}"

    def as_json(self) -> dict[str, Any]:
        """The difference as a JSON object."""
        return {
            "kind": self.kind,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "detail": self.detail,
            "columns": list(self.columns),
        }


@dataclass
class VerifyReport:
    """The outcome of a verification."""

    differences: list[Difference] = field(default_factory=list)
    records: int = 0
    """Kafka records read."""
    rows: int = 0
    """Audit rows read."""
    partitions: int = 0
    lag: dict[str, int] = field(default_factory=dict)
    """Per ``topic[partition]``: records after the projector's stored position (not yet projected)."""
    compacted: int = 0
    """Rows of records the compacted policy topic no longer holds (expected; chain-checked)."""

    @property
    def clean(self) -> bool:
        """No difference at all (lag is not a difference)."""
        return not self.differences


@dataclass(slots=True)
class _Row:
    offset: int
    timestamp_ms: int
    key: bytes | None
    raw_value: bytes | None
    prev_hash: bytes
    hash: bytes
    deep: tuple[Any, ...] = ()


def _content(timestamp_ms: int, key: bytes | None, value: bytes | None) -> tuple[int, bytes | None, bytes | None]:
    return (timestamp_ms, key, value)


class _PartitionCheck:
    """The walk over one partition: Kafka records and audit rows side by side."""

    def __init__(self, topic: str, partition: int, next_offset: int | None, compacted: bool, report: VerifyReport):
        self.topic = topic
        self.partition = partition
        self.next_offset = next_offset
        self.compacted = compacted
        self.report = report
        self.prev = GENESIS
        # Only for rows that disagree: who holds what, to tell a swap or a move from an alteration.
        self.kafka_at: dict[tuple[int, bytes | None, bytes | None], int] = {}
        self.wrong_rows: list[tuple[_Row, Difference]] = []

    def diff(self, kind: str, offset: int, detail: str, columns: tuple[str, ...] = ()) -> Difference:
        return Difference(kind, self.topic, self.partition, offset, detail, columns)

    def kafka_only(self, record: Record) -> None:
        truth = link(
            self.prev, record.topic, record.partition, record.offset, record.timestamp_ms, record.key, record.value
        )
        self.prev = truth
        if self.next_offset is None or record.offset >= self.next_offset:
            where = f"{self.topic}[{self.partition}]"
            self.report.lag[where] = self.report.lag.get(where, 0) + 1
            return
        self.kafka_at[_content(record.timestamp_ms, record.key, record.value)] = record.offset
        self.report.differences.append(self.diff("missing", record.offset, "no audit row for this Kafka record"))

    def row_only(self, row: _Row) -> None:
        if self.compacted and row.prev_hash == self.prev:
            own = link(row.prev_hash, self.topic, self.partition, row.offset, row.timestamp_ms, row.key, row.raw_value)
            if own == row.hash:
                self.prev = row.hash  # a record compaction removed; the chain went through it
                self.report.compacted += 1
                return
        difference = self.diff("extra", row.offset, "audit row for an offset Kafka does not hold")
        self.wrong_rows.append((row, difference))

    def both(self, record: Record, row: _Row, deep_expected: tuple[Any, ...] | None) -> None:
        truth = link(
            self.prev, record.topic, record.partition, record.offset, record.timestamp_ms, record.key, record.value
        )
        expected = (record.timestamp_ms, record.key, record.value, self.prev, truth)
        actual = (row.timestamp_ms, row.key, row.raw_value, row.prev_hash, row.hash)
        columns = tuple(name for name, a, b in zip(CHAINED_COLUMNS, actual, expected, strict=True) if a != b)
        if deep_expected is not None:
            columns += tuple(n for n, a, b in zip(DEEP_COLUMNS, row.deep, deep_expected, strict=True) if a != b)
        self.prev = truth
        if columns:
            self.kafka_at[_content(record.timestamp_ms, record.key, record.value)] = record.offset
            detail = "differs from the Kafka record in " + ", ".join(columns)
            self.wrong_rows.append((row, self.diff("altered", row.offset, detail, columns)))

    def finish(self) -> None:
        """Tell swapped or moved rows from altered and extra ones, and record the differences."""
        for row, difference in self.wrong_rows:
            source = self.kafka_at.get(_content(row.timestamp_ms, row.key, row.raw_value))
            if source is not None and source != row.offset:
                detail = f"holds the record of offset {source} (rows swapped or moved)"
                if row.hash != link(
                    row.prev_hash, self.topic, self.partition, source, row.timestamp_ms, row.key, row.raw_value
                ):
                    detail += "; its hashes do not chain"
                self.report.differences.append(self.diff("reordered", row.offset, detail, difference.columns))
            else:
                self.report.differences.append(difference)


def _positions(conn: Conn, topics: list[str]) -> dict[tuple[str, int], int]:
    rows = conn.execute(
        "SELECT topic, partition, next_offset FROM projector_positions WHERE topic = ANY(%s)", (topics,)
    ).fetchall()
    return {(t, p): o for t, p, o in rows}


def _row_partitions(conn: Conn, topics: list[str]) -> set[tuple[str, int]]:
    rows = conn.execute("SELECT DISTINCT topic, partition FROM audit_log WHERE topic = ANY(%s)", (topics,)).fetchall()
    return {(t, p) for t, p in rows}


def _rows(conn: Conn, topic: str, partition: int, deep: bool) -> Iterator[_Row]:
    extra = ", record_name, value::text, error, root_id, event_id, occurred_at" if deep else ""
    query = sql.SQL(
        'SELECT "offset", timestamp_ms, key, raw_value, prev_hash, hash' + extra + " FROM audit_log"
        ' WHERE topic = %s AND partition = %s ORDER BY "offset"'
    )
    with conn.transaction(), conn.cursor(name=f"verify_{partition}", binary=True) as cur:
        cur.itersize = 10_000
        cur.execute(query, (topic, partition))
        for values in cur:
            deep_values: tuple[Any, ...] = ()
            if deep:
                name, value, error, root_id, event_id, occurred_at = values[6:]
                deep_values = (
                    name,
                    json.loads(value) if value is not None else None,
                    error,
                    root_id,
                    event_id,
                    occurred_at,
                )
            yield _Row(
                values[0],
                values[1],
                bytes(values[2]) if values[2] is not None else None,
                bytes(values[3]) if values[3] is not None else None,
                bytes(values[4]),
                bytes(values[5]),
                deep_values,
            )


def _deep_expected(serde: Serde, prefix: str, record: Record) -> tuple[Any, ...]:
    """The decoded columns the projector writes for ``record`` (computed by its own code)."""
    raw = RawRecord(record.topic, record.partition, record.offset, record.timestamp_ms, record.key, record.value)
    state = {(record.topic, record.partition): ProjectedState(record.offset, GENESIS)}
    row = build_batch([raw], state, serde, prefix).audit_rows[0]
    _, _, _, _, _, _, name, text, _, error, _, root_id, event_id, occurred_at, _, _ = row
    return (name, json.loads(text) if text is not None else None, error, root_id, event_id, occurred_at)


def verify(
    settings: Settings,
    schema: str = DEFAULT_SCHEMA,
    *,
    deep: bool = False,
    progress: Progress | None = None,
) -> VerifyReport:
    """Compare every audit row of this prefix's topics with Kafka; the report lists every difference."""
    progress = progress or Progress("verify", enabled=False)
    serde = Serde.from_settings(settings)
    report = VerifyReport()
    topics = [settings.topic_prefix + spec.name for spec in CATALOGUE]
    with connect(settings, schema) as conn:
        require_tables(conn, schema)
        positions = _positions(conn, topics)
        kafka_partitions = {(t, p) for t in topics for p in partitions_of(settings, t)}
        every = sorted(kafka_partitions | _row_partitions(conn, topics))
        for topic, partition in every:
            spec = by_name(topic, settings.topic_prefix)
            compacted = spec is not None and spec.cleanup_policy == "compact"
            check = _PartitionCheck(topic, partition, positions.get((topic, partition)), compacted, report)
            records = read_partition(settings, topic, partition) if (topic, partition) in kafka_partitions else iter(())
            rows = _rows(conn, topic, partition, deep)
            record = next(records, None)
            row = next(rows, None)
            while record is not None or row is not None:
                if row is None or (record is not None and record.offset < row.offset):
                    assert record is not None
                    check.kafka_only(record)
                    report.records += 1
                    progress.advance()
                    record = next(records, None)
                elif record is None or row.offset < record.offset:
                    check.row_only(row)
                    report.rows += 1
                    row = next(rows, None)
                else:
                    expected = _deep_expected(serde, settings.topic_prefix, record) if deep else None
                    check.both(record, row, expected)
                    report.records += 1
                    report.rows += 1
                    progress.advance()
                    record = next(records, None)
                    row = next(rows, None)
            check.finish()
            report.partitions += 1
    return report
