"""``replay check-export``: an export file and its manifest, checked without Kafka or the database.

Checks, each reported with the line it concerns:

1. the file's SHA-256 is the one in the manifest (nothing was changed, added or removed);
2. every line's ``hash`` is the chain link (of the line's ``chain_version``) of its
   ``prev_hash`` and its exact key and value bytes, topic, partition, offset, timestamp
   and signature (the record is what Kafka held, signed as it was);
3. every line's decoded ``event`` and ``record`` are what its value bytes decode to;
4. the counts per record type and the first and last positions are the manifest's;
5. for a complete export (nothing filtered), every partition's chain is unbroken: each
   line links to the one before it in its partition (the first to the genesis hash) and
   the last one's hash is the partition's chain head in the manifest;
6. the audit checkpoints the manifest carries (the newest of each partition read, at export
   time) are judged again, by the keyring the file itself holds, with the same rule as
   ``replay verify`` (:mod:`agentlog.replay.anchors`): one the projector's key did not sign
   is a problem. For a complete export, each partition's chain must reach every anchor and
   make its head there: an export whose newest lines were removed, and its manifest made to
   match, falls short of what the projector signed. (A partial export's lines are not linked
   to each other, so only ``replay verify``, against Kafka, holds them to a checkpoint; a
   compacted topic's chain (the policy's, the keyring's) cannot be recomputed from what
   compaction left.)
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentlog import events as ev
from agentlog.errors import DecodeError
from agentlog.keyring import whole_keyring
from agentlog.projections import GENESIS, link, signature_of
from agentlog.records import Record, at
from agentlog.replay.anchors import SIGNER, Anchors, anchors_of
from agentlog.replay.errors import ExportFormatError
from agentlog.replay.export import (
    CSV_COLUMNS,
    FORMAT,
    ExportLine,
    checkpoint_record,
    headers_from_json,
    manifest_path,
)
from agentlog.serde import Serde, to_jsonable
from agentlog.topics import KEYRING, by_name


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an export; ``line`` is the 1-based line (or CSV row) number, if any."""

    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the export ``path``; raises :class:`ExportFormatError` if it is missing or not one."""
    where = manifest_path(path)
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except OSError as e:
        raise ExportFormatError(str(where), f"cannot read the manifest: {e.strerror or e}") from e
    except ValueError as e:
        raise ExportFormatError(str(where), f"not JSON: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportFormatError(str(where), f"not an {FORMAT} manifest")
    return manifest


def _unb64(text: str | None) -> bytes | None:
    return base64.b64decode(text, validate=True) if text is not None else None


def read_lines(path: Path, encoding: str) -> Iterator[tuple[int, ExportLine]]:
    """The records of an export file with their line numbers; raises :class:`ExportFormatError` on bad lines."""
    with path.open(encoding="utf-8", newline="") as handle:
        if encoding == "csv":
            rows = csv.reader(handle)
            header = next(rows, None)
            if header is None or tuple(header) not in (CSV_COLUMNS, CSV_COLUMNS[:-1], CSV_COLUMNS[:-2]):
                raise ExportFormatError(str(path), f"expected the CSV header {','.join(CSV_COLUMNS)}", 1)
            columns = tuple(header)
            for number, row in enumerate(rows, start=2):
                yield number, _parse(path, number, lambda row=row: _from_row(row, columns))
        else:
            for number, text in enumerate(handle, start=1):
                yield number, _parse(path, number, lambda text=text: _from_json(json.loads(text)))


def _parse(path: Path, number: int, build: Any) -> ExportLine:
    try:
        line: ExportLine = build()
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise ExportFormatError(str(path), f"not an export record: {type(e).__name__}: {e}", number) from e
    return line


def _from_json(obj: dict[str, Any]) -> ExportLine:
    return ExportLine(
        str(obj["topic"]),
        int(obj["partition"]),
        int(obj["offset"]),
        int(obj["timestamp_ms"]),
        obj["record"],
        obj["event"],
        obj["error"],
        _unb64(obj["key_b64"]),
        _unb64(obj["value_b64"]),
        bytes.fromhex(obj["prev_hash"]),
        bytes.fromhex(obj["hash"]),
        headers_from_json(obj.get("headers")),
        int(obj.get("chain_version", 1)),
    )


def _from_row(row: list[str], columns: tuple[str, ...]) -> ExportLine:
    if len(row) != len(columns):
        raise ValueError(f"{len(row)} columns, expected {len(columns)}")
    cells = dict(zip(columns, row, strict=True))
    return ExportLine(
        cells["topic"],
        int(cells["partition"]),
        int(cells["offset"]),
        int(cells["timestamp_ms"]),
        cells["record"] or None,
        json.loads(cells["event_json"]) if cells["event_json"] else None,
        cells["error"] or None,
        _unb64(cells["key_b64"] or None),
        _unb64(cells["value_b64"] or None),
        bytes.fromhex(cells["prev_hash"]),
        bytes.fromhex(cells["hash"]),
        headers_from_json(json.loads(cells["headers_json"])) if cells.get("headers_json") else None,
        int(cells.get("chain_version") or 1),
    )


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ExportCheck:
    """What checking an export found: its problems, and the checkpoints it was held to."""

    problems: list[Problem]
    anchors: Anchors
    compared: int
    """Anchors whose head was compared with the file's chain."""


def check_export(path: Path, serde: Serde | None = None) -> list[Problem]:
    """Every problem with the export ``path`` and its manifest (empty: the export checks out)."""
    return check_export_report(path, serde).problems


def check_export_report(path: Path, serde: Serde | None = None, *, signer: str = SIGNER) -> ExportCheck:
    """Check the export ``path`` and its manifest; checkpoints count when ``signer``'s key signed them."""
    manifest = load_manifest(path)
    serde = serde or Serde()
    problems: list[Problem] = []
    digest = file_digest(path)
    if digest != manifest.get("sha256"):
        problems.append(Problem(None, f"file SHA-256 is {digest}, the manifest says {manifest.get('sha256')}"))
    complete = bool(manifest.get("complete"))
    counts: Counter[str] = Counter()
    heads: dict[tuple[str, int], bytes] = {}
    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    held = _HeldTo(manifest, serde)
    for number, line in read_lines(path, str(manifest.get("encoding", "jsonl"))):
        held.read(line)
        where = at(line.topic, line.partition, line.offset)
        expected = link(
            line.prev_hash,
            line.topic,
            line.partition,
            line.offset,
            line.timestamp_ms,
            line.key,
            line.value,
            signature_of(line.headers),
            line.chain_version,
        )
        if expected != line.hash:
            problems.append(Problem(number, f"{where}: hash does not match the record's bytes and prev_hash"))
        tp = (line.topic, line.partition)
        if complete and line.prev_hash != heads.get(tp, GENESIS):
            problems.append(Problem(number, f"{where}: prev_hash does not link to the line before it in its partition"))
        heads[tp] = line.hash
        problems += _check_decoded(serde, number, where, line)
        counts[line.record or "undecodable"] += 1
        position = {"topic": line.topic, "partition": line.partition, "offset": line.offset}
        position["timestamp_ms"] = line.timestamp_ms
        first = first or position
        last = position
    recorded = {str(k): int(v) for k, v in (manifest.get("counts") or {}).items()}
    if dict(counts) != recorded:
        problems.append(Problem(None, f"counts per record type {dict(sorted(counts.items()))} != manifest {recorded}"))
    if sum(counts.values()) != manifest.get("records"):
        problems.append(Problem(None, f"{sum(counts.values())} records, the manifest says {manifest.get('records')}"))
    if first != manifest.get("first") or last != manifest.get("last"):
        problems.append(Problem(None, f"first/last positions {first} / {last} differ from the manifest's"))
    if complete:
        for summary in manifest.get("partitions") or []:
            tp = (summary["topic"], summary["partition"])
            head = heads[tp].hex() if tp in heads else None
            if head != summary.get("chain_head"):
                problems.append(Problem(None, f"{tp[0]}[{tp[1]}]: chain ends at {head}, the manifest says {summary}"))
    anchors, compared = held.judge(signer, complete, problems)
    return ExportCheck(problems, anchors, compared)


class _HeldTo:
    """The manifest's checkpoints, and what the file's lines say at each: the chain's head below it."""

    def __init__(self, manifest: dict[str, Any], serde: Serde) -> None:
        self.serde = serde
        self.prefix = str(manifest.get("topic_prefix") or "")
        self.keyring_topic = self.prefix + KEYRING.name
        self.keyring_records: list[Record] = []
        self.problems: list[Problem] = []
        self.records: list[Record] = []
        self.below: dict[tuple[str, int], list[int]] = {}
        """Per checkpointed partition, the next offsets its checkpoints name."""
        for number, obj in enumerate(manifest.get("checkpoints") or [], start=1):
            try:
                record = checkpoint_record(obj)
                event = serde.decode(record.value or b"")
            except (ValueError, KeyError, TypeError, binascii.Error, DecodeError) as e:
                self.problems.append(Problem(None, f"manifest checkpoint {number} is not a checkpoint record: {e}"))
                continue
            if isinstance(event, ev.AuditCheckpoint):
                self.records.append(record)
                self.below.setdefault((event.topic, event.partition), []).append(event.next_offset)
        self.heads: dict[tuple[str, int, int], bytes] = {}
        """(topic, partition, next offset): the hash of the partition's last line below that offset."""

    def read(self, line: ExportLine) -> None:
        if line.topic == self.keyring_topic:
            self.keyring_records.append(
                Record(line.topic, line.partition, line.offset, line.timestamp_ms, line.key, line.value, line.headers)
            )
        for next_offset in self.below.get((line.topic, line.partition), ()):
            if line.offset < next_offset:
                self.heads[(line.topic, line.partition, next_offset)] = line.hash

    def judge(self, signer: str, complete: bool, problems: list[Problem]) -> tuple[Anchors, int]:
        """The anchors by the file's keyring; their problems (and the manifest's) added to ``problems``."""
        problems += self.problems
        anchors = anchors_of(
            self.records, self.serde, whole_keyring(self.keyring_records, self.serde), schema=None, signer=signer
        )
        problems += [Problem(None, f"manifest checkpoint {r}") for r in anchors.rejected]
        compared = 0
        for (topic, partition), anchor in sorted(anchors.newest.items()):
            spec = by_name(topic, self.prefix)
            if not complete or (spec is not None and spec.cleanup_policy == "compact"):
                continue
            compared += 1
            head = self.heads.get((topic, partition, anchor.next_offset), GENESIS)
            if head != anchor.chain_head:
                problems.append(
                    Problem(
                        None,
                        f"{topic}[{partition}]: the chain below offset {anchor.next_offset} ends at {head.hex()[:16]}…;"
                        f" the checkpoint {anchor.at} attests {anchor.chain_head.hex()[:16]}… (lines removed or"
                        " changed since the projector signed it)",
                    )
                )
        return anchors, compared


def _check_decoded(serde: Serde, number: int, where: str, line: ExportLine) -> list[Problem]:
    try:
        decoded = serde.decode_value(line.value or b"")
    except DecodeError:
        if line.record is not None or line.event is not None:
            return [Problem(number, f"{where}: the value bytes do not decode, yet a decoded event is given")]
        return []
    if decoded.full_name != line.record:
        return [Problem(number, f"{where}: record is {line.record}, the bytes hold {decoded.full_name}")]
    actual = json.loads(json.dumps(to_jsonable(decoded.value)))
    if actual != line.event:  # exported by an older reader? then it shows the record as its writer wrote it
        as_written = json.loads(json.dumps(to_jsonable(serde.decode_as_written(line.value or b""))))
        if as_written == line.event:
            return []
        fields = sorted(k for k in set(actual) | set(line.event or {}) if actual.get(k) != (line.event or {}).get(k))
        return [Problem(number, f"{where}: decoded event differs from the value bytes in {', '.join(fields)}")]
    return []
