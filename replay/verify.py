"""``replay verify``: the audit table checked against Kafka, row by row.

For every (topic, partition) of the catalogue, the Kafka records (the truth) and the
audit rows are walked together in offset order, and the hash chain is recomputed from the
Kafka records as the projector computes it (:func:`agentlog.projections.audit_chain.link`). Each
row must hold exactly the record's timestamp, key and value bytes, link to the recomputed
hash before it and carry the recomputed hash. What is found:

- ``missing``: Kafka has the record, below the projector's stored position, but there is
  no row (records at or after the position are *lag*, reported but not a difference);
- ``extra``: a row for an offset Kafka does not hold (on the compacted policy topic, a
  row whose record compaction removed is expected: it is checked against its own chain);
- ``altered``: the row differs from its record; the differing columns are named;
- ``reordered``: an altered row holds, intact, the record of another offset of its
  partition (rows swapped or moved); it names both offsets;
- ``truncated``: rows missing below the newest audit checkpoint of their partition
  (:mod:`agentlog.projections.checkpoints`), however far the stored position was moved back:
  the chain was shortened, not merely not projected yet;
- ``checkpoint``: a checkpoint the audit log does not bear out: its chain head is not the
  head of the chain Kafka's records make at its offset (forged, or attesting another chain),
  or the rows below it are not as many as it says;
- ``position``: the stored position's chain head is not the hash of the partition's last row.

The database recomputes each row's hash from the row's own columns
(:data:`agentlog.projections.audit_chain.ROW_HASH_SQL`),
so only the offsets and three hashes per row travel; equal hashes prove equal contents.
A row that disagrees is then read in full to name what differs. With ``deep``, every row
is read in full and its decoded columns (record name, value, root id, event id, occurred
at, error) are also compared with what the projector derives from the record's bytes.

Partitions are checked in parallel (``workers``), each with one consumer and one
server-side cursor, streaming: memory grows with the number of differences only.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from psycopg import IsolationLevel, sql

from agentlog.projections import (
    CHAIN_VERSION,
    DEFAULT_SCHEMA,
    GENESIS,
    ROW_HASH_SQL,
    Conn,
    PartitionChain,
    build_batch,
    connect,
    projected_offsets,
    require_tables,
    signature_of,
)
from agentlog.projections import ProjectedPartition as ProjectedState
from agentlog.records import Record, at
from agentlog.replay.anchors import SIGNER, Anchors, Checkpoint, anchors_of
from agentlog.replay.progress import Progress
from agentlog.replay.signatures import keyring_of
from agentlog.replay.topic_reader import partitions_of, read_optional_topic, read_partition
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import AUDIT_CHECKPOINTS, CATALOGUE, by_name

CHAINED_COLUMNS = ("timestamp_ms", "key", "raw_value", "signature", "chain_version", "prev_hash", "hash")
DEEP_COLUMNS = ("record_name", "value", "error", "root_id", "event_id", "occurred_at")
_FULL_COLUMNS = '"offset", timestamp_ms, key, raw_value, prev_hash, hash, chain_version, signature'
_DEEP_SELECT = ", record_name, value::text, error, root_id, event_id, occurred_at"


@dataclass(frozen=True)
class Difference:
    """One row that does not agree with Kafka."""

    kind: str
    """``missing``, ``extra``, ``altered``, ``reordered``, ``truncated``, ``checkpoint`` or ``position``."""
    topic: str
    partition: int
    offset: int
    detail: str
    columns: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind:<9} {at(self.topic, self.partition, self.offset)}: {self.detail}"

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


@dataclass(frozen=True)
class PartitionOutcome:
    """What the check of one (topic, partition) found, in brief (what ``--record`` keeps per partition)."""

    topic: str
    partition: int
    records: int
    rows: int
    lag: int
    lag_since_ms: int | None
    kinds: dict[str, int]
    """Differences per kind."""
    anchor: int | None
    """The next offset of the checkpoint it was held to (None: none)."""

    def as_json(self) -> dict[str, Any]:
        """The outcome as JSON."""
        return {
            "records": self.records,
            "rows": self.rows,
            "lag": self.lag,
            "lag_since_ms": self.lag_since_ms,
            "differences": self.kinds,
            "anchor_next_offset": self.anchor,
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
    lag_since_ms: dict[str, int] = field(default_factory=dict)
    """Per ``topic[partition]`` with lag: the append time of its oldest record not yet projected."""
    compacted: int = 0
    """Rows of records the compacted policy topic no longer holds (expected; chain-checked)."""
    anchors: Anchors | None = None
    """The checkpoints the partitions were held to (set on the whole report, not on a partition's)."""
    outcomes: list[PartitionOutcome] = field(default_factory=list)
    """Each partition's outcome, in brief."""

    @property
    def clean(self) -> bool:
        """No difference at all (lag is not a difference)."""
        return not self.differences

    def add(self, other: VerifyReport) -> None:
        """Fold one partition's report into this one."""
        self.differences += other.differences
        self.records += other.records
        self.rows += other.rows
        self.partitions += other.partitions
        self.compacted += other.compacted
        self.outcomes += other.outcomes
        for where, n in other.lag.items():
            self.lag[where] = self.lag.get(where, 0) + n
        for where, since in other.lag_since_ms.items():
            self.lag_since_ms[where] = min(since, self.lag_since_ms.get(where, since))

    def lag_beyond(self, max_lag_ms: int, now_ms: int) -> dict[str, int]:
        """The partitions whose oldest record not yet projected was appended more than ``max_lag_ms`` before
        ``now_ms``, with that age in ms."""
        ages = {where: now_ms - since for where, since in self.lag_since_ms.items()}
        return {where: age for where, age in sorted(ages.items()) if age > max_lag_ms}


def live_anchors(settings: Settings, conn: Conn, schema: str, signer: str = SIGNER) -> Anchors:
    """The anchors of ``schema`` on the checkpoint topic, judged by the keyring (its topic and its audit rows)."""
    topic = settings.topic_prefix + AUDIT_CHECKPOINTS.name
    keyring = keyring_of(settings, conn)
    return anchors_of(
        read_optional_topic(settings, topic), Serde.from_settings(settings), keyring, schema=schema, signer=signer
    )


@dataclass(slots=True)
class _Row:
    offset: int
    timestamp_ms: int
    key: bytes | None
    raw_value: bytes | None
    prev_hash: bytes
    hash: bytes
    version: int = CHAIN_VERSION
    signature: str | None = None
    deep: tuple[Any, ...] = ()

    @classmethod
    def of(cls, columns: tuple[Any, ...], deep: tuple[Any, ...] = ()) -> _Row:
        """A row from the :data:`_FULL_COLUMNS` (in order)."""
        offset, timestamp_ms, key, value, prev_hash, row_hash, version, signature = columns[:8]
        return cls(
            offset,
            timestamp_ms,
            _bytes(key),
            _bytes(value),
            bytes(prev_hash),
            bytes(row_hash),
            version,
            signature,
            deep,
        )

    def link(self, chain: PartitionChain, prev_hash: bytes, offset: int | None = None) -> bytes:
        """The hash this row's own columns give, chained to ``prev_hash`` (at ``offset``: another position)."""
        where = self.offset if offset is None else offset
        return chain.link(prev_hash, where, self.timestamp_ms, self.key, self.raw_value, self.signature, self.version)


def _content(timestamp_ms: int, key: bytes | None, value: bytes | None) -> tuple[bytes | None, bytes | None]:
    """What identifies a record's content when pairing swapped rows: its key and value bytes.

    The timestamp is left out so that rows whose values were exchanged (timestamps kept)
    are still recognised as swapped.
    """
    return (key, value)


def _chained_signature(record: Record, version: int) -> str | None:
    """The signature link ``version`` covers of ``record`` (version 1 covers none)."""
    return signature_of(record.headers) if version >= 2 else None


def _bytes(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


class _PartitionCheck:
    """The walk over one partition: Kafka records and audit rows side by side."""

    def __init__(
        self,
        conn: Conn,
        topic: str,
        partition: int,
        next_offset: int | None,
        compacted: bool,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.conn = conn
        self.topic = topic
        self.partition = partition
        self.next_offset = next_offset
        self.compacted = compacted
        self.checkpoint = checkpoint
        self.truncated: list[int] = []
        """Offsets below the checkpoint without a row, though at or after the stored position."""
        self.head_at_checkpoint = GENESIS
        """The chain's head (recomputed from Kafka) after the last record below the checkpoint."""
        self.rows_below = 0
        """Rows below the checkpoint."""
        self.last_row_hash: bytes | None = None
        self.chain = PartitionChain(topic, partition)
        self.report = VerifyReport(partitions=1)
        self.prev = GENESIS
        self.version = 1
        """The link version of the row before (a row may not use an older one); missing rows are taken at it."""
        # Only for rows that disagree: who holds what, to tell a swap or a move from an alteration.
        self.kafka_at: dict[tuple[bytes | None, bytes | None], int] = {}
        self.wrong_rows: list[tuple[_Row, Difference]] = []

    def diff(self, kind: str, offset: int, detail: str, columns: tuple[str, ...] = ()) -> Difference:
        return Difference(kind, self.topic, self.partition, offset, detail, columns)

    def full_row(self, offset: int) -> _Row:
        """Every chained column of the row at ``offset`` (read only for rows that disagree)."""
        row = self.conn.execute(
            sql.SQL(
                "SELECT " + _FULL_COLUMNS + ' FROM audit_log WHERE topic = %s AND partition = %s AND "offset" = %s'
            ),
            (self.topic, self.partition, offset),
        ).fetchone()
        assert row is not None  # it was just read by the cursor, in the same transaction
        return _Row.of(row)

    def truth(self, record: Record, version: int, signature: str | None) -> bytes:
        """The hash ``record`` (whose chained signature is ``signature``) has in the chain, by link ``version``."""
        return self.chain.link(
            self.prev, record.offset, record.timestamp_ms, record.key, record.value, signature, version
        )

    def passed(self, offset: int, row_hash: bytes | None) -> None:
        """After one offset: note the chain's head below the checkpoint, and the rows."""
        below = self.checkpoint is not None and offset < self.checkpoint.next_offset
        if below:
            self.head_at_checkpoint = self.prev
        if row_hash is not None:
            self.last_row_hash = row_hash
            self.rows_below += below

    def kafka_only(self, record: Record) -> None:
        self.prev = self.truth(record, self.version, _chained_signature(record, self.version))
        self.passed(record.offset, None)
        unprojected = self.next_offset is None or record.offset >= self.next_offset
        if unprojected and self.checkpoint is not None and record.offset < self.checkpoint.next_offset:
            self.truncated.append(record.offset)
            return
        if unprojected:
            where = f"{self.topic}[{self.partition}]"
            self.report.lag[where] = self.report.lag.get(where, 0) + 1
            self.report.lag_since_ms.setdefault(where, record.timestamp_ms)  # offset order: the first is the oldest
            return
        self.kafka_at[_content(record.timestamp_ms, record.key, record.value)] = record.offset
        self.report.differences.append(self.diff("missing", record.offset, "no audit row for this Kafka record"))

    def row_only(self, row: _Row) -> None:
        chains_on = row.prev_hash == self.prev and row.version >= self.version
        if self.compacted and chains_on and row.link(self.chain, row.prev_hash) == row.hash:
            self.prev = row.hash  # a record compaction removed; the chain went through it
            self.version = row.version
            self.report.compacted += 1
            self.passed(row.offset, row.hash)
            return
        self.passed(row.offset, row.hash)
        difference = self.diff("extra", row.offset, "audit row for an offset Kafka does not hold")
        self.wrong_rows.append((row, difference))

    def both(self, record: Record, row: _Row, deep_expected: tuple[Any, ...] | None) -> None:
        version = max(row.version, self.version)  # a row rewritten as an older version is altered
        signature = _chained_signature(record, version)
        truth = self.truth(record, version, signature)
        expected = (record.timestamp_ms, record.key, record.value, signature, version, self.prev, truth)
        actual = (row.timestamp_ms, row.key, row.raw_value, row.signature, row.version, row.prev_hash, row.hash)
        columns = tuple(name for name, a, b in zip(CHAINED_COLUMNS, actual, expected, strict=True) if a != b)
        if deep_expected is not None:
            columns += tuple(n for n, a, b in zip(DEEP_COLUMNS, row.deep, deep_expected, strict=True) if a != b)
        self.prev, self.version = truth, version
        self.passed(record.offset, row.hash)
        if columns:
            self.kafka_at[_content(record.timestamp_ms, record.key, record.value)] = record.offset
            detail = "differs from the Kafka record in " + ", ".join(columns)
            self.wrong_rows.append((row, self.diff("altered", row.offset, detail, columns)))

    def both_by_hash(
        self, record: Record, offset: int, prev_hash: bytes, row_hash: bytes, server_hash: bytes, version: int
    ) -> None:
        """The fast path: equal hashes prove an intact row; otherwise read the row and compare column by column."""
        truth = self.truth(record, version, _chained_signature(record, version)) if version >= self.version else None
        if truth is not None and prev_hash == self.prev and row_hash == truth and server_hash == truth:
            self.prev, self.version = truth, version
            self.passed(offset, row_hash)
            return
        self.both(record, self.full_row(offset), None)

    def held_to_anchors(self, position_head: bytes | None) -> None:
        """The differences from the checkpoint and the stored position's chain head."""
        cp = self.checkpoint
        if self.truncated:
            first, last = self.truncated[0], self.truncated[-1]
            self.report.differences.append(
                self.diff(
                    "truncated",
                    first,
                    f"offsets {first} to {last} ({len(self.truncated)} records) have no audit row, below the"
                    f" checkpoint at next offset {cp.next_offset if cp else '?'} ({cp.at if cp else ''}):"
                    " the chain was shortened",
                )
            )
        if cp is not None and cp.chain_head != self.head_at_checkpoint:
            self.report.differences.append(
                self.diff(
                    "checkpoint",
                    max(cp.next_offset - 1, 0),
                    f"the checkpoint {cp.at} names chain head {cp.chain_head.hex()[:16]}… at next offset"
                    f" {cp.next_offset}; Kafka's records make {self.head_at_checkpoint.hex()[:16]}… there"
                    " (a forged checkpoint, or one of another chain)",
                )
            )
        elif cp is not None and not self.truncated and cp.row_count != self.rows_below:
            self.report.differences.append(
                self.diff(
                    "checkpoint",
                    max(cp.next_offset - 1, 0),
                    f"the checkpoint {cp.at} counts {cp.row_count} rows below offset {cp.next_offset}; there are"
                    f" {self.rows_below}",
                )
            )
        if position_head is not None and position_head != (self.last_row_hash or GENESIS):
            last_hash = (self.last_row_hash or GENESIS).hex()[:16]
            self.report.differences.append(
                self.diff(
                    "position",
                    self.next_offset or 0,
                    f"the stored position's chain head {position_head.hex()[:16]}… is not the last row's hash"
                    f" {last_hash}…",
                )
            )

    def finish(self) -> VerifyReport:
        """Tell swapped or moved rows from altered and extra ones; the partition's report."""
        for row, difference in self.wrong_rows:
            source = self.kafka_at.get(_content(row.timestamp_ms, row.key, row.raw_value))
            if source is not None and source != row.offset:
                detail = f"holds the record of offset {source} (rows swapped or moved)"
                if row.hash != row.link(self.chain, row.prev_hash, source):
                    detail += "; its hashes do not chain"
                self.report.differences.append(self.diff("reordered", row.offset, detail, difference.columns))
            else:
                self.report.differences.append(difference)
        self.report.differences.sort(key=lambda d: d.offset)
        where = f"{self.topic}[{self.partition}]"
        self.report.outcomes.append(
            PartitionOutcome(
                self.topic,
                self.partition,
                self.report.records,
                self.report.rows,
                self.report.lag.get(where, 0),
                self.report.lag_since_ms.get(where),
                dict(Counter(d.kind for d in self.report.differences)),
                self.checkpoint.next_offset if self.checkpoint is not None else None,
            )
        )
        return self.report


def _row_partitions(conn: Conn, topics: list[str]) -> set[tuple[str, int]]:
    rows = conn.execute("SELECT DISTINCT topic, partition FROM audit_log WHERE topic = ANY(%s)", (topics,)).fetchall()
    return {(t, p) for t, p in rows}


def _deep_expected(serde: Serde, prefix: str, record: Record) -> tuple[Any, ...]:
    """The decoded columns the projector writes for ``record`` (computed by its own code)."""
    raw = record
    state = {(record.topic, record.partition): ProjectedState(record.offset, GENESIS)}
    row = build_batch([raw], state, serde, prefix).audit_rows[0]
    _, _, _, _, _, _, name, text, _, error, _, root_id, event_id, occurred_at, *_ = row
    return (name, json.loads(text) if text is not None else None, error, root_id, event_id, occurred_at)


@dataclass(frozen=True)
class _Job:
    topic: str
    partition: int
    next_offset: int | None
    compacted: bool
    in_kafka: bool
    checkpoint: Checkpoint | None = None


class _Verifier:
    def __init__(self, settings: Settings, schema: str, deep: bool, progress: Progress) -> None:
        self.settings = settings
        self.schema = schema
        self.deep = deep
        self.progress = progress
        self.lock = threading.Lock()
        self.serde = Serde.from_settings(settings)

    def advance(self, n: int) -> None:
        with self.lock:
            self.progress.advance(n)

    def check(self, job: _Job) -> VerifyReport:
        with connect(self.settings, self.schema) as conn:
            # One snapshot for the position and the rows: a projector writing meanwhile moves both or neither.
            conn.isolation_level = IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                head_row = conn.execute(
                    "SELECT chain_head FROM projector_positions WHERE topic = %s AND partition = %s",
                    (job.topic, job.partition),
                ).fetchone()
                check = _PartitionCheck(conn, job.topic, job.partition, job.next_offset, job.compacted, job.checkpoint)
                records = read_partition(self.settings, job.topic, job.partition) if job.in_kafka else iter(())
                if self.deep:
                    self._walk_full(conn, check, records)
                else:
                    self._walk_hashes(conn, check, records)
                check.held_to_anchors(bytes(head_row[0]) if head_row is not None else None)
                return check.finish()

    def _cursor_rows(self, conn: Conn, job_check: _PartitionCheck, columns: str) -> Iterator[tuple[Any, ...]]:
        query = sql.SQL("SELECT " + columns + ' FROM audit_log WHERE topic = %s AND partition = %s ORDER BY "offset"')
        with conn.cursor(name=f"verify_{job_check.partition}", binary=True) as cur:
            cur.itersize = 20_000
            cur.execute(query, (job_check.topic, job_check.partition))
            yield from cur

    def _walk_hashes(self, conn: Conn, check: _PartitionCheck, records: Iterator[Record]) -> None:
        rows = self._cursor_rows(conn, check, '"offset", prev_hash, hash, ' + ROW_HASH_SQL + ", chain_version")
        record, row = next(records, None), next(rows, None)
        done = 0
        while record is not None or row is not None:
            if row is None or (record is not None and record.offset < row[0]):
                assert record is not None
                check.kafka_only(record)
                check.report.records += 1
                record = next(records, None)
            elif record is None or row[0] < record.offset:
                check.row_only(check.full_row(row[0]))
                check.report.rows += 1
                row = next(rows, None)
            else:
                check.both_by_hash(record, row[0], bytes(row[1]), bytes(row[2]), bytes(row[3]), row[4])
                check.report.records += 1
                check.report.rows += 1
                record, row = next(records, None), next(rows, None)
            done += 1
            if done == 5000:
                self.advance(done)
                done = 0
        self.advance(done)

    def _walk_full(self, conn: Conn, check: _PartitionCheck, records: Iterator[Record]) -> None:
        rows = (
            _Row.of(r, (r[8], json.loads(r[9]) if r[9] is not None else None, *r[10:]))
            for r in self._cursor_rows(conn, check, _FULL_COLUMNS + _DEEP_SELECT)
        )
        record, row = next(records, None), next(rows, None)
        while record is not None or row is not None:
            if row is None or (record is not None and record.offset < row.offset):
                assert record is not None
                check.kafka_only(record)
                check.report.records += 1
                record = next(records, None)
            elif record is None or row.offset < record.offset:
                check.row_only(row)
                check.report.rows += 1
                row = next(rows, None)
            else:
                check.both(record, row, _deep_expected(self.serde, self.settings.topic_prefix, record))
                check.report.records += 1
                check.report.rows += 1
                record, row = next(records, None), next(rows, None)
            self.advance(1)


def verify(
    settings: Settings,
    schema: str = DEFAULT_SCHEMA,
    *,
    deep: bool = False,
    workers: int = 8,
    progress: Progress | None = None,
    signer: str = SIGNER,
) -> VerifyReport:
    """Compare every audit row of this prefix's topics with Kafka; the report lists every difference.

    Each partition is held to its newest anchor (:mod:`agentlog.replay.anchors`), the checkpoints
    ``signer``'s key signed; a checkpoint the audit may not rely on is a ``checkpoint`` difference."""
    verifier = _Verifier(settings, schema, deep, progress or Progress("verify", enabled=False))
    topics = [settings.topic_prefix + spec.name for spec in CATALOGUE]
    with connect(settings, schema) as conn:
        require_tables(conn, schema)
        positions = projected_offsets(conn, topics)
        row_partitions = _row_partitions(conn, topics)
        anchors = live_anchors(settings, conn, schema, signer)
    kafka_partitions = {(t, p) for t in topics for p in partitions_of(settings, t)}
    checkpoints = anchors.newest
    jobs = []
    for topic, partition in sorted(kafka_partitions | row_partitions):
        spec = by_name(topic, settings.topic_prefix)
        compacted = spec is not None and spec.cleanup_policy == "compact"
        in_kafka = (topic, partition) in kafka_partitions
        where = (topic, partition)
        jobs.append(_Job(topic, partition, positions.get(where), compacted, in_kafka, checkpoints.get(where)))
    report = VerifyReport(anchors=anchors)
    report.differences += [Difference("checkpoint", r.topic, r.partition, r.offset, r.detail) for r in anchors.rejected]
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="verify") as pool:
        for partial in pool.map(verifier.check, jobs):
            report.add(partial)
    return report
