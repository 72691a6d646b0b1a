"""``replay export``: the records of a tree, a subtree, a tenant or a time range, from Kafka, to a file.

The file holds one record per line (JSON lines) or row (CSV), decoded, with its topic,
partition, offset, broker timestamp, exact key and value bytes (base64) and the audit
chain hashes recomputed from Kafka (``prev_hash``, ``hash``: see
:mod:`agentlog.projections.audit_chain`). Order: the side inputs (the policy and keyring
topics, whole) first, then partition by partition the tree-keyed topics merged in the
spawn gate's order (append time, lifecycle before requests, other topics after, offset),
then the dead letters. The manifest next to it (``FILE.manifest.json``) records the
request, the counts per record type, the first and last positions, the chain head of
every partition read, and the SHA-256 of the file; :mod:`agentlog.replay.check_export`
checks both.

Every partition is read from offset 0 (the chain needs every record before the first one
exported) by one consumer per topic, in a stream: memory stays flat.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import heapq
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from agentlog.errors import DecodeError
from agentlog.keyring import whole_keyring
from agentlog.projections import ChainedRecord, chained
from agentlog.records import Headers, Record, headers_as_json
from agentlog.replay.anchors import SIGNER, Checkpoint, anchors_of
from agentlog.replay.progress import Progress
from agentlog.replay.selection import Selection, find_root, names_any, subtree
from agentlog.replay.topic_reader import existing_partitions, partitions_of, read_optional_topic, read_partition
from agentlog.serde import Serde, to_jsonable
from agentlog.settings import Settings
from agentlog.topic_admin import tree_partition_count
from agentlog.topics import (
    AGENT_LIFECYCLE,
    AUDIT_CHECKPOINTS,
    CATALOGUE,
    DLQ,
    KEYRING,
    POLICY_CONFIG,
    SPAWN_REQUESTS,
    TopicSpec,
)

SIDE_INPUTS = (POLICY_CONFIG, KEYRING)
"""Topics every export holds whole: the gate's side inputs, which replay needs all of."""

FORMAT = "agentlog-export/1"
CSV_COLUMNS = (
    "topic",
    "partition",
    "offset",
    "timestamp_ms",
    "record",
    "event_json",
    "error",
    "key_b64",
    "value_b64",
    "prev_hash",
    "hash",
    "headers_json",
    "chain_version",
)
"""The CSV columns; files written before ``headers_json`` or ``chain_version`` were added (without the last
columns) are read too."""


class ExportFormat(StrEnum):
    """How records are written."""

    jsonl = "jsonl"
    csv = "csv"


def manifest_path(path: Path) -> Path:
    """Where the manifest of the export ``path`` lives."""
    return path.with_name(path.name + ".manifest.json")


@dataclass
class ExportLine:
    """One exported record: position, decoded content (or why not), exact bytes, chain hashes."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    record: str | None
    event: Any
    error: str | None
    key: bytes | None
    value: bytes | None
    prev_hash: bytes
    hash: bytes
    headers: Headers | None = None
    """The record's headers (values as UTF-8 text): the gate's decision points among them."""
    chain_version: int = 1
    """The link version of ``hash`` (:mod:`agentlog.projections.audit_chain`; files without it: version 1)."""

    def as_json(self) -> dict[str, Any]:
        """The JSON object of one line (key order fixed)."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "record": self.record,
            "event": self.event,
            "error": self.error,
            "key_b64": _b64(self.key),
            "value_b64": _b64(self.value),
            "prev_hash": self.prev_hash.hex(),
            "hash": self.hash.hex(),
            "headers": headers_as_json(self.headers),
            "chain_version": self.chain_version,
        }

    def as_row(self) -> list[Any]:
        """The CSV row (columns :data:`CSV_COLUMNS`)."""
        event = _compact(self.event) if self.event is not None else ""
        return [
            self.topic,
            self.partition,
            self.offset,
            self.timestamp_ms,
            self.record or "",
            event,
            self.error or "",
            _b64(self.key) or "",
            _b64(self.value) or "",
            self.prev_hash.hex(),
            self.hash.hex(),
            _compact(headers_as_json(self.headers)) if self.headers else "",
            self.chain_version,
        ]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def headers_from_json(value: Any) -> Headers | None:
    """The headers of :func:`headers_as_json`; raises ValueError when ``value`` is not such a list."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(h, list) and len(h) == 2 and isinstance(h[0], str) and (h[1] is None or isinstance(h[1], str))
        for h in value
    ):
        raise ValueError("headers must be a list of [name, value] pairs of text")
    return [(k, v.encode() if v is not None else None) for k, v in value]


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data is not None else None


@dataclass
class PartitionSummary:
    """What the export read of one (topic, partition) and took from it."""

    topic: str
    partition: int
    read: int = 0
    exported: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    chain_head: str | None = None
    """Hash of the last record read (exported or not): compare with ``projector_positions.chain_head``."""


@dataclass
class Manifest:
    """What an export holds; written next to it as JSON."""

    data_file: str
    encoding: str
    request: dict[str, Any]
    complete: bool
    """Nothing filtered out: every partition read is in the file in full, so its chain must be unbroken."""
    topic_prefix: str
    created_at: str
    records: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    partitions: list[PartitionSummary] = field(default_factory=list)
    sha256: str = ""
    tree_partitions: int | None = None
    """The partition count of the tree-keyed topics it was exported from (trees are found by it)."""
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    """The newest audit checkpoint record of each partition read, as the keyring judged it an anchor
    (:mod:`agentlog.replay.anchors`): what ``check-export`` holds the file's chains to."""

    def as_json(self) -> dict[str, Any]:
        """The manifest document."""
        return {
            "format": FORMAT,
            "data_file": self.data_file,
            "encoding": self.encoding,
            "request": self.request,
            "complete": self.complete,
            "topic_prefix": self.topic_prefix,
            "created_at": self.created_at,
            "records": self.records,
            "counts": dict(sorted(self.counts.items())),
            "first": self.first,
            "last": self.last,
            "partitions": [vars(p) for p in self.partitions],
            "sha256": self.sha256,
            "tree_partitions": self.tree_partitions,
            "checkpoints": self.checkpoints,
        }


class _HashingWriter:
    """A text sink that hashes the UTF-8 bytes it writes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()

    def write(self, text: str) -> int:
        self.digest.update(text.encode())
        return self.out.write(text)


def _position(line: ExportLine) -> dict[str, Any]:
    return {"topic": line.topic, "partition": line.partition, "offset": line.offset, "timestamp_ms": line.timestamp_ms}


class _Source:
    """The records to export, in export order, with their chain hashes and per-partition summaries."""

    def __init__(self, settings: Settings, selection: Selection, progress: Progress, tree_partitions: int) -> None:
        self.settings = settings
        self.selection = selection
        self.tree_partitions = tree_partitions
        self.progress = progress
        self.summaries: list[PartitionSummary] = []

    def _topic(self, spec: TopicSpec) -> str:
        return self.settings.topic_prefix + spec.name

    def _stream(self, topic: str, partition: int) -> tuple[PartitionSummary, Iterator[ChainedRecord]]:
        summary = PartitionSummary(topic, partition)
        self.summaries.append(summary)

        def items() -> Iterator[ChainedRecord]:
            for item in chained(read_partition(self.settings, topic, partition)):
                summary.read += 1
                summary.chain_head = item.hash.hex()
                self.progress.advance()
                yield item

        return summary, items()

    def records(self) -> Iterator[tuple[ChainedRecord, PartitionSummary]]:
        """Every record read, in export order, with the summary of its partition."""
        for side in SIDE_INPUTS:  # whole, whatever the selection: replay needs every version and key
            side_topic = self._topic(side)
            found = partitions_of if side is POLICY_CONFIG else existing_partitions  # older deployments: no keyring
            for p in found(self.settings, side_topic):
                summary, stream = self._stream(side_topic, p)
                for item in stream:
                    yield item, summary
        # Same-millisecond ties in the gate's order: lifecycle facts before requests (processors.input_merge).
        inputs_first = [AGENT_LIFECYCLE, SPAWN_REQUESTS]
        whole = (DLQ, AUDIT_CHECKPOINTS)  # not keyed by tree: exported whole, with everything only
        tree_specs = inputs_first + [s for s in CATALOGUE if s not in (*SIDE_INPUTS, *whole, *inputs_first)]
        topics = [self._topic(s) for s in tree_specs]
        numbers = sorted({p for t in topics for p in partitions_of(self.settings, t)})
        wanted = self.selection.tree_partition(self.tree_partitions)
        for p in numbers:
            if wanted is not None and p != wanted:
                continue
            streams = []
            for rank, topic in enumerate(topics):
                summary, stream = self._stream(topic, p)
                streams.append(_keyed(stream, rank, summary))
            for _, item, summary in heapq.merge(*streams, key=lambda entry: entry[0]):
                yield item, summary
        if self.selection.root_id is None and self.selection.agent_id is None and self.selection.tenant_id is None:
            for spec in whole:
                topic = self._topic(spec)
                for p in existing_partitions(self.settings, topic):  # older deployments: no checkpoints
                    summary, stream = self._stream(topic, p)
                    for item in stream:
                        yield item, summary


def _keyed(
    stream: Iterator[ChainedRecord], rank: int, summary: PartitionSummary
) -> Iterator[tuple[tuple[int, int, int], ChainedRecord, PartitionSummary]]:
    for item in stream:
        yield (item.record.timestamp_ms, rank, item.record.offset), item, summary


def export(
    settings: Settings,
    selection: Selection,
    path: Path,
    encoding: ExportFormat = ExportFormat.jsonl,
    *,
    progress: Progress | None = None,
    signer: str = SIGNER,
) -> Manifest:
    """Write the selected records to ``path`` and the manifest next to it; returns the manifest.

    The manifest carries the newest checkpoint of each partition read that ``signer``'s key signed (any, while the
    keyring holds no key of ``signer``)."""
    progress = progress or Progress("export", enabled=False)
    if selection.agent_id is not None and selection.root_id is None:
        selection = Selection(
            find_root(settings, selection.agent_id),
            selection.agent_id,
            selection.tenant_id,
            selection.since,
            selection.until,
        )
    agents = (
        subtree(settings, selection.root_id, selection.agent_id) if selection.root_id and selection.agent_id else None
    )
    serde = Serde.from_settings(settings)
    manifest = Manifest(
        data_file=path.name,
        encoding=encoding.value,
        request=selection.as_json(),
        complete=selection.everything,
        topic_prefix=settings.topic_prefix,
        created_at=datetime.now(UTC).isoformat(),
        tree_partitions=(tree_partitions := tree_partition_count(settings)),  # a tree's partition follows from it
    )
    anchors = export_anchors(settings, serde, signer)  # before the records: each is then below what is read
    counts: Counter[str] = Counter()
    side_topics = {settings.topic_prefix + spec.name for spec in SIDE_INPUTS}
    root_key = selection.root_id.encode() if selection.root_id else None
    source = _Source(settings, selection, progress, tree_partitions)
    with path.open("w", encoding="utf-8", newline="") as handle:
        sink = _HashingWriter(handle)
        rows = csv.writer(sink, lineterminator="\n") if encoding is ExportFormat.csv else None
        if rows is not None:
            rows.writerow(CSV_COLUMNS)
        for item, summary in source.records():
            record = item.record
            is_side_input = record.topic in side_topics
            if not is_side_input:
                if not selection.in_time(record.timestamp_ms):
                    continue
                if root_key is not None and record.key != root_key:
                    continue
            line = _decode(serde, item)
            if not is_side_input and not _selected(line, selection, agents):
                continue
            if rows is not None:
                rows.writerow(line.as_row())
            else:
                sink.write(_compact(line.as_json()) + "\n")
            counts[line.record or "undecodable"] += 1
            summary.exported += 1
            if summary.first_offset is None:
                summary.first_offset = record.offset
            summary.last_offset = record.offset
            manifest.first = manifest.first or _position(line)
            manifest.last = _position(line)
    manifest.records = sum(counts.values())
    manifest.counts = dict(counts)
    manifest.partitions = source.summaries
    read = {(p.topic, p.partition) for p in source.summaries}
    manifest.checkpoints = [checkpoint_json(a.record) for a in anchors if (a.topic, a.partition) in read and a.record]
    manifest.sha256 = sink.digest.hexdigest()
    manifest_path(path).write_text(json.dumps(manifest.as_json(), indent=2, ensure_ascii=False) + "\n")
    return manifest


def export_anchors(settings: Settings, serde: Serde, signer: str) -> list[Checkpoint]:
    """The newest anchor of every checkpointed partition now (of any projection schema), by the keyring topic."""
    keyring = whole_keyring(read_optional_topic(settings, settings.topic_prefix + KEYRING.name), serde)
    records = read_optional_topic(settings, settings.topic_prefix + AUDIT_CHECKPOINTS.name)
    return list(anchors_of(records, serde, keyring, schema=None, signer=signer).newest.values())


def checkpoint_json(record: Record) -> dict[str, Any]:
    """A checkpoint record as the manifest carries it: its position and exact bytes (:func:`checkpoint_record`)."""
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key_b64": _b64(record.key),
        "value_b64": _b64(record.value),
        "headers": headers_as_json(record.headers),
    }


def checkpoint_record(obj: dict[str, Any]) -> Record:
    """The record of :func:`checkpoint_json`; raises ValueError, KeyError or TypeError when it is not one."""
    key, value = obj["key_b64"], obj["value_b64"]
    return Record(
        str(obj["topic"]),
        int(obj["partition"]),
        int(obj["offset"]),
        int(obj["timestamp_ms"]),
        base64.b64decode(key, validate=True) if key is not None else None,
        base64.b64decode(value, validate=True) if value is not None else None,
        headers_from_json(obj.get("headers")),
    )


def _decode(serde: Serde, item: ChainedRecord) -> ExportLine:
    record = item.record
    name: str | None = None
    event: Any = None
    error: str | None = None
    try:
        decoded = serde.decode_value(record.value or b"")
        name, event = decoded.full_name, to_jsonable(decoded.value)
    except DecodeError as e:
        error = str(e)
    return ExportLine(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp_ms,
        name,
        event,
        error,
        record.key,
        record.value,
        item.prev_hash,
        item.hash,
        record.headers,
        item.version,
    )


def _selected(line: ExportLine, selection: Selection, agents: frozenset[str] | None) -> bool:
    if selection.root_id is None and selection.agent_id is None and selection.tenant_id is None:
        return True  # everything, or a time range only (already applied): undecodable records too
    event = line.event
    if not isinstance(event, dict):
        return False
    meta = event.get("meta") or {}
    if selection.root_id is not None and meta.get("root_id") != selection.root_id:
        return False
    if selection.tenant_id is not None and meta.get("tenant_id") != selection.tenant_id:
        return False
    return agents is None or names_any(event, agents)
