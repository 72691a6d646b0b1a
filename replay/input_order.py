"""A processor's inputs in the order it decided them, following the decision points it recorded.

A processor decides its inputs in append-time order (:class:`~agentlog.processors.input_merge.MergeOrder`),
except for an input that became visible late, after records appended later had been
decided. Each output names its :class:`~agentlog.processors.input_merge.DecisionPoint`: the
input it answers and, per input topic, the offset below which everything was decided
before it. :class:`RecordedOrder` hands out the inputs of one partition accordingly: at
a point, every input below it in append-time order, then the cause. Between two points
the order is the append-time order again. Logs written before decision points existed
are walked by append time alone (:meth:`RecordedOrder.until`).

It reads one stream per input topic (offset order) and holds one record of each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from agentlog.processors import GATE_ORDER, DecisionPoint, InputRecord, MergeOrder, clamped


class RecordedOrder:
    """The inputs of one partition, handed out up to recorded decision points or up to an append time."""

    def __init__(self, streams: list[Iterator[InputRecord]], order: MergeOrder = GATE_ORDER) -> None:
        self._streams = [_clamped(s) for s in streams]
        self._heads: list[tuple[int, InputRecord] | None] = [next(s, None) for s in self._streams]
        self._order = order

    def below(self, before: tuple[int, ...]) -> Iterator[InputRecord]:
        """Every input not handed out yet whose offset is below ``before`` (per source), in the processor's order."""
        if len(before) != len(self._streams):
            raise ValueError(f"a decision point names {len(before)} inputs; this processor reads {len(self._streams)}")
        while (record := self._take(lambda _, r: r.offset < before[r.source])) is not None:
            yield record

    def through(self, point: DecisionPoint) -> Iterator[InputRecord]:
        """The inputs decided before ``point`` (:meth:`below`), then its cause (none for a timer tick)."""
        yield from self.below(point.before)
        cause = point.cause
        if cause is not None and (record := self._take(lambda _, r: r.source == cause)) is not None:
            yield record

    def until(self, limit_ms: int) -> Iterator[InputRecord]:
        """Inputs not handed out yet appended at or before ``limit_ms`` (clamped time), in the processor's order."""
        while (record := self._take(lambda at_ms, _: at_ms <= limit_ms)) is not None:
            yield record

    def _take(self, wanted: Callable[[int, InputRecord], bool]) -> InputRecord | None:
        """The first head in the processor's order that ``wanted`` (its clamped time, itself) accepts, moved past."""
        heads = [(self._order.key(r, at_ms), r) for at_ms, r in filter(None, self._heads) if wanted(at_ms, r)]
        if not heads:
            return None
        _, record = min(heads)
        self._heads[record.source] = next(self._streams[record.source], None)
        return record


def _clamped(stream: Iterator[InputRecord]) -> Iterator[tuple[int, InputRecord]]:
    """Each record with its time in the order (:func:`~agentlog.processors.clamped`)."""
    highest: int | None = None
    for record in stream:
        highest = clamped(highest, record)
        yield highest, record
