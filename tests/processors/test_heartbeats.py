"""Heartbeats in the gate's core and its watch: promises, silence, the timeout and what it returns."""

from __future__ import annotations

from datetime import timedelta

from agentlog import events as ev
from agentlog.processors.clock import to_micros
from agentlog.processors.heartbeats import HeartbeatLedger
from agentlog.processors.testing import GateScenario, one, small_policy
from agentlog.processors.tree_state import PartitionState, Status, TreeState

_CAUSE = ev.TimeoutCause


def _scenario(**limits: object) -> GateScenario:
    return GateScenario(small_policy(heartbeat_interval_ms=1_000, heartbeat_misses=3, **limits))


def _tree(gate: GateScenario) -> tuple[str, str, str]:
    """A root, a worker under it and a helper under the worker; the worker promised heartbeats."""
    gate.register_root("root", tokens=100_000, spawns=10)
    worker = gate.spawned("root", "worker", tokens=10_000, spawns=2)
    helper = gate.spawned(worker, "helper", tokens=1_000)
    return "root", worker, helper


def test_a_start_that_promises_heartbeats_is_answered_with_the_interval() -> None:
    gate = _scenario()
    _, worker, helper = _tree(gate)
    running = one(gate.start(worker, heartbeat=True), ev.AgentRunning)
    assert (running.heartbeat_interval_ms, running.heartbeat_timeout_ms) == (1_000, 3_000)
    assert "send a heartbeat every 1000 ms" in running.message
    assert gate.state.trees["root"].agents[worker].heartbeat_ms == 3_000  # the timeout, fixed at the start
    plain = one(gate.start(helper), ev.AgentRunning)  # no promise: only its deadline ends it
    assert plain.heartbeat_interval_ms is None and gate.state.trees["root"].agents[helper].heartbeat_ms == 0


def test_a_policy_without_heartbeats_takes_no_promise() -> None:
    gate = _scenario()
    gate.policy = small_policy(heartbeat_interval_ms=0)
    _, worker, _ = _tree(gate)
    assert one(gate.start(worker, heartbeat=True), ev.AgentRunning).heartbeat_interval_ms is None


def test_a_silent_agent_times_out_with_its_subtree_and_its_tokens_return() -> None:
    gate = _scenario()
    root, worker, helper = _tree(gate)
    gate.start(worker, heartbeat=True)
    gate.consume(worker, 2_500)
    last = to_micros(gate.now)
    outputs = gate.tick(timedelta(seconds=5), silent={(root, worker): last, (root, helper): None})
    assert [type(e) for e in outputs] == [ev.AgentTerminated, ev.AgentTimedOut]
    terminated, timed_out = outputs
    assert isinstance(terminated, ev.AgentTerminated) and isinstance(timed_out, ev.AgentTimedOut)
    assert (terminated.agent_id, terminated.reason) == (helper, ev.TerminationReason.ANCESTOR_ENDED)
    assert (timed_out.agent_id, timed_out.cause) == (worker, _CAUSE.HEARTBEAT_MISSED)
    assert to_micros(timed_out.last_heartbeat_at) == last  # type: ignore[arg-type]
    assert to_micros(timed_out.deadline) == last + 3_000_000
    assert timed_out.returned_tokens == 10_000 - 2_500 - 0  # the helper's grant came back to the worker first
    assert "no heartbeat for 3000 ms" in timed_out.message
    agents = gate.state.trees[root].agents
    assert agents[worker].status is Status.TIMED_OUT and agents[root].active
    assert agents[root].tokens_reserved == 0 and agents[root].tokens_spent == 2_500


def test_only_agents_that_promised_heartbeats_can_be_silent() -> None:
    gate = _scenario()
    root, worker, helper = _tree(gate)
    gate.start(helper)
    assert gate.tick(timedelta(seconds=5), silent={(root, worker): None, (root, helper): None}) == []
    assert gate.tick(silent={("no-such-tree", "x"): None}) == []


def test_a_silent_agent_past_its_deadline_times_out_for_its_deadline() -> None:
    gate = _scenario()
    gate.register_root("root", tokens=100_000, spawns=10)
    worker = gate.spawned("root", "worker", tokens=1_000, max_runtime_ms=2_000)
    gate.start(worker, heartbeat=True)
    (timed_out,) = gate.tick(timedelta(seconds=3), silent={("root", worker): None})
    assert isinstance(timed_out, ev.AgentTimedOut) and timed_out.cause is _CAUSE.DEADLINE
    assert timed_out.last_heartbeat_at is None


def test_a_partial_result_rides_on_the_charge() -> None:
    gate = _scenario()
    _, worker, _ = _tree(gate)
    meta = gate.meta("root")
    report = ev.TokensConsumed(meta=meta, agent_id=worker, tokens=0, partial_result="two of three sources")
    charged = one(gate.send(report), ev.TokensCharged)
    assert (charged.tokens, charged.partial_result) == (0, "two of three sources")
    empty = ev.TokensConsumed(meta=gate.meta("root"), agent_id=worker, tokens=0)
    rejected = one(gate.send(empty), ev.LifecycleRejected)
    assert "or 0 with a partial result" in rejected.message


def test_the_promise_survives_a_snapshot_and_old_rows_read_as_none() -> None:
    gate = _scenario()
    _, worker, _ = _tree(gate)
    gate.start(worker, heartbeat=True)
    restored = PartitionState.from_bytes(gate.state.to_bytes())
    assert restored.trees["root"].agents[worker].heartbeat_ms == 3_000
    data = gate.state.trees["root"].to_dict()
    data["agents"] = [[*row[:-2], row[-1]] for row in data["agents"]]  # rows as written before heartbeats
    assert TreeState.from_dict(data).agents[worker].heartbeat_ms == 0


def test_the_ledger_judges_silence_only_as_far_as_beats_are_read() -> None:
    gate = _scenario()
    root, worker, helper = _tree(gate)
    gate.start(worker, heartbeat=True)
    ledger = HeartbeatLedger.taken_over(gate.state, now_ms=10_000)
    assert list(ledger.agents) == [(root, worker)]  # the helper promised nothing
    policy = gate.policy
    assert ledger.silent(gate.state, 20_000, policy) == {}  # nothing read past the take-over yet
    ledger.heard_to_ms = 12_000
    assert ledger.silent(gate.state, 20_000, policy) == {}  # 2 s of reading: within the 3 s timeout
    ledger.heard_to_ms = 14_000
    assert ledger.silent(gate.state, 20_000, policy) == {(root, worker): None}
    assert ledger.beat(root, worker, 13_500) and not ledger.beat(root, helper, 13_500)
    assert ledger.silent(gate.state, 20_000, policy) == {}
    ledger.heard_to_ms = 17_000
    assert ledger.silent(gate.state, 16_400, policy) == {}  # judged at the tick's time when that is earlier
    assert ledger.silent(gate.state, 17_000, policy) == {(root, worker): 13_500_000}
    gate.complete(worker)
    assert ledger.silent(gate.state, 30_000, policy) == {} and ledger.agents == {}  # ended: no longer watched


def test_after_a_gap_in_reading_every_agent_gets_a_fresh_timeout() -> None:
    gate = _scenario()
    root, worker, _ = _tree(gate)
    gate.start(worker, heartbeat=True)
    ledger = HeartbeatLedger.taken_over(gate.state, now_ms=10_000)
    ledger.beat(root, worker, 10_500)
    ledger.confirmed(11_000)
    assert ledger.silent(gate.state, 30_000, gate.policy) == {}  # read only up to 10.5 s
    ledger.confirmed(30_000)  # 19 s without a confirmed end: the broker was away, beats may not have got through
    assert ledger.silent(gate.state, 30_000, gate.policy) == {}
    ledger.confirmed(33_600)
    assert ledger.silent(gate.state, 33_600, gate.policy) == {(root, worker): 10_500_000}  # last beat still named
