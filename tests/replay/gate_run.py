"""Running the real spawn gate over a scenario: one ``agentlog processors run`` process."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time

from agentlog import events as ev
from agentlog.processors.policy import to_event
from agentlog.producer import Producer
from agentlog.replay import read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import MESSAGE_EVENTS, MESSAGES, MISSION_EVENTS, MISSIONS, POLICY_DECISIONS, TopicSpec

from .scenarios import BUS_MESSAGES, MISSION_COMMANDS, REQUESTS, Script, play

_ANSWERS = (ev.SpawnApproved, ev.SpawnDenied, ev.RootAdmitted, ev.RootRejected, ev.BudgetToppedUp, ev.TopUpDenied)


def answered(settings: Settings) -> int:
    """How many requests the gate has answered (committed decisions)."""
    serde = Serde()
    topic = settings.topic_prefix + POLICY_DECISIONS.name
    return sum(isinstance(serde.decode(r.value or b""), _ANSWERS) for r in read_topic(settings, topic))


def mission_answers(settings: Settings) -> tuple[int, int]:
    """How many mission commands the mission processor has answered (facts naming a command as their cause), of how
    many are on the topic."""
    return _answers(settings, MISSIONS, MISSION_COMMANDS, MISSION_EVENTS)


def bus_answers(settings: Settings) -> tuple[int, int]:
    """How many messages the bus has answered, of how many are on the topic."""
    return _answers(settings, MESSAGES, BUS_MESSAGES, MESSAGE_EVENTS)


def _answers(
    settings: Settings, inputs: TopicSpec, kinds: tuple[type[ev.Event], ...], facts: TopicSpec
) -> tuple[int, int]:
    serde = Serde()
    asked = {
        str(e.meta.event_id)
        for r in read_topic(settings, settings.topic_prefix + inputs.name)
        if isinstance(e := serde.decode(r.value or b""), kinds)
    }
    records = read_topic(settings, settings.topic_prefix + facts.name)
    return len(asked & {str(serde.decode(r.value or b"").meta.causation_id) for r in records}), len(asked)


def _opening_policy_published(settings: Settings, script: Script) -> Script:
    """Publish the script's opening policy step, if it has one; the script without it."""
    first = script.steps[0] if script.steps else None
    if first is None or first.policy is None or first.events or first.made is not None or first.pause_s:
        return script
    with Producer(settings) as producer:
        producer.publish(to_event(first.policy, published_by="golden"))
    rest = copy.copy(script)
    rest.steps = script.steps[1:]
    return rest


def run_scenario(
    settings: Settings, script: Script, worker_id: str = "replay-tests", processors: tuple[str, ...] = ()
) -> None:
    """Play ``script`` against a gate worker (and ``processors``' workers) until every request is answered and the
    last deadlines passed."""
    env = {
        **os.environ,
        "AGENTLOG_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "AGENTLOG_TOPIC_PREFIX": settings.topic_prefix,
    }
    command = [sys.executable, "-m", "agentlog.cli.main", "processors", "run", f"--worker-id={worker_id}"]
    rest = _opening_policy_published(settings, script)  # before the gate starts: it refuses to start without one
    gate = subprocess.Popen([*command, "--log-level=ERROR"], env=env)
    others = [subprocess.Popen([*command, f"--processor={name}", "--log-level=ERROR"], env=env) for name in processors]

    def settle(expected: int) -> None:
        deadline = time.monotonic() + 90
        while (done := answered(settings)) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gate answered {done} of {expected} requests")
            time.sleep(0.5)

    try:
        play(settings, rest, settle)
        settle(sum(isinstance(e, REQUESTS) for step in script.steps for e in step.events))
        time.sleep(2.5)  # timer ticks after the last input
        for name, answers in (("missions", mission_answers), ("bus", bus_answers)):
            deadline = time.monotonic() + 90  # everything is published: each input on its topic must be answered
            while name in processors and (counts := answers(settings))[0] < counts[1]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {name} processor answered {counts[0]} of {counts[1]} inputs")
                time.sleep(0.5)
    finally:
        for worker in (gate, *others):
            worker.terminate()
        for worker in (gate, *others):
            worker.wait(60)
