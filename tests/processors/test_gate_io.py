"""The spawn gate's edges: the SDK's request-reply, policy publication, and bad input."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer as KafkaProducer

from agentlog import dead_letters, kafka_config
from agentlog import events as ev
from agentlog.client import AgentlogClient, DecisionTimeout
from agentlog.errors import DeliveryError
from agentlog.processors.ids import child_agent_id
from agentlog.processors.policy import DEFAULT_POLICY_PATH, parse_policy, to_event
from agentlog.producer import Producer
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.tail import TailOptions, tail
from agentlog.topics import DLQ, POLICY_DECISIONS, SPAWN_REQUESTS
from tests.support import agentlog_env

from .gate_harness import Worker


@pytest.fixture
def client(settings: Settings) -> Iterator[AgentlogClient]:
    """An SDK client of tenant acme."""
    with AgentlogClient("acme", settings, timeout=60) as client:
        yield client


def test_spawn_returns_the_decision(gate: Worker, client: AgentlogClient) -> None:
    """register_root and spawn return the gate's answers; the child id derives from the request id."""
    admitted = client.register_root("root-sdk", "orchestrator", 100_000, 5)
    assert isinstance(admitted, ev.RootAdmitted) and admitted.policy_version == 1
    request_id = uuid.uuid4()
    approved = client.spawn("root-sdk", "root-sdk", "researcher", "find things", 20_000, 2, request_id=request_id)
    assert isinstance(approved, ev.SpawnApproved)
    assert approved.child_agent_id == child_agent_id(request_id)
    assert (approved.depth, approved.granted_token_budget, approved.parent_remaining_tokens) == (1, 20_000, 80_000)
    denied = client.spawn("root-sdk", approved.child_agent_id, "coder", "write code", 1_000)
    assert isinstance(denied, ev.SpawnDenied) and denied.reason is ev.DenialReason.NOT_AUTHORIZED
    assert denied.message.startswith("Cannot spawn")
    own = client.new_root_id()  # in the tenant's namespace, as limits.tenant_root_prefix asks
    assert own.startswith("acme/") and own != client.new_root_id()
    assert isinstance(client.register_root(own, "orchestrator", 1_000, 1), ev.RootAdmitted)


def test_completion_cascades_and_returns_tokens(gate: Worker, client: AgentlogClient, settings: Settings) -> None:
    """Completing an agent terminates its active descendants and returns unused tokens upward."""
    client.register_root("root-c", "orchestrator", 100_000, 10)
    child = client.spawn("root-c", "root-c", "researcher", "a", 30_000, 3)
    assert isinstance(child, ev.SpawnApproved)
    grandchild = client.spawn("root-c", child.child_agent_id, "researcher", "b", 10_000, 0)
    assert isinstance(grandchild, ev.SpawnApproved)
    client.complete("root-c", child.child_agent_id, "done", tokens_used=5_000)
    after = client.spawn("root-c", "root-c", "researcher", "c", 95_000 - 5_000, 0)
    # 100,000 - 30,000 reserved + (30,000 - 5,000 used) returned = 95,000 left.
    assert isinstance(after, ev.SpawnApproved), after
    assert after.parent_remaining_tokens == 5_000
    topic = settings.topic_prefix + POLICY_DECISIONS.name
    terminated = [
        r.value
        for r in tail(settings, TailOptions(topics=[topic], filters={"meta.root_id": "root-c"}))
        if r.record == ev.AgentTerminated.avro_name and r.value
    ]
    assert [(t["agent_id"], t["reason"]) for t in terminated] == [(grandchild.child_agent_id, "ANCESTOR_ENDED")]


def _answers(settings: Settings, request_id: uuid.UUID) -> list[dict[str, object]]:
    topic = settings.topic_prefix + POLICY_DECISIONS.name
    return [
        r.value
        for r in tail(settings, TailOptions(topics=[topic]))
        if r.value and str(r.value.get("request_id")) == str(request_id)
    ]


def test_a_retried_request_learns_its_original_outcome(
    gate: Worker, client: AgentlogClient, settings: Settings
) -> None:
    """Asking again with a request id already decided returns its outcome, marked repeat; nothing is granted twice."""
    client.register_root("root-retry", "orchestrator", 100_000, 5)
    again = client.register_root("root-retry", "orchestrator", 100_000, 5)
    assert isinstance(again, ev.RootAdmitted) and again.repeat
    approved_id, denied_id = uuid.uuid4(), uuid.uuid4()
    first = client.spawn("root-retry", "root-retry", "researcher", "a", 20_000, 1, request_id=approved_id)
    second = client.spawn("root-retry", "root-retry", "researcher", "a", 20_000, 1, request_id=approved_id)
    assert isinstance(first, ev.SpawnApproved) and isinstance(second, ev.SpawnApproved)
    assert (first.repeat, second.repeat, second.child_agent_id) == (False, True, first.child_agent_id)
    assert second.parent_remaining_tokens == 80_000  # reserved once
    denied = client.spawn("root-retry", "root-retry", "crypto-miner", "b", 1_000, request_id=denied_id)
    repeated = client.spawn("root-retry", "root-retry", "crypto-miner", "b", 1_000, request_id=denied_id)
    assert isinstance(denied, ev.SpawnDenied) and isinstance(repeated, ev.SpawnDenied)
    assert (repeated.reason, repeated.repeat) == (denied.reason, True)
    assert [a["repeat"] for a in _answers(settings, approved_id)] == [False, True]


def test_the_sdk_asks_again_with_the_same_request_id_when_delivery_is_in_doubt(
    gate: Worker, client: AgentlogClient, settings: Settings
) -> None:
    """A publish that reached the broker but whose acknowledgement was lost is retried with the same request id.

    The fault is injected: the first publish is delivered, then reported as a retriable
    failure. The caller gets the approval, and the gate granted the child once.
    """
    client.register_root("root-doubt", "orchestrator", 100_000, 5)
    real_publish = client._producer.publish
    calls: list[ev.Event] = []

    def lost_ack(event: ev.Event) -> object:
        calls.append(event)
        delivery = real_publish(event)
        if len(calls) == 1:
            raise DeliveryError("1 of 1 records not delivered: not acknowledged within 5s", retriable=True)
        return delivery

    client._producer.publish = lost_ack  # type: ignore[method-assign]
    request_id = uuid.uuid4()
    reply = client.spawn("root-doubt", "root-doubt", "researcher", "a", 30_000, 1, request_id=request_id)
    assert isinstance(reply, ev.SpawnApproved) and reply.child_agent_id == child_agent_id(request_id)
    assert len(calls) == 2 and {getattr(c, "request_id", None) for c in calls} == {request_id}
    assert calls[0].meta.event_id != calls[1].meta.event_id
    client._producer.publish = real_publish  # type: ignore[method-assign]
    after = client.spawn("root-doubt", "root-doubt", "researcher", "b", 1_000)
    assert isinstance(after, ev.SpawnApproved) and after.parent_remaining_tokens == 100_000 - 30_000 - 1_000
    assert sorted(bool(a["repeat"]) for a in _answers(settings, request_id)) == [False, True]


def test_no_worker_means_a_clear_timeout(settings: Settings) -> None:
    """Without a running gate, spawn raises DecisionTimeout naming the request instead of hanging."""
    with (
        AgentlogClient("acme", settings, timeout=2, retries=1) as client,
        pytest.raises(DecisionTimeout, match=r"\(2 attempts\); is `agentlog processors run` running"),
    ):
        client.register_root("root-x", "orchestrator", 1_000, 1)


def test_bad_records_are_dead_lettered_and_the_gate_goes_on(gate: Worker, settings: Settings) -> None:
    """Garbage, a record of the wrong topic and one under another tree's key are dead-lettered; the gate goes on."""
    topic = settings.topic_prefix + SPAWN_REQUESTS.name
    misplaced = ev.TokensConsumed(
        meta=ev.Meta(tenant_id="acme", root_id="root-d", producer="t"), agent_id="a", tokens=1
    )
    foreign = ev.RootAgentRegistered(
        meta=ev.Meta(tenant_id="acme", root_id="root-e", producer="t"),
        agent_id="root-e",
        config="orchestrator",
        token_budget=1,
        spawn_budget=1,
    )
    raw = KafkaProducer({**kafka_config.base(settings), "partitioner": "murmur2_random"})
    raw.produce(topic, b"\x00garbage", b"root-d", headers=[("traceparent", b"00-trace-of-the-bad-record")])
    raw.produce(topic, Serde().encode(misplaced, topic), b"root-d")
    raw.produce(topic, Serde().encode(foreign, topic), b"root-d")
    raw.flush(10)
    with AgentlogClient("acme", settings, timeout=60) as client:
        assert isinstance(client.register_root("root-d", "orchestrator", 1_000, 1), ev.RootAdmitted)
    letters = list(tail(settings, TailOptions(topics=[settings.topic_prefix + DLQ.name])))
    assert len(letters) == 3
    headers = {dict(letter.headers)[dead_letters.SOURCE_OFFSET]: dict(letter.headers) for letter in letters}
    assert {h[dead_letters.STAGE] for h in headers.values()} == {"processors.spawn_gate"}
    assert {h[dead_letters.SOURCE_TOPIC] for h in headers.values()} == {topic}
    assert sorted(headers) == ["0", "1", "2"]
    assert headers["0"]["traceparent"] == "00-trace-of-the-bad-record"  # the original headers travel along
    assert "Confluent wire format" in headers["0"][dead_letters.ERROR_MESSAGE]
    assert "does not belong on agentlog.spawn.requests" in headers["1"][dead_letters.ERROR_MESSAGE]
    assert "is not the event's meta.root_id" in headers["2"][dead_letters.ERROR_MESSAGE]
    assert {letter.raw for letter in letters if letter.error} == {b"\x00garbage"}


def _policy_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["agentlog", "policy", *args],
        capture_output=True,
        text=True,
        env=agentlog_env(settings),
        timeout=120,
        check=False,
    )


def test_policy_publish_versions(settings: Settings, tmp_path: Path) -> None:
    """Publishing is idempotent per version; a changed file must bump the version; bad files name the field."""
    first = _policy_cli(settings, "publish", str(DEFAULT_POLICY_PATH))
    assert first.returncode == 0, first.stderr
    assert "published policy default version 1" in first.stdout
    again = _policy_cli(settings, "publish", str(DEFAULT_POLICY_PATH))
    assert again.returncode == 0 and "already published" in again.stdout
    document = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    document["limits"]["max_depth"] = 2
    changed = tmp_path / "policy.yaml"
    changed.write_text(yaml.safe_dump(document))
    same_version = _policy_cli(settings, "publish", str(changed))
    assert same_version.returncode == 2 and "version 2" in same_version.stderr
    document["version"] = 2
    changed.write_text(yaml.safe_dump(document))
    assert _policy_cli(settings, "publish", str(changed)).returncode == 0
    shown = _policy_cli(settings, "show")
    assert "version: 2" in shown.stdout and "max_depth: 2" in shown.stdout
    document["limits"]["max_depth"] = -1
    changed.write_text(yaml.safe_dump(document))
    bad = _policy_cli(settings, "publish", str(changed))
    assert bad.returncode == 2 and "limits.max_depth" in bad.stderr


def test_newest_policy_version_applies(gate: Worker, settings: Settings, tmp_path: Path) -> None:
    """A policy published while the gate runs is applied to later requests, and named in them."""
    with AgentlogClient("acme", settings, timeout=60) as client:
        root = client.register_root("root-p", "orchestrator", 100_000, 10)
        assert root.policy_version == 1
        document = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
        document["version"] = 2
        document["limits"]["max_depth"] = 1
        path = tmp_path / "v2.yaml"
        path.write_text(yaml.safe_dump(document))
        assert _policy_cli(settings, "publish", str(path)).returncode == 0
        deadline = time.monotonic() + 60
        while True:
            child = client.spawn("root-p", "root-p", "researcher", "a", 1_000, 1)
            if child.policy_version == 2 or time.monotonic() > deadline:
                break
        assert isinstance(child, ev.SpawnApproved) and child.policy_version == 2
        grandchild = client.spawn("root-p", child.child_agent_id, "researcher", "b", 100, 0)
        assert isinstance(grandchild, ev.SpawnDenied) and grandchild.reason is ev.DenialReason.DEPTH_EXCEEDED


def _refused_gate(settings: Settings, policy: str, worker_id: str) -> subprocess.CompletedProcess[str]:
    """`processors run` that must stop with exit 1 and no traceback."""
    done = subprocess.run(
        ["agentlog", "processors", "run", "--policy", policy, "--worker-id", worker_id],
        capture_output=True,
        text=True,
        env=agentlog_env(settings),
        timeout=180,
        check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return done


def test_a_gate_without_a_published_policy_refuses_to_start(settings: Settings) -> None:
    """A mistyped --policy does not join the gate's group: the worker exits 1 naming the policy."""
    done = _refused_gate(settings, "nosuchpolicy", "typo")
    assert "no version of policy 'nosuchpolicy' is published" in done.stderr


def test_concurrent_publishers_cannot_share_a_version(settings: Settings, tmp_path: Path) -> None:
    """Two `policy publish` of one version with different contents at once: exactly one of them publishes."""
    assert _policy_cli(settings, "publish", str(DEFAULT_POLICY_PATH)).returncode == 0
    document = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    files = []
    for depth in (1, 2):
        document.update(version=2, limits={**document["limits"], "max_depth": depth})
        files.append(tmp_path / f"depth{depth}.yaml")
        files[-1].write_text(yaml.safe_dump(document))
    env = agentlog_env(settings)
    racers = [
        subprocess.Popen(
            ["agentlog", "policy", "publish", str(f)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for f in files
    ]
    outcomes = [(r.returncode, err.decode()) for r in racers for _, err in [r.communicate(timeout=120)]]
    assert sorted(code for code, _ in outcomes) in ([0, 1], [0, 2]), outcomes
    versions = [
        r.value["version"]
        for r in tail(settings, TailOptions(topics=[settings.topic_prefix + "agentlog.policy.config"]))
        if r.value
    ]
    assert versions == [1, 2]


def unchecked_root(root_id: str, agent_id: str) -> bytes:
    """A RootAgentRegistered encoded without validation, as a client that ignores the contract would."""
    meta = ev.Meta(tenant_id="acme", root_id=root_id, producer="t")
    event = ev.RootAgentRegistered.model_construct(
        meta=meta, agent_id=agent_id, config="orchestrator", token_budget=1, spawn_budget=0, capabilities=[]
    )
    return Serde().encode(event, "t")


def test_huge_records_are_dead_lettered_and_the_gate_goes_on(gate: Worker, settings: Settings) -> None:
    """A 250,000-character id, a record of about 1 MB and a 500 KB wrong key: dead letters that fit, then decisions."""
    topic = settings.topic_prefix + SPAWN_REQUESTS.name
    raw = KafkaProducer(
        {**kafka_config.base(settings), "partitioner": "murmur2_random", "message.max.bytes": 1_048_576}
    )
    raw.produce(topic, unchecked_root("root-long", "a" * 250_000), b"root-long", partition=0)
    raw.produce(topic, unchecked_root("root-1mb", "b" * 1_039_000), b"root-1mb", partition=1)
    raw.produce(topic, unchecked_root("root-key", "c" * 497_000), b"k" * 500_000, partition=2)
    assert raw.flush(30) == 0
    with AgentlogClient("acme", settings, timeout=60) as client:
        assert isinstance(client.register_root("root-after", "orchestrator", 1_000, 1), ev.RootAdmitted)
    assert gate.alive()
    letters = list(tail(settings, TailOptions(topics=[settings.topic_prefix + DLQ.name])))
    assert len(letters) == 3
    roots = {"0": "root-long", "1": "root-1mb", "2": "root-key"}  # by the partition each was produced to
    by_root = {roots[dict(letter.headers)[dead_letters.SOURCE_PARTITION]]: dict(letter.headers) for letter in letters}
    assert "agent_id" in by_root["root-long"][dead_letters.ERROR_MESSAGE]
    assert dead_letters.TRUNCATED not in by_root["root-long"]  # 250 KB fits whole
    assert "the contract allows" in by_root["root-1mb"][dead_letters.ERROR_MESSAGE]
    assert dead_letters.TRUNCATED in by_root["root-1mb"] and dead_letters.TRUNCATED in by_root["root-key"]


def test_a_gate_with_another_policy_than_its_deployment_refuses(gate: Worker, settings: Settings) -> None:
    """Once a deployment's gate has enforced `default`, a worker started with another published policy stops."""
    with AgentlogClient("acme", settings, timeout=60) as client:
        assert isinstance(client.register_root("root-pol", "orchestrator", 1_000, 1), ev.RootAdmitted)
    gate.stop()
    other = yaml.safe_load(DEFAULT_POLICY_PATH.read_text()) | {"name": "other"}
    with Producer(settings) as producer:
        producer.publish(to_event(parse_policy(other, "test"), published_by="tests"))
    done = _refused_gate(settings, "other", "io")
    assert "enforces policy 'default'" in done.stderr and "--policy 'other'" in done.stderr
