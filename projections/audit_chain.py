"""The audit log's hash chain: one definition, in Python and in SQL, shared by the projector and ``replay verify``.

Each (topic, partition) has its own chain. The first row projected from a partition links
to :data:`GENESIS` (32 zero bytes); every later row links to the hash of the row before it
in offset order::

    hash = SHA-256( prev_hash                       32 bytes
                  || len(topic)  || topic           int32 big-endian + UTF-8
                  || partition                      int32 big-endian
                  || offset                         int64 big-endian
                  || timestamp_ms                   int64 big-endian (-1 when Kafka has none)
                  || len(key)    || key             int32 big-endian + bytes (length -1: null key)
                  || len(value)  || value )         int32 big-endian + bytes (length -1: null value)

The topic is the deployed name (prefix included) and key and value are the record's
exact bytes, so that anyone holding the Kafka records can recompute every hash without
agentlog's decoder. A changed row breaks its own hash; a removed or reordered row breaks
the ``prev_hash`` link of the row after it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from agentlog.records import Record

GENESIS = bytes(32)
"""``prev_hash`` of the first row of every chain."""
_NULL = struct.pack(">i", -1)
_INT = struct.Struct(">i")
_OFFSET_TIME = struct.Struct(">qq")

ROW_HASH_SQL = (
    "sha256(prev_hash || int4send(octet_length(convert_to(topic, 'UTF8'))) || convert_to(topic, 'UTF8')"
    ' || int4send(partition) || int8send("offset") || int8send(timestamp_ms)'
    " || CASE WHEN key IS NULL THEN int4send(-1) ELSE int4send(length(key)) || key END"
    " || CASE WHEN raw_value IS NULL THEN int4send(-1) ELSE int4send(length(raw_value)) || raw_value END)"
)
"""The same hash computed by PostgreSQL from an audit row's own columns (``replay verify`` uses it)."""


class PartitionChain:
    """Links the records of one (topic, partition): the per-partition part of the input framed once."""

    __slots__ = ("_head",)

    def __init__(self, topic: str, partition: int) -> None:
        encoded = topic.encode()
        self._head = _INT.pack(len(encoded)) + encoded + _INT.pack(partition)

    def link(self, prev_hash: bytes, offset: int, timestamp_ms: int, key: bytes | None, value: bytes | None) -> bytes:
        """The hash of one record of this partition chained to ``prev_hash``."""
        return hashlib.sha256(
            b"".join(
                (
                    prev_hash,
                    self._head,
                    _OFFSET_TIME.pack(offset, timestamp_ms),
                    _NULL if key is None else _INT.pack(len(key)) + key,
                    _NULL if value is None else _INT.pack(len(value)) + value,
                )
            )
        ).digest()


def link(
    prev_hash: bytes, topic: str, partition: int, offset: int, timestamp_ms: int, key: bytes | None, value: bytes | None
) -> bytes:
    """The hash of one record, chained to ``prev_hash`` (see the module docstring for the layout)."""
    return PartitionChain(topic, partition).link(prev_hash, offset, timestamp_ms, key, value)


@dataclass(frozen=True, slots=True)
class ChainedRecord:
    """One record with the chain hashes it was stored with (a row) or that follow from its predecessors (Kafka)."""

    record: Record
    prev_hash: bytes
    hash: bytes


def chained(records: Iterable[Record]) -> Iterator[ChainedRecord]:
    """``records`` of one partition, from its first record, with their hashes recomputed from :data:`GENESIS`."""
    prev = GENESIS
    chain: PartitionChain | None = None
    for r in records:
        chain = chain or PartitionChain(r.topic, r.partition)
        digest = chain.link(prev, r.offset, r.timestamp_ms, r.key, r.value)
        yield ChainedRecord(r, prev, digest)
        prev = digest


@dataclass(frozen=True)
class ChainBreak:
    """A row whose hashes do not follow from the rows before it."""

    topic: str
    partition: int
    offset: int
    problem: str
    """``prev_hash`` (a row before it was removed, added or reordered) or ``hash`` (this row was changed)."""


def verify(records: Iterable[ChainedRecord]) -> list[ChainBreak]:
    """Every break in the chains of ``records`` (in offset order within each partition)."""
    heads: dict[tuple[str, int], bytes] = {}
    breaks = []
    for chained_record in records:
        r = chained_record.record
        where = (r.topic, r.partition)
        if chained_record.prev_hash != heads.get(where, GENESIS):
            breaks.append(ChainBreak(r.topic, r.partition, r.offset, "prev_hash"))
        recomputed = link(chained_record.prev_hash, r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value)
        if recomputed != chained_record.hash:
            breaks.append(ChainBreak(r.topic, r.partition, r.offset, "hash"))
        heads[where] = chained_record.hash
    return breaks
