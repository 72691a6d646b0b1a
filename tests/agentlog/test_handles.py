"""Agent handles against a running gate: signals reach the right handles, results, cascades, restarts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

import pytest

from agentlog import events as ev
from agentlog.aio import AsyncAgentlogClient
from agentlog.client import AgentlogClient
from agentlog.errors import AgentlogError
from agentlog.handles import AgentHandle, OutcomeStatus, Signal, SpawnRefused
from agentlog.settings import Settings
from tests.processors.gate_harness import Worker
from tests.support import agentlog_env

_T = ev.TerminationReason


def _client(settings: Settings, tenant: str = "acme", **options: object) -> AgentlogClient:
    return AgentlogClient(tenant, settings, timeout=60, **options)  # type: ignore[arg-type]


@pytest.mark.timeout(240)
def test_signals_reach_the_agents_they_name_and_no_others(settings: Settings, gate: Worker) -> None:
    with _client(settings) as acme, _client(settings, "globex") as globex:
        root = acme.start_root("orchestrator", 100_000, 10)
        child = root.spawn("researcher", "find", 20_000, 2)
        grandchild = child.spawn("researcher", "deeper", 5_000)
        sibling = root.spawn("coder", "build", 10_000)
        other = globex.start_root("orchestrator", 100_000, 10)
        other_child = other.spawn("researcher", "find", 20_000)
        heard: list[Signal] = []
        grandchild.on_signal(heard.append)

        child.terminate("no longer needed", requested_by=root.agent_id)
        for handle in (child, grandchild):
            outcome = handle.result(60)
            assert outcome.status is OutcomeStatus.terminated
        assert child.result(0).termination is _T.REQUESTED
        assert grandchild.result(0).termination is _T.ANCESTOR_ENDED
        assert grandchild.result(0).ended_by == child.agent_id
        assert [type(s.fact) for s in heard] == [ev.AgentTerminated] and heard[0].final
        assert [type(s.fact) for s in child.signals(timeout=0)] == [ev.AgentTerminated]

        sibling.complete("built", tokens_used=1_000)
        assert sibling.result(60).status is OutcomeStatus.completed
        for handle in (root, other, other_child):  # nothing reached them
            assert not handle.cancelled
            assert list(handle.signals(timeout=0.5)) == []


@pytest.mark.timeout(240)
def test_result_tells_each_way_an_agent_ends(settings: Settings, gate: Worker) -> None:
    with _client(settings) as client:
        root = client.start_root("orchestrator", 400_000, 20)
        done = root.spawn("researcher", "find", 20_000)
        done.started()
        done.complete("three sources", tokens_used=1_500, quality_score=0.75)
        completed = done.result(60)
        assert (completed.status, completed.result_summary, completed.quality_score) == (
            OutcomeStatus.completed,
            "three sources",
            0.75,
        )
        assert completed.tokens_used == 1_500 and isinstance(completed.fact, ev.AgentEnded)

        broken = root.spawn("researcher", "find", 20_000)
        broken.fail("rate limited", retryable=True, tokens_used=10)
        failed = broken.result(60)
        assert (failed.status, failed.error, failed.retryable) == (OutcomeStatus.failed, "rate limited", True)

        slow = root.spawn("researcher", "find", 20_000, max_runtime_ms=1_000)
        timed_out = slow.result(60)
        assert timed_out.status is OutcomeStatus.timed_out and isinstance(timed_out.fact, ev.AgentTimedOut)

        spender = root.spawn("researcher", "find", 5_000)
        spender.report_usage(6_000)
        exhausted = next(spender.signals(timeout=60))
        assert isinstance(exhausted.fact, ev.BudgetExhausted) and not exhausted.final and not spender.cancelled
        assert spender.tokens_charged == 6_000
        topped = spender.top_up(2_000, "more sources", requested_by=root.agent_id)
        assert isinstance(topped, ev.BudgetToppedUp), topped
        assert isinstance(next(spender.signals(timeout=60)).fact, ev.BudgetToppedUp)
        spender.complete("done after a top-up", tokens_used=6_000)
        assert spender.result(60).status is OutcomeStatus.completed

        with pytest.raises(SpawnRefused, match="Cannot spawn: config 'crypto-miner' is not in policy") as refused:
            root.spawn("crypto-miner", "mine", 1_000)
        assert refused.value.denial.reason is ev.DenialReason.CONFIG_NOT_WHITELISTED


@pytest.mark.timeout(240)
def test_a_cascade_reaches_a_descendant_run_by_another_process(settings: Settings, gate: Worker) -> None:
    with _client(settings) as client:
        root = client.start_root("orchestrator", 100_000, 10)
        child = root.spawn("researcher", "find", 20_000, 1)
        script = textwrap.dedent(
            f"""
            from agentlog.client import AgentlogClient
            with AgentlogClient("acme", timeout=30) as runtime:
                handle = runtime.attach({root.root_id!r}, {child.agent_id!r}, since={child.next_offset})
                print("attached", flush=True)
                outcome = handle.result(120)
                print(outcome.status, outcome.termination.name, outcome.ended_by, flush=True)
            """
        )
        runtime = subprocess.Popen(
            [sys.executable, "-c", script], env=agentlog_env(settings), stdout=subprocess.PIPE, text=True
        )
        assert runtime.stdout is not None
        assert runtime.stdout.readline().strip() == "attached"
        root.terminate("mission over")
        out, _ = runtime.communicate(timeout=150)
        assert out.split() == ["terminated", "ANCESTOR_ENDED", root.agent_id], out


@pytest.mark.timeout(240)
def test_a_restarted_client_hears_what_its_agents_missed(settings: Settings, gate: Worker) -> None:
    with _client(settings, client_id="runtime-1") as first:
        root = first.start_root("orchestrator", 100_000, 10)
        child = root.spawn("researcher", "find", 20_000)
        done = root.spawn("researcher", "other", 20_000)
        done.complete("finished before the restart")
        assert done.result(60).status is OutcomeStatus.completed
        done.release()  # the runtime acted on its end: no need to hear it again
    with _client(settings) as operator:  # while runtime-1 is down
        operator.top_up(root.root_id, child.agent_id, 1_000, requested_by=root.agent_id)
        operator.terminate(root.root_id, child.agent_id, requested_by=root.agent_id, reason="while you were away")
    with _client(settings, client_id="runtime-1") as again:
        reattached = again.attach(root.root_id, child.agent_id)
        root_again = again.attach(root.root_id, root.agent_id)
        assert reattached.result(60).status is OutcomeStatus.terminated
        kinds = [type(s.fact) for s in reattached.signals(timeout=0)]
        assert kinds == [ev.BudgetToppedUp, ev.AgentTerminated], kinds
        assert not root_again.cancelled


@pytest.mark.timeout(240)
def test_one_client_serves_many_agents_with_one_consumer(settings: Settings, gate: Worker) -> None:
    with _client(settings) as client:
        roots = [client.start_root("orchestrator", 100_000, 10) for _ in range(5)]
        children: list[AgentHandle] = [r.spawn("researcher", "find", 1_000) for r in roots for _ in range(4)]
        ended = threading.Event()
        over: list[str] = []

        def count(signal: Signal) -> None:
            over.append(signal.fact.meta.root_id)
            if len(over) == len(children):
                ended.set()

        for child in children:
            child.on_signal(count)
        for root in roots:
            root.terminate("all done")
        assert ended.wait(120), len(over)
        assert sorted(over) == sorted(c.root_id for c in children)
        threads = [t.name for t in threading.enumerate() if t.name == "agentlog-facts"]
        assert threads == ["agentlog-facts"]


@pytest.mark.timeout(240)
def test_the_async_client_spawns_hears_and_collects_results(settings: Settings, gate: Worker) -> None:
    async def mission() -> tuple[list[str], OutcomeStatus, OutcomeStatus]:
        async with AsyncAgentlogClient("acme", settings, timeout=60) as client:
            root = await client.start_root("orchestrator", 100_000, 10)
            worker, doomed = await asyncio.gather(
                root.spawn("researcher", "find", 10_000), root.spawn("coder", "build", 10_000, 1)
            )
            grandchild = await doomed.spawn("reviewer", "review", 1_000)
            with pytest.raises(SpawnRefused):
                await root.spawn("crypto-miner", "mine", 1_000)
            await worker.complete("found it", tokens_used=100)
            await doomed.terminate("not needed", requested_by=root.agent_id)
            heard = [type(signal.fact).__name__ async for signal in grandchild.signals(timeout=60)]
            finished, ended = await asyncio.gather(worker.result(60), doomed.result(60))
            assert not root.cancelled and grandchild.cancelled
            return heard, finished.status, ended.status

    heard, finished, ended = asyncio.run(mission())
    assert heard == ["AgentTerminated"]
    assert (finished, ended) == (OutcomeStatus.completed, OutcomeStatus.terminated)


@pytest.mark.timeout(240)
def test_a_callback_that_calls_back_into_the_client_stalls_nothing(settings: Settings, gate: Worker) -> None:
    with _client(settings) as client:
        root = client.start_root("orchestrator", 100_000, 10)
        spender = root.spawn("researcher", "find", 1_000)
        other = root.spawn("researcher", "other", 1_000)
        refused: list[str] = []
        late: list[Signal] = []

        def on_signal(signal: Signal) -> None:
            spender.on_signal(late.append)  # the handle's lock is not held while callbacks run
            try:
                spender.top_up(1_000, requested_by=root.agent_id)  # waits for a decision: not on this thread
            except AgentlogError as e:
                refused.append(str(e))

        spender.on_signal(on_signal)
        spender.report_usage(2_000)
        assert isinstance(next(spender.signals(timeout=60)).fact, ev.BudgetExhausted)
        other.complete("still heard", tokens_used=10)
        assert other.result(60).status is OutcomeStatus.completed  # the follower went on
        assert refused and "a signal callback cannot wait for a decision" in refused[0]
