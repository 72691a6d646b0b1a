"""Reading partitions to their end: the one loop behind the gate's restore, the policy reader, replay and tail.

A :class:`PartitionReader` is a ``read_committed`` consumer of explicitly assigned
partitions (no group, no committed offsets). :meth:`~PartitionReader.read_to_end` yields
every committed record of them, in offset order per partition, from where each starts to
its end, and stops; :meth:`~PartitionReader.follow` then goes on from where reading
stopped. "The end" is one of two:

- **now** (the default): the high watermark when reading starts. Records appended later
  are left for the next read, so that reading a live topic terminates and every step of a
  replay sees the same records. A transaction being committed at that moment is waited
  for, briefly (:data:`SETTLE_S`: its markers follow its acknowledged commit within
  milliseconds); one still open after that ends the partition at its first record
  (committed reads cannot pass it).
- **stable**: the end of committed data, once no transaction is pending behind it. A
  transaction being committed (or aborted) when reading starts is waited for, so that a
  processor's restored state includes a batch whose commit was still being completed (the
  input offsets committed with it do). "Pending" is judged against the log end offset,
  asked by a ``read_uncommitted`` client: a ``read_committed`` client is told the last
  stable offset instead, which never shows a pending transaction.

Offsets are sparse (transaction markers and aborted records take offsets too; nothing here
counts them). A broker that is away or just back is waited out; the reader gives up only
after ``patience_s`` without progress, and a fatal error stops it at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Message, TopicPartition

from agentlog import kafka_config
from agentlog.errors import AgentlogError
from agentlog.records import Record
from agentlog.settings import Settings
from agentlog.watermarks import watermarks

BEGINNING = OFFSET_BEGINNING
"""A start at a partition's first record."""
END = OFFSET_END
"""A start at a partition's end (nothing to read to it; :meth:`PartitionReader.follow` reads what comes)."""

SETTLE_S = 2.0
"""How long a read "now" waits for transactions being completed below the log end to settle."""
_BATCH = 2_000
_WAIT_S = 0.5
"""Longest wait for the next record when none is queued (``consume`` returns at the first one)."""

Where = tuple[str, int]


class PartitionReadError(AgentlogError):
    """A partition could not be read: a fatal client error, or no progress for the reader's patience."""

    def __init__(self, topic: str, partition: int, reason: str) -> None:
        self.topic = topic
        self.partition = partition
        self.reason = reason
        super().__init__(f"cannot read {topic}[{partition}]: {reason}")


class PartitionReader:
    """Reads assigned partitions to their end, then (optionally) follows them.

    ``config`` adds to or overrides the consumer configuration (prefetch limits for
    replay's many readers, for instance).
    """

    def __init__(self, settings: Settings, *, config: dict[str, Any] | None = None, patience_s: float = 60.0) -> None:
        self.patience_s = patience_s
        self._config = {
            **kafka_config.reader(settings),
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,  # at a partition's end, say so at once (the default waits 500 ms)
            **(config or {}),
        }
        self._consumer = Consumer(self._config)
        self._uncommitted: Consumer | None = None
        """Asks for true high watermarks: a ``read_committed`` client's answer stops at open transactions."""
        self._next: dict[Where, int] = {}
        """Per partition, where reading goes on: a start (possibly logical), then after the last record yielded."""
        self._following = False

    def __enter__(self) -> PartitionReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the consumers."""
        self._consumer.close()
        if self._uncommitted is not None:
            self._uncommitted.close()

    def assign(self, starts: Iterable[tuple[str, int, int]]) -> None:
        """Read ``(topic, partition, start)`` from now on, instead of what was assigned before.

        A start is an offset, :data:`BEGINNING` or :data:`END`.
        """
        self._next = {(topic, partition): start for topic, partition, start in starts}
        self._following = False

    def positions(self) -> dict[Where, int]:
        """Per partition, the offset reading goes on from (after the last record read)."""
        return dict(self._next)

    def bounds(self, topic: str, partition: int) -> tuple[int, int]:
        """The partition's low and high watermark now."""
        return self._watermarks((topic, partition))

    def read_to_end(self, *, stable: bool = False) -> Iterator[Record]:
        """Every committed record of the assigned partitions from their start to their end (see the module)."""
        self._following = False
        ends = self._ends(stable)
        if not ends:
            return
        self._consumer.assign([TopicPartition(t, p, self._next[(t, p)]) for t, p in ends])
        progress = time.monotonic()
        while ends:
            batch = self._next_batch()
            if not batch and time.monotonic() - progress > self.patience_s:
                where = min(ends)
                raise PartitionReadError(*where, f"no progress to its end for {self.patience_s:g}s")
            for msg in batch:
                where = (msg.topic() or "", msg.partition() or 0)
                end = ends.get(where)
                if end is None:
                    continue  # a partition already read to its end
                error = msg.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        self._raise_if_fatal(where, error)
                        continue  # a broker that is away or just back: read on, within patience
                    progress = time.monotonic()
                    # Stable: done only if no transaction is pending behind the end of committed data.
                    if not stable or (msg.offset() or 0) >= self._high_watermark(where):
                        del ends[where]
                    continue
                offset = msg.offset() or 0
                if not stable and offset >= end:
                    del ends[where]  # appended after reading started
                    continue
                progress = time.monotonic()
                self._next[where] = offset + 1
                yield Record.from_message(msg)
                if not stable and offset + 1 >= end:
                    del ends[where]

    def _ends(self, stable: bool) -> dict[Where, int]:
        """Per partition with something to read, where reading ends; resolves the starts in ``_next``."""
        bounds = {where: (*self._watermarks(where), self._high_watermark(where)) for where in self._next}
        # Stable: a pending transaction is read to its outcome, however little is committed.
        settled = {w: log_end for w, (_, _, log_end) in bounds.items()} if stable else self._settled_ends(bounds)
        ends: dict[Where, int] = {}
        for where, start in self._next.items():
            low, end = bounds[where][0], settled[where]
            begin = end if start == END else low if start < low else start
            self._next[where] = begin
            if begin < end:
                ends[where] = end
        return ends

    def _settled_ends(self, bounds: dict[Where, tuple[int, int, int]]) -> dict[Where, int]:
        """The ends of a read "now": per partition, the log end offset if the transactions below it
        settle within :data:`SETTLE_S` (one deadline for all), else the last stable offset.

        A transaction whose commit has been acknowledged becomes readable only once its
        markers are written, a moment later; a reader that stopped at the last stable offset
        would miss what its caller has just committed.
        """
        stable = {where: stable_offset for where, (_, stable_offset, _) in bounds.items()}
        pending = [where for where, (_, stable_offset, log_end) in bounds.items() if stable_offset < log_end]
        deadline = time.monotonic() + SETTLE_S
        while pending and time.monotonic() < deadline:
            time.sleep(0.02)
            for where in pending:
                stable[where] = self._watermarks(where)[1]
            pending = [where for where in pending if stable[where] < bounds[where][2]]
        return {
            where: log_end if stable[where] >= log_end else stable[where] for where, (*_, log_end) in bounds.items()
        }

    def follow(self, max_records: int = 500, timeout_s: float = 0.0) -> list[Record]:
        """The records appended since the last read (waiting up to ``timeout_s`` for the first one)."""
        if not self._following:
            self._consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in self._next.items()])
            self._following = True
        records = []
        for msg in self._consumer.consume(max_records, timeout_s):
            error = msg.error()
            where = (msg.topic() or "", msg.partition() or 0)
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    self._raise_if_fatal(where, error)
                continue
            record = Record.from_message(msg)
            self._next[where] = record.offset + 1
            records.append(record)
        return records

    def _next_batch(self) -> list[Message]:
        """What the client has queued, without waiting; or, when nothing is, the first record to arrive.

        ``consume(n, timeout)`` waits for ``n`` records or the timeout, so a plain call costs a
        full timeout whenever fewer are queued (small transactional batches, a partition's end).
        """
        batch = self._consumer.consume(_BATCH, 0)
        return batch if batch else self._consumer.consume(1, _WAIT_S)

    def _watermarks(self, where: Where, consumer: Consumer | None = None) -> tuple[int, int]:
        """Low and high watermark as ``consumer`` (default: the reading one) is told them."""
        try:
            return watermarks(consumer or self._consumer, where[0], where[1], self.patience_s)
        except AgentlogError as e:
            raise PartitionReadError(*where, str(e)) from e

    def _high_watermark(self, where: Where) -> int:
        """The high watermark, open transactions included (the log end offset, not the last stable offset)."""
        if self._uncommitted is None:
            self._uncommitted = Consumer({**self._config, "isolation.level": "read_uncommitted"})
        return self._watermarks(where, self._uncommitted)[1]

    @staticmethod
    def _raise_if_fatal(where: Where, error: KafkaError) -> None:
        if error.fatal():
            raise PartitionReadError(*where, error.str())


def read_changelog(
    settings: Settings, topic: str, partitions: Iterable[int], patience_s: float = 60.0
) -> dict[int, dict[bytes, bytes | None]]:
    """The newest value per key (None: a tombstone) of each of ``partitions`` of a processor's compacted
    changelog, read to its stable end: a transaction still being committed is waited for, so that the state
    matches the input offsets committed with it. Keys are in the order they first appear; keyless records are
    skipped. Raises :class:`PartitionReadError`."""
    latest: dict[int, dict[bytes, bytes | None]] = {p: {} for p in partitions}
    with PartitionReader(settings, patience_s=patience_s) as reader:
        reader.assign((topic, p, BEGINNING) for p in latest)
        for record in reader.read_to_end(stable=True):
            if record.key is not None:
                latest[record.partition][record.key] = record.value
    return latest
