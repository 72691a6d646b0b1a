"""The mission processor against the real broker: the SDK's commands answered, agents' ends moving missions."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer as KafkaProducer

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.client import AgentlogClient
from agentlog.dead_letters import STAGE
from agentlog.handles import OutcomeStatus
from agentlog.replay.runs import decisions_report
from agentlog.settings import Settings
from agentlog.tail import TailOptions, tail
from agentlog.topics import DLQ, MISSION_EVENTS, MISSIONS
from tests.processors.gate_harness import Worker

_S = ev.MissionState
_R = ev.MissionRejection


@pytest.fixture
def missions_worker(settings: Settings, gate: Worker) -> Iterator[Worker]:
    worker = Worker(settings, "missions-1", args=("--processor", "missions"))
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def _mission_facts(settings: Settings, root_id: str) -> list[tuple[str, str, str]]:
    records = tail(settings, TailOptions(topics=[settings.topic_prefix + MISSION_EVENTS.name], from_beginning=True))
    return [
        (r.value["mission_id"], str(r.value["from_state"]), str(r.value["to_state"]))
        for r in records
        if r.value and r.value["meta"]["root_id"] == root_id and r.record == ev.MissionTransitioned.avro_name
    ]


@pytest.mark.timeout(300)
def test_missions_are_answered_and_follow_their_agents(settings: Settings, missions_worker: Worker) -> None:
    with AgentlogClient("acme", settings, timeout=60) as client:
        root = client.start_root("orchestrator", 100_000, 10)
        child = root.spawn("researcher", "find", 10_000)
        tree, missions = root.root_id, client.missions

        created = missions.create(tree, "collect", "collect sources")
        assert isinstance(created, ev.MissionTransitioned) and created.to_state is _S.READY
        missions.create(tree, "write", "write the report")
        accepted = missions.depend(tree, "write", "collect")
        assert isinstance(accepted, ev.DependencyAccepted)
        cycle = missions.depend(tree, "collect", "write")
        assert isinstance(cycle, ev.DependencyRejected) and cycle.reason_code is _R.DEPENDENCY_CYCLE
        assert cycle.cycle == ["collect", "write", "collect"]
        early = missions.start(tree, "write", requested_by=root.agent_id)
        assert isinstance(early, ev.MissionTransitionRejected) and early.reason_code is _R.NOT_ALLOWED
        stranger = missions.start(tree, "collect", requested_by="someone-else")
        assert isinstance(stranger, ev.MissionTransitionRejected) and stranger.reason_code is _R.NOT_AN_ACTIVE_AGENT

        running = missions.start(tree, "collect", requested_by=root.agent_id, agent_id=child.agent_id)
        assert isinstance(running, ev.MissionTransitioned) and running.agent_id == child.agent_id
        child.terminate("taking too long", requested_by=root.agent_id)  # its mission fails and gets a second attempt
        assert child.result(60).status is OutcomeStatus.terminated
        again = missions.start(tree, "collect", requested_by=root.agent_id)
        assert isinstance(again, ev.MissionTransitioned) and again.attempt == 2, again
        done = missions.complete(tree, "collect", root.agent_id, "12 sources", 0.8)
        assert isinstance(done, ev.MissionTransitioned) and done.result_summary == "12 sources"
        write = missions.start(tree, "write", requested_by=root.agent_id)
        assert isinstance(write, ev.MissionTransitioned), write  # it became READY when collect completed
        missions.create(tree, "draft", "a draft", parent_mission_id="write")
        cancelled = missions.cancel(tree, "write", root.agent_id, "no longer needed")  # the draft goes first
        assert isinstance(cancelled, ev.MissionTransitioned) and cancelled.mission_id == "write", cancelled

    assert _mission_facts(settings, tree) == [
        ("collect", "UNKNOWN", "READY"),
        ("write", "UNKNOWN", "READY"),
        ("write", "READY", "PENDING"),
        ("collect", "READY", "RUNNING"),
        ("collect", "RUNNING", "FAILED"),
        ("collect", "FAILED", "READY"),
        ("collect", "READY", "RUNNING"),
        ("collect", "RUNNING", "COMPLETED"),
        ("write", "PENDING", "READY"),
        ("write", "READY", "RUNNING"),
        ("draft", "UNKNOWN", "READY"),
        ("draft", "READY", "CANCELLED"),
        ("write", "RUNNING", "CANCELLED"),
    ]
    report = decisions_report(settings, root_id=tree, processor="missions")  # replay proves the facts on Kafka
    assert report.outcomes == [] and report.reproduced == report.recorded == 17  # 13 transitions, 4 answers
    env = {
        **os.environ,
        "AGENTLOG_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "AGENTLOG_TOPIC_PREFIX": settings.topic_prefix,
    }
    both = subprocess.run([sys.executable, "-m", "agentlog.cli.main", "replay", "decisions", "--root", tree, "-q"],
                          env=env, check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert both.returncode == 0, both.stdout + both.stderr
    assert both.stdout.count("every recorded decision reproduced byte for byte") == 2
    assert "mission processor:" in both.stdout


@pytest.mark.timeout(300)
def test_undecodable_commands_go_to_the_dead_letter_topic(settings: Settings, missions_worker: Worker) -> None:
    producer = KafkaProducer(kafka_config.producer(settings))
    producer.produce(settings.topic_prefix + MISSIONS.name, b"not avro", b"acme/some-tree")
    producer.flush(30)
    with AgentlogClient("acme", settings, timeout=60) as client:  # the processor went on: it still answers
        answer = client.missions.create("acme/unknown-tree", "m", "x")
        assert isinstance(answer, ev.MissionTransitionRejected) and answer.reason_code is _R.UNKNOWN_TREE
    letters = list(tail(settings, TailOptions(topics=[settings.topic_prefix + DLQ.name], from_beginning=True)))
    stages = [dict(r.headers).get(STAGE) for r in letters]
    assert "processors.missions" in stages, [r.headers for r in letters]
