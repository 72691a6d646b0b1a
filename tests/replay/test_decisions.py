"""`replay decisions` over Kafka: a real gate run is proved; forged, orphan and undecided records are told apart."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from confluent_kafka import Producer as KafkaProducer

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.partitioning import partition_of
from agentlog.processors import CORE_HEADER, CORE_VERSION, DECIDED_HEADER, DecisionPoint, InputRecord, decode_input
from agentlog.processors.policy import load_default_policy, to_event
from agentlog.processors.spawn_gate import decide
from agentlog.processors.tree_state import PartitionState
from agentlog.producer import Producer
from agentlog.replay.log_source import KafkaLog
from agentlog.replay.runs import decisions_report
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import tree_partition_count
from agentlog.topics import DEFAULT_TREE_PARTITIONS, POLICY_DECISIONS

from ..support import TEST_TREE_PARTITIONS as TREE_PARTITIONS
from .conftest import Recorded

AGENTLOG = [sys.executable, "-m", "agentlog.cli.main"]


def test_decisions_of_a_real_gate_run_are_reproduced(recorded: Recorded) -> None:
    """Every decision the gate committed (timeouts included) is reproduced byte for byte from Kafka; exit 0."""
    result = subprocess.run(
        [*AGENTLOG, "replay", "decisions", "--schema", recorded.schema, "-q"],
        env=recorded.env(),
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every recorded decision reproduced byte for byte" in result.stdout
    assert tree_partition_count(recorded.settings) == DEFAULT_TREE_PARTITIONS  # this run uses the default count
    report = decisions_report(recorded.settings, root_id=recorded.root_id)
    assert report.clean
    assert report.partitions == 1
    assert report.reproduced == report.recorded > 0


def _produce_decisions(
    settings: Settings, root: str, decisions: list[ev.Event], points: list[DecisionPoint] | None = None
) -> None:
    serde = Serde()
    topic = settings.topic_prefix + POLICY_DECISIONS.name
    producer = KafkaProducer(kafka_config.producer(settings))
    for i, decision in enumerate(decisions):
        headers = [(CORE_HEADER, str(CORE_VERSION).encode())]  # decided by this core, as a gate names it
        if points:
            headers.append((DECIDED_HEADER, points[i].encode()))
        producer.produce(
            topic,
            serde.encode(decision, topic),
            root.encode(),
            partition=partition_of(root, TREE_PARTITIONS),
            headers=headers,
        )
    assert producer.flush(30) == 0


def test_a_late_input_is_replayed_where_the_gate_decided_it(settings: Settings) -> None:
    """A completion that became visible only after the next spawn was decided is replayed after it, as recorded.

    The completion returns 900 tokens to the root: decided in append-time order, the second
    spawn (500 tokens) is approved; decided late, as here, it is denied. The decisions'
    points say which; the replay follows them and reproduces every decision.
    """
    policy = load_default_policy()
    root = f"late-{uuid.uuid4().hex[:6]}"
    partition = partition_of(root, TREE_PARTITIONS)
    meta = ev.Meta(tenant_id="t", root_id=root, producer="test")

    def spawn(tokens: int) -> ev.SpawnRequested:
        return ev.SpawnRequested(
            meta=meta.model_copy(update={"event_id": uuid.uuid4()}),
            parent_agent_id=root,
            child_config="researcher",
            task=ev.TaskSpec(title="t"),
            requested_token_budget=tokens,
        )

    registration = ev.RootAgentRegistered(
        meta=meta, agent_id=root, config="orchestrator", token_budget=1000, spawn_budget=5
    )
    first, second = spawn(900), spawn(500)
    scratch = PartitionState(partition=partition, partitions=TREE_PARTITIONS)
    decide(scratch, registration, policy)
    [approved] = [d for d in decide(scratch, first, policy) if isinstance(d, ev.SpawnApproved)]
    completed = ev.AgentCompleted(
        meta=meta.model_copy(update={"event_id": uuid.uuid4()}), agent_id=approved.child_agent_id
    )
    with Producer(settings) as producer:
        producer.publish(to_event(policy, published_by="tests"))
        for event in (registration, first, completed, second):
            producer.publish(event)
            time.sleep(0.01)  # distinct append times
    streams = KafkaLog(settings).inputs(partition)
    inputs = sorted((r for stream in streams for r in stream), key=InputRecord.sort_key)
    assert [decode_input(Serde(), r).meta.event_id for r in inputs][-2:] == [
        completed.meta.event_id,
        second.meta.event_id,
    ]
    late = [*inputs[:-2], inputs[-1], inputs[-2]]  # the completion decided after the second spawn

    def run(order: list[InputRecord]) -> tuple[list[ev.Event], list[DecisionPoint]]:
        state = PartitionState(partition=partition, partitions=TREE_PARTITIONS)
        decisions, points, undecided = [], [], [0, 0]
        for record in order:
            outputs = decide(state, decode_input(Serde(), record), policy)
            point = DecisionPoint(record.source, tuple(undecided))
            undecided[record.source] = record.offset + 1
            decisions += outputs
            points += [point] * len(outputs)
        return decisions, points

    decisions, points = run(late)
    in_append_order, _ = run(inputs)
    assert any(isinstance(d, ev.SpawnDenied) and d.meta.causation_id == second.meta.event_id for d in decisions)
    assert [type(d) for d in decisions] != [type(d) for d in in_append_order]  # the order matters here
    _produce_decisions(settings, root, decisions, points)
    report = decisions_report(settings)
    assert report.clean, [o.as_json() for o in report.outcomes]
    assert report.reproduced == report.recorded == len(decisions)


def test_forged_orphan_and_undecided_records_are_told_apart(settings: Settings) -> None:
    """A recorded decision that differs is divergent, one without its input orphan; an undecided input pending."""
    policy = load_default_policy()
    root = f"forged-{uuid.uuid4().hex[:6]}"
    meta = ev.Meta(tenant_id="t", root_id=root, producer="test")
    registration = ev.RootAgentRegistered(
        meta=meta, agent_id=root, config="orchestrator", token_budget=1000, spawn_budget=2
    )
    spawn = ev.SpawnRequested(
        meta=meta.model_copy(update={"event_id": uuid.uuid4()}),
        parent_agent_id=root,
        child_config="researcher",
        task=ev.TaskSpec(title="t"),
        requested_token_budget=100,
    )
    with Producer(settings) as producer:
        producer.publish(to_event(policy, published_by="tests"))
        producer.publish(registration)
        producer.publish(spawn)
    state = PartitionState(partition=partition_of(root, TREE_PARTITIONS), partitions=TREE_PARTITIONS)
    [admitted] = decide(state, registration, policy)
    forged = admitted.model_copy(update={"token_budget": 1_000_000})
    orphan = admitted.model_copy(
        update={"meta": admitted.meta.model_copy(update={"causation_id": uuid.uuid4(), "event_id": uuid.uuid4()})}
    )
    _produce_decisions(settings, root, [forged, orphan])
    report = decisions_report(settings)
    assert [(o.status, o.cause.event_id) for o in report.outcomes] == [
        ("divergent", str(registration.meta.event_id)),
        ("orphan", str(orphan.meta.causation_id)),
    ]
    divergent = report.outcomes[0]
    assert divergent.recorded[0]["token_budget"] == 1_000_000
    assert divergent.replayed[0]["token_budget"] == 1000
    assert report.pending == 1  # the spawn: no gate has committed past it
    env = {
        "AGENTLOG_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "AGENTLOG_TOPIC_PREFIX": settings.topic_prefix,
        "AGENTLOG_DATABASE_URL": settings.database_url.get_secret_value(),
    }
    result = subprocess.run(
        [*AGENTLOG, "replay", "decisions", "-q"], env=env, check=False, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "[divergent]" in result.stdout and "[orphan]" in result.stdout
    assert "token_budget: recorded 1000000 | replayed 1000" in result.stdout
    assert "2 recorded decisions are not reproduced" in result.stderr
