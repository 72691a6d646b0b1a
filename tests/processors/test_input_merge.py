"""The deterministic order of co-partitioned input topics: the spawn gate's two, and any number."""

from __future__ import annotations

import random

import pytest

from agentlog.processors.input_merge import (
    LIFECYCLE,
    REQUESTS,
    DecisionPoint,
    InputRecord,
    MergeOrder,
    PartitionMerge,
)


def _record(source: int, offset: int, ts: int) -> InputRecord:
    return InputRecord("t", 0, offset, ts, None, None, source=source)


def test_a_record_waits_until_the_other_topic_is_confirmed_at_its_end() -> None:
    """With nothing buffered from the other topic, a record is held until its end is confirmed after it."""
    merge = PartitionMerge(clock_margin_ms=5)
    merge.add(_record(REQUESTS, 0, 1_000))
    assert merge.release() == [] and merge.blocked_on() == LIFECYCLE
    merge.reached_end(LIFECYCLE, 7)
    merge.confirm_end(LIFECYCLE, 1_003)  # asked before the record's time + margin: not enough
    assert merge.release() == []
    merge.confirm_end(LIFECYCLE, 1_005)
    assert [r.offset for r in merge.release()] == [0]
    assert merge.blocked_on() is None and merge.pending() == 0


def test_order_is_append_time_then_lifecycle_first_then_offset() -> None:
    """Records of both topics come out by time; within one millisecond lifecycle facts go first."""
    merge = PartitionMerge()
    for record in [_record(REQUESTS, 0, 10), _record(REQUESTS, 1, 20), _record(REQUESTS, 2, 30)]:
        merge.add(record)
    for record in [_record(LIFECYCLE, 0, 20), _record(LIFECYCLE, 1, 25), _record(LIFECYCLE, 2, 40)]:
        merge.add(record)
    released = merge.release()
    # (40, lifecycle) stays: nothing from requests sorts after it yet.
    assert [(r.timestamp_ms, r.source) for r in released] == [
        (10, REQUESTS), (20, LIFECYCLE), (20, REQUESTS), (25, LIFECYCLE), (30, REQUESTS)
    ]  # fmt: skip
    assert merge.blocked_on() == REQUESTS and merge.first_pending_offset(LIFECYCLE) == 2


def test_a_record_fetched_after_the_end_moves_the_end_on() -> None:
    """An end confirmed earlier no longer counts once a newer record of that topic arrived."""
    merge = PartitionMerge(clock_margin_ms=0)
    merge.reached_end(LIFECYCLE, 3)
    merge.confirm_end(LIFECYCLE, 100)
    merge.add(_record(LIFECYCLE, 3, 150))
    merge.add(_record(REQUESTS, 0, 160))
    assert [r.source for r in merge.release()] == [LIFECYCLE]
    assert merge.end_offset(LIFECYCLE) is None and merge.blocked_on() == LIFECYCLE


def test_release_order_does_not_depend_on_fetch_interleaving() -> None:
    """However fetches interleave the two topics, the released sequence is the same."""
    requests = [_record(REQUESTS, i, t) for i, t in enumerate([1, 3, 3, 8, 9, 15])]
    lifecycle = [_record(LIFECYCLE, i, t) for i, t in enumerate([2, 3, 7, 9, 20])]
    expected = sorted(requests + lifecycle, key=InputRecord.sort_key)
    for seed in range(50):
        rng = random.Random(seed)
        merge = PartitionMerge(clock_margin_ms=0)
        queues, out = [list(requests), list(lifecycle)], []
        while any(queues):
            source = rng.choice([i for i, q in enumerate(queues) if q])
            for _ in range(rng.randint(1, 3)):
                if queues[source]:
                    merge.add(queues[source].pop(0))
            out += merge.release()
        for source in (REQUESTS, LIFECYCLE):
            merge.reached_end(source, 99)
            merge.confirm_end(source, 1_000)
        out += merge.release()
        assert out == expected


def test_watermark_needs_both_topics_confirmed() -> None:
    """Inputs are complete up to the older of the two confirmations (minus the margin)."""
    merge = PartitionMerge(clock_margin_ms=5)
    assert merge.watermark_ms() is None
    merge.reached_end(REQUESTS, 0)
    merge.confirm_end(REQUESTS, 500)
    assert merge.watermark_ms() is None
    merge.reached_end(LIFECYCLE, 0)
    merge.confirm_end(LIFECYCLE, 400)
    assert merge.watermark_ms() == 395


def test_three_inputs_merge_in_one_order_whatever_the_fetch_interleaving() -> None:
    """With three sources, a record waits for every empty source's confirmed end; the order is time, rank, offset."""
    order = MergeOrder(ranks=(2, 0, 1))
    rng = random.Random(3)
    records = [  # append times never go down within one partition of one topic
        InputRecord(f"t{source}", 0, offset, ts, None, None, source=source)
        for source in range(3)
        for offset, ts in enumerate(sorted(rng.randint(0, 50) for _ in range(40)))
    ]
    by_source = [sorted((r for r in records if r.source == s), key=lambda r: r.offset) for s in range(3)]
    expected = sorted(records, key=order.key)
    for seed in range(20):
        shuffle = random.Random(seed)
        merge = PartitionMerge(clock_margin_ms=0, order=order)
        cursors = [0, 0, 0]
        released: list[InputRecord] = []
        while any(c < len(by_source[s]) for s, c in enumerate(cursors)):
            source = shuffle.choice([s for s in range(3) if cursors[s] < len(by_source[s])])
            merge.add(by_source[source][cursors[source]])
            cursors[source] += 1
            released += merge.release()
        assert len(released) < len(records)  # the last records wait for the other sources' ends
        for source in range(3):
            merge.reached_end(source, 40)
            blocked = merge.blocked_on()
            if blocked is not None:
                merge.confirm_end(blocked, 10_000)
            released += merge.release()
        for source in range(3):
            merge.confirm_end(source, 10_000)
        released += merge.release()
        assert released == expected
        for source in range(3):  # an end counts once nothing of that source is buffered
            merge.confirm_end(source, 10_000)
        assert merge.watermark_ms() == 10_000


def test_a_record_visible_only_after_later_ones_were_released_is_late() -> None:
    """A record of a topic confirmed at its end, appended before what was released then, is late and goes next."""
    merge = PartitionMerge(clock_margin_ms=5)
    merge.add(_record(REQUESTS, 0, 100))
    merge.reached_end(LIFECYCLE, 0)
    merge.confirm_end(LIFECYCLE, 105)
    assert [r.offset for r in merge.release()] == [0]
    assert merge.add(_record(LIFECYCLE, 0, 90)) == 10  # appended at 90, visible only after 105
    merge.add(_record(REQUESTS, 1, 130))
    assert [(r.source, r.offset) for r in merge.release()] == [(LIFECYCLE, 0)]  # released next; the request waits


def test_a_clock_step_back_does_not_reorder_a_topic() -> None:
    """Append times that go back within a topic are clamped: its records stay in offset order."""
    merge = PartitionMerge(clock_margin_ms=0)
    for offset, ts in enumerate([100, 50, 60, 120]):
        assert merge.add(_record(REQUESTS, offset, ts)) is None
    merge.add(_record(LIFECYCLE, 0, 110))
    released = merge.release()
    assert [(r.source, r.offset) for r in released] == [(REQUESTS, 0), (REQUESTS, 1), (REQUESTS, 2), (LIFECYCLE, 0)]
    assert merge.first_pending_offset(REQUESTS) == 3


def test_decision_points_say_what_was_decided_before_each_input() -> None:
    """Per source, the offset below which everything was decided: from the first fetch, the end, or a decision."""
    merge = PartitionMerge(clock_margin_ms=0)
    merge.add(_record(REQUESTS, 40, 100))  # fetching resumed at 40: everything below was decided
    merge.reached_end(LIFECYCLE, 7)  # nothing fetched from lifecycle: everything below its end was
    merge.confirm_end(LIFECYCLE, 200)
    [request] = merge.release()
    assert merge.decision_point(request) == DecisionPoint(REQUESTS, (40, 7))
    merge.decided(request)
    assert merge.decision_point(None) == DecisionPoint(None, (41, 7))


@pytest.mark.parametrize(
    ("point", "encoded"),
    [(DecisionPoint(1, (40, 7)), b"1|40,7"), (DecisionPoint(None, (0, 3, 9)), b"|0,3,9")],
)
def test_a_decision_point_round_trips_through_its_header(point: DecisionPoint, encoded: bytes) -> None:
    assert point.encode() == encoded
    assert DecisionPoint.decode(encoded) == point
    assert DecisionPoint.of([("other", b"x"), ("agentlog-decided", encoded)]) == point


@pytest.mark.parametrize("value", [b"", b"1", b"1|", b"x|1,2", b"2|1,2", b"|1,-2", b"1|a"])
def test_a_header_that_is_not_a_decision_point_is_refused(value: bytes) -> None:
    with pytest.raises(ValueError):
        DecisionPoint.decode(value)
    assert DecisionPoint.of([("agentlog-decided", value)]) is None
