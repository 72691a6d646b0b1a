"""`replay decisions` over Kafka: a real gate run is proved; forged, orphan and undecided records are told apart."""

from __future__ import annotations

import subprocess
import sys
import uuid

from confluent_kafka import Producer as KafkaProducer

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.processors.policy import load_default_policy, to_event
from agentlog.processors.spawn_gate import decide
from agentlog.processors.tree_state import PartitionState
from agentlog.producer import Producer
from agentlog.replay.partitioning import partition_of
from agentlog.replay.runs import decisions_report
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import POLICY_DECISIONS, TREE_PARTITIONS

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
    report = decisions_report(recorded.settings, root_id=recorded.root_id)
    assert report.clean
    assert report.partitions == 1
    assert report.reproduced == report.recorded > 0


def _produce_decisions(settings: Settings, root: str, decisions: list[ev.Event]) -> None:
    serde = Serde()
    topic = settings.topic_prefix + POLICY_DECISIONS.name
    producer = KafkaProducer(kafka_config.producer(settings))
    for decision in decisions:
        producer.produce(
            topic, serde.encode(decision, topic), root.encode(), partition=partition_of(root, TREE_PARTITIONS)
        )
    assert producer.flush(30) == 0


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
