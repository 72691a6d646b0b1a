"""The spawn gate under SIGKILL, rebalances and a broker outage: one decision per request, no over-grant."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agentlog import events as ev
from agentlog.processors.policy import load_default_policy, to_event
from agentlog.processors.testing import wide_tree, wide_tree_policy
from agentlog.producer import Producer
from agentlog.settings import Settings
from agentlog.topic_admin import tree_partition_count

from .gate_harness import (
    Worker,
    Workload,
    answered_requests,
    committed_decisions,
    publish_policy,
    wait_for_answers,
)
from .gate_reference import gate_inputs, redecide

STACK = Path(__file__).resolve().parents[2] / "deploy" / "local" / "stack.sh"


def _feed(settings: Settings, workload: Workload, pause_s: float, flush_timeout_s: float = 30.0) -> threading.Thread:
    def run() -> None:
        with Producer(settings) as producer:
            for batch in workload.batches:
                for event in batch:
                    producer.send(event)
                producer.flush(flush_timeout_s)
                time.sleep(pause_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _assert_effectively_once(settings: Settings, workload: Workload) -> None:
    """Once the workers stopped: every request answered once, nothing over-granted, the pure core's decisions."""
    decisions = committed_decisions(settings)  # all of them: facts may have been decided after the last answer
    requests = workload.requests + workload.trees
    answers = answered_requests(decisions)
    assert len(answers) == requests, f"{requests - len(answers)} requests never answered"
    duplicated = {k: n for k, n in answers.items() if n != 1}
    assert not duplicated, f"{len(duplicated)} requests answered more than once"
    ids = [d.meta.event_id for ds in decisions.values() for d in ds]
    assert len(ids) == len(set(ids)), "a decision was committed twice"
    # No over-grant. The workload reports usage but never ends agents, so nothing returns
    # to a parent: what each parent granted its children fits in what it was granted itself,
    # and a tree holds at most root spawn budget + 1 agents.
    grants: dict[str, tuple[int, int]] = {}
    children: dict[str, list[ev.SpawnApproved]] = {}
    for d in (d for ds in decisions.values() for d in ds):
        if isinstance(d, ev.RootAdmitted):
            grants[d.agent_id] = (d.token_budget, d.spawn_budget)
        elif isinstance(d, ev.SpawnApproved):
            grants[d.child_agent_id] = (d.granted_token_budget, d.granted_spawn_budget)
            children.setdefault(d.parent_agent_id, []).append(d)
    for parent, approved in children.items():
        tokens, spawns = grants[parent]
        assert sum(c.granted_token_budget for c in approved) <= tokens, f"tokens over-granted under {parent}"
        assert sum(1 + c.granted_spawn_budget for c in approved) <= spawns, f"spawns over-granted under {parent}"
    roots = {d.agent_id: d for ds in decisions.values() for d in ds if isinstance(d, ev.RootAdmitted)}
    for root_id, root in roots.items():
        size = sum(
            1 for ds in decisions.values() for d in ds if isinstance(d, ev.SpawnApproved) and d.meta.root_id == root_id
        )
        assert size <= root.spawn_budget, f"tree {root_id} holds {size + 1} agents"
    # The same decisions, in the same order, as one uninterrupted run of the gate's core.
    reference = redecide(gate_inputs(settings), load_default_policy(), tree_partition_count(settings))
    _assert_same_decisions(decisions, reference)


def _assert_same_decisions(decisions: dict[int, list[ev.Event]], reference: dict[int, list[ev.Event]]) -> None:
    """Per partition, the committed decisions equal the reference's; a failure names the first that differs."""
    for partition in sorted(set(decisions) | set(reference)):
        got = [d.model_dump() for d in decisions.get(partition, [])]
        want = [d.model_dump() for d in reference.get(partition, [])]
        if got == want:
            continue
        at = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w), min(len(got), len(want)))
        committed, expected = (got[at] if at < len(got) else None), (want[at] if at < len(want) else None)
        raise AssertionError(
            f"partition {partition}: {len(got)} decisions committed, {len(want)} in the reference; first difference"
            f" at {at}:\n  committed: {committed}\n  reference: {expected}"
        )


def test_uninterrupted_run_matches_the_pure_core(settings: Settings) -> None:
    """Without faults, the worker commits exactly what the pure core decides over the same input."""
    publish_policy(settings)
    workload = Workload(trees=40, requests_per_tree=10)
    workload.build()
    worker = Worker(settings, "w1")
    worker.start()
    try:
        _feed(settings, workload, 0.05).join()
        decisions = wait_for_answers(settings, workload.requests + workload.trees, 120)
    finally:
        worker.stop()
    _assert_effectively_once(settings, workload)
    kinds = {type(d).__name__ for ds in decisions.values() for d in ds}
    assert {"RootAdmitted", "SpawnApproved", "SpawnDenied", "BudgetExhausted"} <= kinds


@pytest.mark.slow
def test_sigkill_at_random_moments(settings: Settings) -> None:
    """20+ SIGKILLs during 10,000 requests: each answered once, budgets held, result as uninterrupted."""
    publish_policy(settings)
    workload = Workload(trees=500, requests_per_tree=20)
    workload.build()
    assert workload.requests >= 10_000
    worker = Worker(settings, "w1")
    worker.start()
    rng = random.Random(11)
    kills = kills_while_feeding = 0
    try:
        feeder = _feed(settings, workload, 0.6)  # about 30 s of input, so the kills land mid-stream
        while kills < 20 or feeder.is_alive():
            time.sleep(rng.uniform(0.5, 2.0))
            kills_while_feeding += feeder.is_alive()
            worker.kill()
            kills += 1
            worker.start()
        wait_for_answers(settings, workload.requests + workload.trees, 300)
    finally:
        worker.stop()
    assert kills >= 20 and kills_while_feeding >= 15
    _assert_effectively_once(settings, workload)


@pytest.mark.slow
def test_two_workers_with_a_rebalance_and_kills(settings: Settings) -> None:
    """A second worker joining mid-stream and kills of either: still exactly one decision each."""
    publish_policy(settings)
    workload = Workload(trees=300, requests_per_tree=12, seed=8)
    workload.build()
    first, second = Worker(settings, "w1"), Worker(settings, "w2")
    first.start()
    rng = random.Random(5)
    try:
        feeder = _feed(settings, workload, 0.15)
        time.sleep(4)
        second.start()  # rebalance: partitions move to the new member
        for _ in range(6):
            time.sleep(rng.uniform(1.0, 3.0))
            victim = rng.choice([first, second])
            victim.kill()
            victim.start()
        feeder.join()
        wait_for_answers(settings, workload.requests + workload.trees, 300)
    finally:
        first.stop()
        second.stop()
    _assert_effectively_once(settings, workload)


def _local_broker(settings: Settings) -> bool:
    """Whether the tests run against the broker of ``deploy/local`` (which this test may stop and start)."""
    env = subprocess.run(["bash", str(STACK), "env"], capture_output=True, text=True, check=True).stdout
    return f"AGENTLOG_BOOTSTRAP_SERVERS={settings.bootstrap_servers}" in env


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_broker_outage_is_waited_out(settings: Settings) -> None:
    """The broker stopped for 30 s under load: every request decided exactly once, by the same worker process."""
    if not _local_broker(settings):
        pytest.skip("stops the broker: only against the local stack of deploy/local")
    publish_policy(settings)
    workload = Workload(trees=100, requests_per_tree=10, seed=9)
    workload.build()
    worker = Worker(settings, "w1")
    worker.start()
    try:
        feeder = _feed(settings, workload, 0.3, flush_timeout_s=300)
        time.sleep(6)
        subprocess.run(["bash", str(STACK), "kafka-stop"], check=True, timeout=120)
        time.sleep(30)
        subprocess.run(["bash", str(STACK), "kafka-start"], check=True, timeout=300)
        feeder.join(600)
        assert not feeder.is_alive()
        wait_for_answers(settings, workload.requests + workload.trees, 300)
        assert worker.alive() and worker.starts == 1, "the worker had to be restarted"
    finally:
        worker.stop()
    _assert_effectively_once(settings, workload)


RENEWED = "the coordinator aborted it; starting a new producer"
ABORTED = "aborting batch"


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_a_transaction_the_coordinator_timed_out_is_not_taken_for_fencing(settings: Settings, tmp_path: Path) -> None:
    """A worker stalled mid-transaction past the transaction timeout renews its producer and decides on.

    SIGSTOP for 25 s (more than the 10 s transaction timeout plus the broker's 10 s abort
    check) lets the coordinator abort the open transaction and bump the epoch; librdkafka
    then reports fencing, as if another worker had taken over. The worker must tell the two
    apart, go on in the same process, and decide every request exactly once. One
    transaction per input (``--batch-size 1``) keeps a transaction open almost all the time
    the worker is busy, so a stop lands inside one; a stop that lands between two
    transactions is tried again.

    Where the stop lands decides the path: librdkafka sometimes learns of the abort as an
    abortable, epoch-bumping message timeout instead of fencing, and the worker then aborts
    and rewinds without a new producer; both paths must keep the same process deciding.
    Marked ``chaos`` (not run by default: three minutes, and the path is not chosen by the
    test); ``pytest -m chaos`` runs it. It once showed a partition's decisions in another
    order than the pure core's (an input that became visible late); decisions now record
    their decision points and the reference follows them.
    """
    publish_policy(settings)
    workload = Workload(trees=150, requests_per_tree=10, seed=13)
    workload.build()
    log = tmp_path / "worker.log"
    worker = Worker(settings, "w1", args=("--batch-size", "1", "--log-level", "INFO"), log=log)
    worker.start()
    third = -(-len(workload.batches) // 3)
    bursts = [workload.batches[i : i + third] for i in range(0, len(workload.batches), third)]
    try:
        with Producer(settings) as producer:
            for burst in bursts:
                producer.publish_many([event for batch in burst for event in batch])
                if RENEWED in log.read_text() or ABORTED in log.read_text():
                    continue  # seen once: the rest is load
                time.sleep(1.0)  # the worker is busy with the burst, one transaction per input
                worker.pause(25)
                time.sleep(5)
        wait_for_answers(settings, workload.requests + workload.trees, 300)
        assert worker.alive() and worker.starts == 1, "the worker had to be restarted"
    finally:
        worker.stop()
    text = log.read_text()
    assert RENEWED in text or ABORTED in text, text[-2000:]
    assert "has taken over" not in text
    _assert_effectively_once(settings, workload)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_tree_of_20000_agents_survives_a_kill(settings: Settings) -> None:
    """One tree grown to 20,001 agents through the real gate, SIGKILLed midway: decided as by the pure core."""
    with Producer(settings) as producer:
        producer.publish(to_event(wide_tree_policy(), published_by="tests"))
    events = wide_tree()
    worker = Worker(settings, "big")
    worker.start()
    try:
        with Producer(settings) as producer:
            producer.publish_many(events)
        wait_for_answers(settings, len(events) // 2, 300)
        worker.kill()
        worker.start()
        decisions = wait_for_answers(settings, len(events), 600)
    finally:
        worker.stop()
    answers = answered_requests(decisions)
    assert len(answers) == len(events) and set(answers.values()) == {1}
    approved = [d for ds in decisions.values() for d in ds if isinstance(d, ev.SpawnApproved)]
    assert len(approved) == 20_000
    reference = redecide(gate_inputs(settings), wide_tree_policy(), tree_partition_count(settings))
    _assert_same_decisions(decisions, reference)
