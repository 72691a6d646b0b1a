"""The spawn gate's state: snapshots, restore-and-continue, quotas, determinism."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentlog import events as ev
from agentlog.processors.errors import SnapshotError
from agentlog.processors.testing import GateScenario, small_policy
from agentlog.processors.tree_state import PartitionState, TreeState, partition_quota


def _busy_scenario(gate: GateScenario) -> None:
    gate.register_root("r1", tokens=50_000, spawns=8)
    gate.register_root("r2", tenant="other", tokens=5_000, spawns=2)
    w = gate.spawned("r1", tokens=10_000, spawns=3, max_runtime_ms=30_000)
    gate.spawned(w, config="helper", tokens=1_000)
    gate.spawn("r1", config="hacker")
    gate.consume(w, 9_500)
    gate.top_up(w, 2_000)
    gate.spawned("r2", tokens=4_000)
    gate.complete("r2", tokens_used=10)


def _second_half(gate: GateScenario) -> list[list[ev.Event]]:
    outputs = [
        gate.spawn("r1", tokens=100),
        gate.consume("r1", 5),
        gate.tick(timedelta(minutes=1)),
        gate.spawn("r1", config="hacker"),
        gate.register_root("r2"),
    ]
    return outputs


def test_snapshot_round_trip_is_exact() -> None:
    """from_bytes(to_bytes()) snapshots to the same bytes, with the same counters."""
    gate = GateScenario(small_policy(), state=PartitionState(partition=2, partitions=6))
    _busy_scenario(gate)
    data = gate.state.to_bytes()
    restored = PartitionState.from_bytes(data)
    assert restored.to_bytes() == data
    assert (restored.partition, restored.partitions) == (2, 6)
    assert restored.active_total == gate.state.active_total
    assert restored.active_by_tenant == gate.state.active_by_tenant
    assert sorted(restored.deadlines) == sorted(
        e
        for e in gate.state.deadlines
        if (t := gate.state.live_tree(e[1])) is not None and (a := t.agents.get(e[2])) is not None and a.active
    )


def test_restored_state_decides_exactly_like_the_original() -> None:
    """Continuing after a snapshot and restore yields the same decisions as continuing without one."""
    straight = GateScenario(small_policy())
    _busy_scenario(straight)
    restored = GateScenario(small_policy())
    _busy_scenario(restored)
    restored.state = PartitionState.from_bytes(restored.state.to_bytes())
    first = [[o.model_dump() for o in out] for out in _second_half(straight)]
    second = [[o.model_dump() for o in out] for out in _second_half(restored)]
    assert first == second


def test_tree_snapshot_can_be_put_into_another_partition_state() -> None:
    """A tree's dict snapshot restores into a fresh state with the counters rebuilt."""
    gate = GateScenario(small_policy())
    _busy_scenario(gate)
    fresh = PartitionState()
    fresh.put_tree(TreeState.from_dict(gate.state.trees["r1"].to_dict()))
    assert fresh.trees["r1"].to_dict() == gate.state.trees["r1"].to_dict()
    assert fresh.active_total == sum(a.active for a in gate.state.trees["r1"].agents.values())
    fresh.drop_tree("r1")
    assert (fresh.active_total, fresh.active_by_tenant, fresh.trees) == (0, {}, {})


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"v": 99}', b'{"v": 1, "partition": 0}'])
def test_bad_snapshot_raises_snapshot_error(data: bytes) -> None:
    """Unreadable snapshots raise SnapshotError, not a bare ValueError."""
    with pytest.raises(SnapshotError):
        PartitionState.from_bytes(data)


@given(cap=st.integers(min_value=0, max_value=10**6), partitions=st.integers(min_value=1, max_value=64))
def test_partition_quotas_sum_to_the_cap(cap: int, partitions: int) -> None:
    """The per-partition quotas of a cap add up to exactly the cap and differ by at most one."""
    quotas = [partition_quota(cap, p, partitions) for p in range(partitions)]
    assert sum(quotas) == cap
    assert max(quotas) - min(quotas) <= 1


def test_same_inputs_give_identical_outputs() -> None:
    """Two runs of the same inputs on fresh states give equal decisions, ids included."""
    runs = []
    for _ in range(2):
        gate = GateScenario(small_policy())
        _busy_scenario(gate)
        _second_half(gate)
        runs.append([[o.model_dump() for o in outputs] for _, outputs in gate.log])
    assert runs[0] == runs[1]
