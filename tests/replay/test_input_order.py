"""RecordedOrder: a processor's inputs handed out as its decision points say, and by append time between them."""

from __future__ import annotations

from agentlog.processors import LIFECYCLE, REQUESTS, DecisionPoint, InputRecord
from agentlog.replay.input_order import RecordedOrder


def _streams(requests: list[int], lifecycle: list[int]) -> list[list[InputRecord]]:
    return [
        [InputRecord("r", 0, i, ts, None, None, source=REQUESTS) for i, ts in enumerate(requests)],
        [InputRecord("l", 0, i, ts, None, None, source=LIFECYCLE) for i, ts in enumerate(lifecycle)],
    ]


def _order(requests: list[int], lifecycle: list[int]) -> RecordedOrder:
    return RecordedOrder([iter(s) for s in _streams(requests, lifecycle)])


def _names(records: list[InputRecord]) -> list[str]:
    return [f"{'rl'[r.source]}{r.offset}" for r in records]


def test_between_points_the_order_is_append_time_lifecycle_first() -> None:
    order = _order([10, 20, 30], [20, 25])
    assert _names(list(order.until(25))) == ["r0", "l0", "r1", "l1"]
    assert _names(list(order.until(10**9))) == ["r2"]


def test_a_point_hands_out_what_was_decided_before_it_then_its_cause() -> None:
    """A completion appended at 20 that the gate decided only after the request at 30: the points say so."""
    order = _order([10, 30], [20])
    assert _names(list(order.below((1, 0)))) == ["r0"]  # the request at 10, decided with lifecycle not yet read
    # The request at 30 (its point: nothing of lifecycle decided yet), before the completion at 20.
    assert _names(list(order.through(DecisionPoint(REQUESTS, (1, 0))))) == ["r1"]
    assert _names(list(order.until(10**9))) == ["l0"]


def test_a_clock_step_back_keeps_each_topic_in_offset_order() -> None:
    """Requests appended at 100, then 50 (the broker clock stepped back): 50 counts as 100, after lifecycle's 80."""
    order = _order([100, 50], [80])
    assert _names(list(order.until(10**9))) == ["l0", "r0", "r1"]
