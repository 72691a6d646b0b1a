"""The audit log's hash chain: one definition, in Python and in SQL, shared by the projector and ``replay verify``.

Each (topic, partition) has its own chain. The first row projected from a partition links
to :data:`GENESIS` (32 zero bytes); every later row links to the hash of the row before it
in offset order. A row says which link version hashed it (``chain_version``); the
projector writes :data:`CHAIN_VERSION`. Version 1::

    hash = SHA-256( prev_hash                       32 bytes
                  || len(topic)  || topic           int32 big-endian + UTF-8
                  || partition                      int32 big-endian
                  || offset                         int64 big-endian
                  || timestamp_ms                   int64 big-endian (-1 when Kafka has none)
                  || len(key)    || key             int32 big-endian + bytes (length -1: null key)
                  || len(value)  || value )         int32 big-endian + bytes (length -1: null value)

Version 2 (since records are signed) covers the record's signature too, so that the
audit proves who signed each act, not only what it said::

    hash = SHA-256( 0x02 || <the fields of version 1, in order>
                  || len(signature) || signature )  int32 big-endian + UTF-8 (length -1: unsigned)

where the signature is the ``agentlog-signature`` header's text (:mod:`agentlog.signing`).

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

from agentlog.records import Headers, Record
from agentlog.signing import signature_header

GENESIS = bytes(32)
"""``prev_hash`` of the first row of every chain."""
CHAIN_VERSION = 2
"""The link version the projector hashes new rows with."""
_V2 = b"\x02"
_NULL = struct.pack(">i", -1)
_INT = struct.Struct(">i")
_OFFSET_TIME = struct.Struct(">qq")

_V1_FIELDS_SQL = (
    "prev_hash || int4send(octet_length(convert_to(topic, 'UTF8'))) || convert_to(topic, 'UTF8')"
    ' || int4send(partition) || int8send("offset") || int8send(timestamp_ms)'
    " || CASE WHEN key IS NULL THEN int4send(-1) ELSE int4send(length(key)) || key END"
    " || CASE WHEN raw_value IS NULL THEN int4send(-1) ELSE int4send(length(raw_value)) || raw_value END"
)
ROW_HASH_SQL = (
    f"CASE WHEN chain_version = 1 THEN sha256({_V1_FIELDS_SQL})"
    f" ELSE sha256('\\x02'::bytea || {_V1_FIELDS_SQL}"
    " || CASE WHEN signature IS NULL THEN int4send(-1)"
    " ELSE int4send(octet_length(convert_to(signature, 'UTF8'))) || convert_to(signature, 'UTF8') END) END"
)
"""The same hash computed by PostgreSQL from an audit row's own columns (``replay verify`` uses it)."""


class PartitionChain:
    """Links the records of one (topic, partition): the per-partition part of the input framed once."""

    __slots__ = ("_head",)

    def __init__(self, topic: str, partition: int) -> None:
        encoded = topic.encode()
        self._head = _INT.pack(len(encoded)) + encoded + _INT.pack(partition)

    def link(
        self,
        prev_hash: bytes,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
        signature: str | None = None,
        version: int = CHAIN_VERSION,
    ) -> bytes:
        """The hash of one record of this partition chained to ``prev_hash``, by link ``version``."""
        fields = (
            prev_hash,
            self._head,
            _OFFSET_TIME.pack(offset, timestamp_ms),
            _NULL if key is None else _INT.pack(len(key)) + key,
            _NULL if value is None else _INT.pack(len(value)) + value,
        )
        if version == 1:
            return hashlib.sha256(b"".join(fields)).digest()
        signed = _NULL if signature is None else _INT.pack(len(encoded := signature.encode())) + encoded
        return hashlib.sha256(b"".join((_V2, *fields, signed))).digest()


def link(
    prev_hash: bytes,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    signature: str | None = None,
    version: int = CHAIN_VERSION,
) -> bytes:
    """The hash of one record, chained to ``prev_hash`` (see the module docstring for the layout)."""
    return PartitionChain(topic, partition).link(prev_hash, offset, timestamp_ms, key, value, signature, version)


def signature_of(headers: Headers | None) -> str | None:
    """A record's signature as the chain covers it: the signature header's text (None: unsigned).

    Decoded as the audit log and exports keep header values (UTF-8, bad bytes replaced).
    """
    value = signature_header(headers)
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class ChainedRecord:
    """One record with the chain hashes it was stored with (a row) or that follow from its predecessors (Kafka)."""

    record: Record
    prev_hash: bytes
    hash: bytes
    version: int = CHAIN_VERSION
    """The link version of ``hash``."""


def chained(records: Iterable[Record]) -> Iterator[ChainedRecord]:
    """``records`` of one partition, from its first record, with their hashes recomputed from :data:`GENESIS`."""
    prev = GENESIS
    chain: PartitionChain | None = None
    for r in records:
        chain = chain or PartitionChain(r.topic, r.partition)
        digest = chain.link(prev, r.offset, r.timestamp_ms, r.key, r.value, signature_of(r.headers))
        yield ChainedRecord(r, prev, digest)
        prev = digest


@dataclass(frozen=True)
class ChainBreak:
    """A row whose hashes do not follow from the rows before it."""

    topic: str
    partition: int
    offset: int
    problem: str
    """``prev_hash`` (a row before it was removed, added or reordered), ``hash`` (this row was changed) or
    ``chain_version`` (an older link version after a newer one: a row rewritten as version 1)."""


def verify(records: Iterable[ChainedRecord]) -> list[ChainBreak]:
    """Every break in the chains of ``records`` (in offset order within each partition)."""
    heads: dict[tuple[str, int], tuple[bytes, int]] = {}
    breaks = []
    for item in records:
        r = item.record
        where = (r.topic, r.partition)
        head, version = heads.get(where, (GENESIS, 1))
        if item.prev_hash != head:
            breaks.append(ChainBreak(r.topic, r.partition, r.offset, "prev_hash"))
        if item.version < version:
            breaks.append(ChainBreak(r.topic, r.partition, r.offset, "chain_version"))
        signature = signature_of(r.headers)
        recomputed = link(
            item.prev_hash, r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, signature, item.version
        )
        if recomputed != item.hash:
            breaks.append(ChainBreak(r.topic, r.partition, r.offset, "hash"))
        heads[where] = (item.hash, max(version, item.version))
    return breaks
