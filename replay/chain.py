"""The audit chain of one partition, computed fast: :func:`agentlog.projections.audit_chain.link` with the
per-partition part of the input (topic and partition) framed once, and one hash call per record.

The bytes hashed are exactly :func:`~projections.audit_chain.link`'s (a test checks it); the
SQL expression :data:`ROW_HASH_SQL` computes the same over an audit row inside PostgreSQL.
"""

from __future__ import annotations

import hashlib
import struct

_NULL = struct.pack(">i", -1)
_INT = struct.Struct(">i")
_OFFSET_TIME = struct.Struct(">qq")

ROW_HASH_SQL = (
    "sha256(prev_hash || int4send(octet_length(convert_to(topic, 'UTF8'))) || convert_to(topic, 'UTF8')"
    ' || int4send(partition) || int8send("offset") || int8send(timestamp_ms)'
    " || CASE WHEN key IS NULL THEN int4send(-1) ELSE int4send(length(key)) || key END"
    " || CASE WHEN raw_value IS NULL THEN int4send(-1) ELSE int4send(length(raw_value)) || raw_value END)"
)
"""The chain hash of an audit row, recomputed by the database from the row's own columns."""


class PartitionChain:
    """Links records of one (topic, partition)."""

    __slots__ = ("_head",)

    def __init__(self, topic: str, partition: int) -> None:
        encoded = topic.encode()
        self._head = _INT.pack(len(encoded)) + encoded + _INT.pack(partition)

    def link(self, prev_hash: bytes, offset: int, timestamp_ms: int, key: bytes | None, value: bytes | None) -> bytes:
        """The hash of one record chained to ``prev_hash`` (equal to ``audit_chain.link``)."""
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
