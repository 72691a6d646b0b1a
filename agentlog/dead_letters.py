"""Dead letters: records a stage could not handle go to ``agentlog.dlq`` with the reason.

The original key and value bytes are kept untouched; headers say which stage gave up,
why, and where the record came from, so that it can be inspected (``agentlog tail
agentlog.dlq``) and re-driven. A record too large to be dead-lettered whole (a dead
letter must fit the producer's message limit with its headers) keeps the first
:data:`~agentlog.limits.DEAD_LETTER_KEEP_BYTES` of its key and value, and a
``agentlog.dlq.truncated`` header gives the original sizes: the position headers still
lead to the whole record on its topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentlog.limits import DEAD_LETTER_KEEP_BYTES
from agentlog.records import Headers
from agentlog.topics import DLQ

STAGE = "agentlog.dlq.stage"
ERROR_CLASS = "agentlog.dlq.error.class"
ERROR_MESSAGE = "agentlog.dlq.error.message"
SOURCE_TOPIC = "agentlog.dlq.source.topic"
SOURCE_PARTITION = "agentlog.dlq.source.partition"
SOURCE_OFFSET = "agentlog.dlq.source.offset"
TRUNCATED = "agentlog.dlq.truncated"

RECORD_BUDGET = 900_000
"""Bytes a dead letter may take (key, value and headers): under librdkafka's default
``message.max.bytes`` of 1,000,000, with room for the record's framing."""


@dataclass(frozen=True)
class DeadLetter:
    """A record one stage could not process, and why."""

    stage: str
    """Which stage gave up, e.g. ``agentlog.processors.spawn_gate`` or ``agentlog.projections.projector``."""
    error: BaseException
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    def headers(self, original: Sequence[tuple[str, str | bytes | None]] | None = None) -> Headers:
        """The original headers plus the dead-letter headers."""
        return [
            *(original or []),
            (STAGE, self.stage.encode()),
            (ERROR_CLASS, type(self.error).__name__.encode()),
            (ERROR_MESSAGE, str(self.error).encode()[:4096]),
            (SOURCE_TOPIC, self.topic.encode()),
            (SOURCE_PARTITION, str(self.partition).encode()),
            (SOURCE_OFFSET, str(self.offset).encode()),
        ]

    def record(
        self, original: Sequence[tuple[str, str | bytes | None]] | None = None
    ) -> tuple[bytes | None, bytes | None, Headers]:
        """Key, value and headers of the dead letter, cut to fit :data:`RECORD_BUDGET` when they would not."""
        key, value, original = self.key, self.value, list(original or [])
        headers = self.headers(original)
        key_size, value_size, original_size = len(key or b""), len(value or b""), _headers_size(original)
        if key_size + value_size + _headers_size(headers) <= RECORD_BUDGET:
            return key, value, headers
        keep = DEAD_LETTER_KEEP_BYTES
        kept = original if original_size <= keep else []
        sizes = (
            f"key {key_size} bytes, value {value_size} bytes, headers {original_size} bytes"
            f"{'' if kept else ' (dropped)'}; kept the first {keep} bytes of key and value"
        )
        return (
            None if key is None else key[:keep],
            None if value is None else value[:keep],
            [*self.headers(kept), (TRUNCATED, sizes.encode())],
        )


def _headers_size(headers: Sequence[tuple[str, str | bytes | None]]) -> int:
    return sum(len(name) + len(value or b"") for name, value in headers)


def dlq_topic(prefix: str) -> str:
    """Deployed name of the dead-letter topic."""
    return prefix + DLQ.name
