"""Heartbeats against a running gate: a killed runtime's agents time out, their tokens return, replay agrees."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from agentlog import events as ev
from agentlog.client import AgentlogClient
from agentlog.handles import OutcomeStatus
from agentlog.processors.policy import Policy, load_default_policy
from agentlog.replay.runs import decisions_report
from agentlog.settings import Settings
from tests.processors.gate_harness import running_gate
from tests.support import agentlog_env


def _fast_heartbeats() -> Policy:
    """The default policy with beats every second and a timeout after 3 silent intervals (shorter ones time out
    agents of a machine that is merely busy)."""
    policy = load_default_policy()
    limits = policy.limits.model_copy(update={"heartbeat_interval_ms": 1_000, "heartbeat_misses": 3})
    return policy.model_copy(update={"limits": limits})


_RUNTIME = """
import time
from agentlog.client import AgentlogClient
runtime = AgentlogClient("acme", timeout=60)
child = runtime.attach({root!r}, {child!r}, since={since})
child.started("doomed runtime")
grandchild = child.spawn("researcher", "a sub-question", 2_000)
grandchild.started("doomed runtime")
idle = child.spawn("summarizer", "never beats", 1_000)
idle.started("doomed runtime", heartbeat=False)
child.report_usage(1_500, partial_result="two of three sources")
deadline = time.monotonic() + 60
while runtime.heartbeats.sent < 4:  # both promised agents have beaten at least twice
    if time.monotonic() > deadline or grandchild.cancelled or child.cancelled:
        print("no beats:", runtime.heartbeats.sent, "sent", flush=True)
        raise SystemExit(1)
    time.sleep(0.05)
print(grandchild.agent_id, idle.agent_id, flush=True)
time.sleep(600)
"""


@pytest.mark.timeout(240)
def test_a_killed_runtimes_agents_time_out_on_missed_heartbeats_and_their_tokens_return(settings: Settings) -> None:
    with running_gate(settings, "heartbeats", _fast_heartbeats()), AgentlogClient("acme", settings, timeout=60) as us:
        root = us.start_root("orchestrator", 100_000, 10)
        root.started("this test")  # beats for the root from here: it must outlive its child's runtime
        child = root.spawn("researcher", "find sources", 20_000, 2)
        script = textwrap.dedent(_RUNTIME.format(root=root.root_id, child=child.agent_id, since=child.next_offset))
        runtime = subprocess.Popen(
            [sys.executable, "-c", script], env=agentlog_env(settings), stdout=subprocess.PIPE, text=True
        )
        try:
            assert runtime.stdout is not None
            said = runtime.stdout.readline().split()
            assert len(said) == 2, f"the runtime said {said}"
            grandchild_id, idle_id = said
            grandchild = us.attach(root.root_id, grandchild_id, since=child.next_offset)
            idle = us.attach(root.root_id, idle_id, since=child.next_offset)
            runtime.send_signal(signal.SIGKILL)
        finally:
            runtime.kill()
            runtime.wait(30)
            if runtime.stdout is not None:
                runtime.stdout.close()

        outcome = child.result(120)
        assert outcome.status is OutcomeStatus.timed_out, outcome
        assert outcome.timeout_cause is ev.TimeoutCause.HEARTBEAT_MISSED
        assert outcome.partial_result == "two of three sources"
        timed_out = outcome.fact
        assert isinstance(timed_out, ev.AgentTimedOut) and timed_out.last_heartbeat_at is not None
        # Its own grant less what it spent; the grants of its children came back to it first.
        assert timed_out.returned_tokens == 20_000 - 1_500
        # Its runtime died at the same moment: it ends with its parent, or for its own silence a tick earlier.
        ended = grandchild.result(60)
        assert (ended.termination, ended.timeout_cause) in (
            (ev.TerminationReason.ANCESTOR_ENDED, None),
            (None, ev.TimeoutCause.HEARTBEAT_MISSED),
        )
        assert idle.result(60).status is OutcomeStatus.terminated  # ended with its parent, not for silence

        assert not root.cancelled  # this process kept beating for it
        # The returned tokens are the root's again: 98,000 fit only if the child's 20,000 came back.
        again = root.spawn("researcher", "find sources again", 98_000)
        assert not again.cancelled

    report = decisions_report(settings)
    assert report.clean, [o.as_json() for o in report.outcomes]
    assert report.reproduced >= 10


@pytest.mark.timeout(240)
def test_an_agent_that_promised_nothing_keeps_its_deadline_only(settings: Settings) -> None:
    with running_gate(settings, "deadlines", _fast_heartbeats()), AgentlogClient("acme", settings, timeout=60) as us:
        root = us.start_root("orchestrator", 100_000, 10)
        root.started("this test")
        quiet = root.spawn("researcher", "no heartbeats", 1_000, max_runtime_ms=3_000)
        quiet.started("this test", heartbeat=False)
        assert us.heartbeats.beating == 1  # the root's only
        outcome = quiet.result(120)
        assert (outcome.status, outcome.timeout_cause) == (OutcomeStatus.timed_out, ev.TimeoutCause.DEADLINE)
        assert not root.cancelled
