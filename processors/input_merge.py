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

The margin is a bound the broker does not promise: a record whose append time was set
just before an end was confirmed, but which became visible only after it (a broker
thread descheduled between the two, replication), arrives *late*, after records that
sort behind it were decided. :meth:`PartitionMerge.add` says so, and it is decided next.
So that such an order can still be replayed exactly, every output carries the
:class:`DecisionPoint` of its cause in the ``agentlog-decided`` header: which input it
answers and, per input topic, the offset below which everything had been decided
before. The order is then recorded, not inferred, wherever a record was late.

A broker clock that steps back must not reorder a topic: records of one topic stay in
offset order (each source is a queue), and a record's time in the order is its append
time clamped to the highest one seen before it on its topic (since the worker started
reading the partition; replay clamps from the log's start, the same unless the step
came just before a restart, where the decision points record what happened).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from confluent_kafka import Message

from agentlog.records import Headers, Record, header, int_header, message_fields

REQUESTS = 0
LIFECYCLE = 1
CLOCK_MARGIN_MS = 5
"""Default allowed difference between a worker's clock and the brokers' (the gate's ``--clock-margin-ms``)."""
DECIDED_HEADER = "agentlog-decided"
"""The header of every processor output that holds its :class:`DecisionPoint`."""
CORE_HEADER = "agentlog-core"
"""The header of every processor output naming the version of the core that decided it (absent: version 1)."""


def core_version(headers: Headers | None) -> int:
    """The core version ``headers`` name (1 when they name none: outputs written before versions were recorded)."""
    return int_header(headers, CORE_HEADER, 1)


@dataclass(frozen=True, slots=True)
class InputRecord(Record):
    """A record read from one of a processor's input topics, and which input (its index) that is."""

    source: int = REQUESTS
    """The index of its input topic in the processor's input order (the gate: REQUESTS or LIFECYCLE)."""

    @classmethod
    def read(cls, source: int, message: Message) -> InputRecord:
        """The record a consumed (error-free) confluent ``Message`` of input ``source`` holds."""
        return cls(*message_fields(message), source)

    @classmethod
    def of(cls, source: int, record: Record) -> InputRecord:
        """``record`` as read from input ``source``."""
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.timestamp_ms,
            record.key,
            record.value,
            record.headers,
            source,
        )

    def sort_key(self) -> tuple[int, int, int]:
        """The spawn gate's order (:data:`GATE_ORDER`): append time, lifecycle first, offset."""
        return GATE_ORDER.key(self)


@dataclass(frozen=True, slots=True)
class DecisionPoint:
    """Where in its inputs a processor stood when it decided one input or one timer tick.

    Encoded as ``<cause>|<offset>,<offset>,...``: the source index of the input decided
    (empty for a timer tick), then per source (in the processor's input order) the offset
    below which every record had been decided before it.
    """

    cause: int | None
    """The source of the input decided; None for a timer tick."""
    before: tuple[int, ...]
    """Per source, every record below this offset was decided earlier."""

    def encode(self) -> bytes:
        """The header value."""
        cause = "" if self.cause is None else str(self.cause)
        return f"{cause}|{','.join(map(str, self.before))}".encode()

    @classmethod
    def decode(cls, value: bytes | str) -> DecisionPoint:
        """Parse a header value; raises ValueError when it is not one."""
        text = value.decode() if isinstance(value, bytes) else value
        cause, sep, offsets = text.partition("|")
        if not sep or not offsets:
            raise ValueError(f"{DECIDED_HEADER} header {text!r} is not <cause>|<offset>,...")
        before = tuple(int(o) for o in offsets.split(","))
        point = cls(int(cause) if cause else None, before)
        if any(o < 0 for o in before) or (point.cause is not None and not 0 <= point.cause < len(before)):
            raise ValueError(f"{DECIDED_HEADER} header {text!r} names no input")
        return point

    @classmethod
    def of(cls, headers: Headers | None) -> DecisionPoint | None:
        """The point recorded in ``headers``; None when there is none or it does not parse (older records)."""
        value = header(headers, DECIDED_HEADER)
        if not value:
            return None
        try:
            return cls.decode(value)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class MergeOrder:
    """The decision order of a processor's inputs: append time, then ``ranks[source]``, then offset."""

    ranks: tuple[int, ...]
    """Per source (in the order of the processor's input topics), its rank among records of one millisecond."""

    def key(self, record: InputRecord, at_ms: int | None = None) -> tuple[int, int, int]:
        """(time, rank, offset) of ``record``; the time is its append time unless ``at_ms`` (clamped) is given."""
        return (record.timestamp_ms if at_ms is None else at_ms, self.ranks[record.source], record.offset)


def clamped(highest: int | None, record: InputRecord) -> int:
    """A record's time in the order: its append time, never below ``highest`` seen before it on its topic."""
    return record.timestamp_ms if highest is None else max(highest, record.timestamp_ms)


GATE_ORDER = MergeOrder(ranks=(1, 0))
"""The spawn gate's: requests and lifecycle reports, lifecycle first within a millisecond."""


@dataclass
class PartitionMerge:
    """Buffers the records of one partition of every input topic and releases them in order."""

    clock_margin_ms: int = CLOCK_MARGIN_MS
    order: MergeOrder = GATE_ORDER
    _queues: list[deque[tuple[tuple[int, int, int], InputRecord]]] = field(init=False)
    """Per source, the buffered records with their keys, in offset order (the order they are fetched in)."""
    _clock: list[int | None] = field(init=False)
    """Per source, the highest append time seen: a record's time in the order is never below it."""
    _caught_up_at: list[int | None] = field(init=False)
    _end_offset: list[int | None] = field(init=False)
    _undecided: list[int | None] = field(init=False)
    """Per source, the offset below which every record was decided (None until the first fetch says)."""
    _released: tuple[int, int, int] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        sources = len(self.order.ranks)
        self._queues = [deque() for _ in range(sources)]
        self._clock = [None] * sources
        self._caught_up_at = [None] * sources
        self._end_offset = [None] * sources
        self._undecided = [None] * sources

    def add(self, record: InputRecord) -> int | None:
        """Buffer a fetched record (it means its topic is not at its end any more).

        Returns None, or, for a record that sorts before one already released (it became
        visible later than the clock margin allows), by how many milliseconds of append
        time it is late. A late record is released next, out of the append-time order.
        """
        source = record.source
        at_ms = self._clock[source] = clamped(self._clock[source], record)
        key = self.order.key(record, at_ms)
        self._queues[source].append((key, record))
        self._caught_up_at[source] = None
        self._end_offset[source] = None
        if self._undecided[source] is None:
            self._undecided[source] = record.offset  # fetching starts where deciding stopped
        if self._released is not None and key < self._released:
            return self._released[0] - record.timestamp_ms
        return None

    def reached_end(self, source: int, end_offset: int) -> None:
        """The fetcher read ``source``'s partition to its end, ``end_offset``.

        Records fetched before the end may still be buffered: the end counts once they are
        released. A record fetched after it (:meth:`add`) means the end moved on.
        """
        self._end_offset[source] = end_offset
        if self._undecided[source] is None:
            self._undecided[source] = end_offset  # nothing fetched: everything before the end was decided

    def decision_point(self, cause: InputRecord | None) -> DecisionPoint:
        """Where deciding stands before ``cause`` (a released record, or None for a timer tick)."""
        return DecisionPoint(None if cause is None else cause.source, tuple(o or 0 for o in self._undecided))

    def decided(self, record: InputRecord) -> None:
        """``record`` (released earlier) has been decided."""
        self._undecided[record.source] = record.offset + 1

    def confirm_end(self, source: int, asked_at_ms: int) -> None:
        """The broker said ``source`` was still at the end read to, when asked at ``asked_at_ms``."""
        if not self._queues[source] and self._end_offset[source] is not None:
            self._caught_up_at[source] = asked_at_ms

    def end_offset(self, source: int) -> int | None:
        """The end offset ``source`` was last read to, while nothing was fetched after it."""
        return self._end_offset[source]

    def release(self, limit: int | None = None) -> list[InputRecord]:
        """The records that can be decided now, in order (at most ``limit``)."""
        released: list[InputRecord] = []
        while limit is None or len(released) < limit:
            candidates = [q[0] for q in self._queues if q]
            if not candidates:
                return released
            key, record = min(candidates)
            if self._waits_on(record.source, key[0]) is not None:
                return released
            self._queues[record.source].popleft()
            self._released = key if self._released is None else max(self._released, key)
            released.append(record)
        return released

    def blocked_on(self) -> int | None:
        """The source whose end must be confirmed before the next record can be released."""
        candidates = [q[0] for q in self._queues if q]
        if not candidates:
            return None
        key, record = min(candidates)
        return self._waits_on(record.source, key[0])

    def _waits_on(self, source: int, at_ms: int) -> int | None:
        """The first other source that might still deliver a record sorting before ``source``'s next, at ``at_ms``.

        A source with a buffered record cannot: its first one sorts after the next (the
        smallest). An empty source can, unless it was confirmed at its end at a time at or
        after the record's append time plus the clock margin.
        """
        for other, queue in enumerate(self._queues):
            if other == source or queue:
                continue
            seen = self._caught_up_at[other]
            if seen is None or seen < at_ms + self.clock_margin_ms:
                return other
        return None

    def watermark_ms(self) -> int | None:
        """Time up to which every input is known (every topic caught up), else None."""
        if any(self._queues) or None in self._caught_up_at:
            return None
        return min(t for t in self._caught_up_at if t is not None) - self.clock_margin_ms

    def pending(self, source: int | None = None) -> int:
        """Records buffered but not released (of one source, or of all)."""
        queues = self._queues if source is None else (self._queues[source],)
        return sum(len(q) for q in queues)

    def first_pending_offset(self, source: int) -> int | None:
        """Lowest buffered offset of ``source`` (where a commit must resume), if any."""
        queue = self._queues[source]
        return queue[0][1].offset if queue else None
