"""A deterministic order for the co-partitioned input topics of one partition.

The order is :class:`MergeOrder`: append time, then a rank per source among records of the
same millisecond, then offset; :class:`PartitionMerge` releases records in it for any
number of sources. The spawn gate reads ``agentlog.spawn.requests`` and ``agentlog.agent.lifecycle``, which
are co-partitioned: partition *p* of each holds the same trees. Their records must be
decided in one order that does not depend on how fetches happened to interleave, so that
a restarted processor, a second worker after a rebalance and the replay tool all see the
same sequence. That order is the broker's append time (the topics use
``message.timestamp.type=LogAppendTime``), then the topic, then the offset. Within one
millisecond lifecycle facts go before requests: a runtime that reports a completion and
then asks for a new spawn expects the returned tokens to count, while a request's
follow-up facts (usage of the new child) need the decision first and so come later anyway.

A record is *released* only when no record that sorts before it can still arrive:

- the other topic has a buffered record that sorts after it, or
- the other topic was known to be read to its end (for ``read_committed``: its last stable
  offset) at a local time ≥ the record's timestamp + ``clock_margin_ms``. End-of-partition
  events say which offset the fetcher reached the end at, but not when (they may wait in
  the client's queue); so when :meth:`PartitionMerge.blocked_on` says a release waits for
  the other topic, the worker asks the broker for that partition's end offset, and an
  unchanged end proves the topic was still at its end when the question was sent.

Everything else waits in the buffer (it is not committed, so a crash re-reads it). A
pending transaction on an input topic therefore holds back the records after it, which
is what keeps the order independent of when that transaction commits.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

REQUESTS = 0
LIFECYCLE = 1
CLOCK_MARGIN_MS = 5
"""Default allowed difference between a worker's clock and the brokers' (the gate's ``--clock-margin-ms``)."""


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One raw record read from an input topic."""

    source: int
    """REQUESTS or LIFECYCLE."""
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]] | None = None

    def sort_key(self) -> tuple[int, int, int]:
        """The spawn gate's order (:data:`GATE_ORDER`): append time, lifecycle first, offset."""
        return GATE_ORDER.key(self)


@dataclass(frozen=True, slots=True)
class MergeOrder:
    """The decision order of a processor's inputs: append time, then ``ranks[source]``, then offset."""

    ranks: tuple[int, ...]
    """Per source (in the order of the processor's input topics), its rank among records of one millisecond."""

    def key(self, record: InputRecord) -> tuple[int, int, int]:
        """(append time, rank, offset) of ``record``."""
        return (record.timestamp_ms, self.ranks[record.source], record.offset)


GATE_ORDER = MergeOrder(ranks=(1, 0))
"""The spawn gate's: requests and lifecycle reports, lifecycle first within a millisecond."""


@dataclass
class PartitionMerge:
    """Buffers the records of one partition of every input topic and releases them in order."""

    clock_margin_ms: int = CLOCK_MARGIN_MS
    order: MergeOrder = GATE_ORDER
    _heaps: list[list[tuple[tuple[int, int, int], InputRecord]]] = field(init=False)
    _caught_up_at: list[int | None] = field(init=False)
    _end_offset: list[int | None] = field(init=False)

    def __post_init__(self) -> None:
        sources = len(self.order.ranks)
        self._heaps = [[] for _ in range(sources)]
        self._caught_up_at = [None] * sources
        self._end_offset = [None] * sources

    def add(self, record: InputRecord) -> None:
        """Buffer a fetched record (it means its topic is not at its end any more)."""
        heapq.heappush(self._heaps[record.source], (self.order.key(record), record))
        self._caught_up_at[record.source] = None
        self._end_offset[record.source] = None

    def reached_end(self, source: int, end_offset: int) -> None:
        """The fetcher read ``source``'s partition to its end, ``end_offset``.

        Records fetched before the end may still be buffered: the end counts once they are
        released. A record fetched after it (:meth:`add`) means the end moved on.
        """
        self._end_offset[source] = end_offset

    def confirm_end(self, source: int, asked_at_ms: int) -> None:
        """The broker said ``source`` was still at the end read to, when asked at ``asked_at_ms``."""
        if not self._heaps[source] and self._end_offset[source] is not None:
            self._caught_up_at[source] = asked_at_ms

    def end_offset(self, source: int) -> int | None:
        """The end offset ``source`` was last read to, while nothing was fetched after it."""
        return self._end_offset[source]

    def release(self, limit: int | None = None) -> list[InputRecord]:
        """The records that can be decided now, in order (at most ``limit``)."""
        released: list[InputRecord] = []
        while limit is None or len(released) < limit:
            candidates = [h[0] for h in self._heaps if h]
            if not candidates:
                return released
            _, record = min(candidates)
            if self._waits_on(record) is not None:
                return released
            heapq.heappop(self._heaps[record.source])
            released.append(record)
        return released

    def blocked_on(self) -> int | None:
        """The source whose end must be confirmed before the next record can be released."""
        candidates = [h[0] for h in self._heaps if h]
        if not candidates:
            return None
        _, record = min(candidates)
        return self._waits_on(record)

    def _waits_on(self, record: InputRecord) -> int | None:
        """The first other source that might still deliver a record sorting before ``record``.

        A source with a buffered record cannot: its first one sorts after ``record`` (the
        smallest). An empty source can, unless it was confirmed at its end at a time at or
        after the record's append time plus the clock margin.
        """
        for other, heap in enumerate(self._heaps):
            if other == record.source or heap:
                continue
            seen = self._caught_up_at[other]
            if seen is None or seen < record.timestamp_ms + self.clock_margin_ms:
                return other
        return None

    def watermark_ms(self) -> int | None:
        """Time up to which every input is known (every topic caught up), else None."""
        if any(self._heaps) or None in self._caught_up_at:
            return None
        return min(t for t in self._caught_up_at if t is not None) - self.clock_margin_ms

    def pending(self, source: int | None = None) -> int:
        """Records buffered but not released (of one source, or of all)."""
        heaps = self._heaps if source is None else (self._heaps[source],)
        return sum(len(h) for h in heaps)

    def first_pending_offset(self, source: int) -> int | None:
        """Lowest buffered offset of ``source`` (where a commit must resume), if any."""
        heap = self._heaps[source]
        return min(r.offset for _, r in heap) if heap else None
