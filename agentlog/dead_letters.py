"""Dead letters: records a stage could not handle go to ``agentlog.dlq`` with the reason.

The original key and value bytes are kept untouched; headers say which stage gave up,
why, and where the record came from, so that it can be inspected (``agentlog tail
agentlog.dlq``) and re-driven.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentlog.topics import DLQ

Headers = list[tuple[str, str | bytes | None]]

STAGE = "agentlog.dlq.stage"
ERROR_CLASS = "agentlog.dlq.error.class"
ERROR_MESSAGE = "agentlog.dlq.error.message"
SOURCE_TOPIC = "agentlog.dlq.source.topic"
SOURCE_PARTITION = "agentlog.dlq.source.partition"
SOURCE_OFFSET = "agentlog.dlq.source.offset"


@dataclass(frozen=True)
class DeadLetter:
    """A record one stage could not process, and why."""

    stage: str
    """Which stage gave up, e.g. ``processors.spawn_gate`` or ``projections.projector``."""
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


def dlq_topic(prefix: str) -> str:
    """Deployed name of the dead-letter topic."""
    return prefix + DLQ.name
