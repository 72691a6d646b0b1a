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
   the last one's hash is the partition's chain head in the manifest.
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

from agentlog.errors import DecodeError
from agentlog.projections import GENESIS, link, signature_of
from agentlog.records import at
from agentlog.replay.errors import ExportFormatError
from agentlog.replay.export import CSV_COLUMNS, FORMAT, ExportLine, headers_from_json, manifest_path
from agentlog.serde import Serde, to_jsonable


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


def check_export(path: Path, serde: Serde | None = None) -> list[Problem]:
    """Every problem with the export ``path`` and its manifest (empty: the export checks out)."""
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
    for number, line in read_lines(path, str(manifest.get("encoding", "jsonl"))):
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
    return problems


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
