"""One trace from the agent's publish through the gate's decision to the projector's audit row, in a real Jaeger."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer as KafkaProducer

from agentlog import events as ev
from agentlog.processors.policy import load_default_policy, to_event
from agentlog.producer import Producer
from agentlog.projections.migrate import migrate
from agentlog.replay import read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import DLQ, SPAWN_REQUESTS
from agentlog.tracing import traceparent_of

from .support import (
    Span,
    agent,
    agentlog_command,
    eventually,
    run,
    running,
    telemetry_env,
    trace,
    traces,
)

pytestmark = [pytest.mark.observability, pytest.mark.timeout(300)]


@pytest.fixture
def traced_stack(settings: Settings, unique_name: str, tmp_path: Path, jaeger: str) -> Iterator[dict[str, Any]]:
    """A gate worker and a projector exporting to Jaeger, on this test's topics and schema."""
    with Producer(settings) as producer:
        producer.publish(to_event(load_default_policy(), published_by="tests"))
    schema = "t_" + unique_name
    migrate(settings, schema)
    env = telemetry_env(settings)
    gate = agentlog_command("processors", "run", "--worker-id", "w1", "--log-level", "WARNING")
    projector = agentlog_command("projector", "run", "--schema", schema, "--group", f"projector-{unique_name}")
    with running(gate, env, tmp_path / "gate.log"), running(projector, env, tmp_path / "projector.log"):
        yield {"settings": settings, "schema": schema, "env": env}


def _audit(settings: Settings, schema: str, root_id: str) -> list[tuple[str, Any]]:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        rows = conn.execute(
            f'SELECT record_name, headers FROM "{schema}".audit_log WHERE root_id = %s ORDER BY kafka_ts, topic',
            (root_id,),
        ).fetchall()
    return [(name, headers) for name, headers in rows]


def _traceparent(headers: list[list[str]] | None) -> str | None:
    return next((value for key, value in headers or [] if key == "traceparent"), None)


def _one(spans: list[Span], service: str, operation_prefix: str, **tags: Any) -> Span:
    found = [
        s
        for s in spans
        if s.service == service
        and s.operation.startswith(operation_prefix)
        and all(s.tags.get(k) == v for k, v in tags.items())
    ]
    seen = [(s.service, s.operation) for s in spans]
    assert found, f"no {service} span {operation_prefix!r} with {tags} among {seen}"
    return found[0]


def test_a_spawn_request_its_decision_and_their_audit_rows_are_one_trace(traced_stack: dict[str, Any]) -> None:
    settings, schema, env = traced_stack["settings"], traced_stack["schema"], traced_stack["env"]
    root = agent(env, "root", "acme")
    assert root["record"] == "RootAdmitted"
    # The registration is projected before the request is sent, so the request's batches hold its trace alone.
    eventually(lambda: True if len(_audit(settings, schema, root["root_id"])) >= 2 else None, "the root's rows")
    spawned = agent(env, "spawn", "acme", root["root_id"], root["agent_id"])
    assert spawned["record"] == "SpawnApproved"

    rows = eventually(
        lambda: rows if len(rows := _audit(settings, schema, root["root_id"])) >= 4 else None, "the spawn's rows"
    )
    by_record = {name: headers for name, headers in rows}
    request_context = _traceparent(by_record["agentlog.spawn.SpawnRequested"])
    decision_context = _traceparent(by_record["agentlog.decision.SpawnApproved"])
    assert request_context is not None and decision_context is not None
    trace_id = request_context.split("-")[1]
    assert decision_context.split("-")[1] == trace_id  # the decision's record carries the request's trace

    def whole() -> list[Span] | None:
        spans = trace(trace_id)
        services = {s.service for s in spans or []}
        return spans if {"agentlog-sdk", "agentlog-gate", "agentlog-projector"} <= services else None

    spans = eventually(whole, "the SDK's, the gate's and the projector's spans in one trace")
    send = _one(spans, "agentlog-sdk", "send", **{"agentlog.record": "SpawnRequested"})
    decision = _one(spans, "agentlog-gate", "process")
    projected = [s for s in spans if s.service == "agentlog-projector"]

    assert send.parent_id is None and send.tags["span.kind"] == "producer"
    assert send.tags["messaging.system"] == "kafka"
    assert send.tags["messaging.operation.type"] == "send"
    assert send.tags["messaging.destination.name"] == settings.topic_prefix + SPAWN_REQUESTS.name
    assert send.tags["messaging.kafka.message.offset"] == send.tags["messaging.kafka.offset"]
    assert send.tags["messaging.destination.partition.id"] == str(send.tags["messaging.kafka.destination.partition"])
    assert send.tags["gen_ai.agent.id"] == root["agent_id"]  # the agent that asks
    assert send.tags["agentlog.root_id"] == root["root_id"]

    assert decision.parent_id == send.span_id and decision.tags["span.kind"] == "consumer"
    assert decision.tags["messaging.operation.type"] == "process"
    assert decision.tags["messaging.consumer.group.name"] == decision.tags["messaging.kafka.consumer.group"]
    assert decision.tags["messaging.batch.message_count"] == 1
    assert decision.tags["messaging.kafka.offset"] == send.tags["messaging.kafka.offset"]
    assert decision.tags["agentlog.decision"] == "approved"
    assert decision.tags["agentlog.depth"] == 1
    assert decision.tags["agentlog.policy.version"] == 1
    assert decision.tags["gen_ai.agent.id"] == spawned["child_agent_id"]
    assert decision.tags["gen_ai.agent.name"] == "researcher"

    assert projected, "the projector's write is in the trace"
    assert all(s.parent_id in (send.span_id, decision.span_id) for s in projected)
    assert all(s.tags["db.system.name"] == "postgresql" for s in projected)
    # The decision's record names the gate's span as its parent: its audit row leads to the decision.
    assert decision_context.split("-")[2] == decision.span_id
    # And the trace leads to the audit rows.
    shown = run(agentlog_command("audit", "show", "--trace", trace_id.upper(), "--schema", schema, "-o", "json"), env)
    assert shown.returncode == 0, shown.stderr
    names = [row["record_name"] for row in json.loads(shown.stdout)]
    assert "agentlog.spawn.SpawnRequested" in names and "agentlog.decision.SpawnApproved" in names
    assert "agentlog.spawn.RootAgentRegistered" not in names  # another trace


def test_a_request_published_without_a_trace_starts_one_at_the_gate(traced_stack: dict[str, Any]) -> None:
    settings, schema = traced_stack["settings"], traced_stack["schema"]
    root_id = f"acme/{uuid.uuid4()}"
    registration = ev.RootAgentRegistered(
        meta=ev.Meta(tenant_id="acme", root_id=root_id, producer="tests"),
        agent_id=root_id,
        config="orchestrator",
        token_budget=1000,
        spawn_budget=1,
    )
    raw = KafkaProducer({"bootstrap.servers": settings.bootstrap_servers})
    topic = settings.topic_prefix + SPAWN_REQUESTS.name
    raw.produce(topic, Serde.from_settings(settings).encode(registration, topic), root_id.encode())
    assert raw.flush(30) == 0

    rows = eventually(
        lambda: rows if len(rows := _audit(settings, schema, root_id)) >= 2 else None, "the registration's rows"
    )
    by_record = {name: headers for name, headers in rows}
    assert _traceparent(by_record["agentlog.spawn.RootAgentRegistered"]) is None
    context = _traceparent(by_record["agentlog.decision.RootAdmitted"])
    assert context is not None, "the gate starts a trace for an input that had none"
    trace_id = context.split("-")[1]

    def both() -> list[Span] | None:
        spans = trace(trace_id) or []
        return spans if {"agentlog-gate", "agentlog-projector"} <= {s.service for s in spans} else None

    spans = eventually(both, "the gate's and the projector's spans")
    gate = _one(spans, "agentlog-gate", "process", **{"agentlog.decision": "admitted"})
    assert gate.parent_id is None  # the trace starts here
    assert any(s.service == "agentlog-projector" and s.parent_id == gate.span_id for s in spans)


def test_a_dead_letter_keeps_its_record_context_and_the_gate_span_is_in_that_trace(
    traced_stack: dict[str, Any],
) -> None:
    settings = traced_stack["settings"]
    trace_id = uuid.uuid4().hex
    context = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01".encode()
    raw = KafkaProducer({"bootstrap.servers": settings.bootstrap_servers})
    raw.produce(
        settings.topic_prefix + SPAWN_REQUESTS.name, b"\x00not avro", b"acme/x", headers=[("traceparent", context)]
    )
    assert raw.flush(30) == 0

    spans = eventually(lambda: trace(trace_id), "the gate's span in the bad record's trace")
    gate = _one(spans, "agentlog-gate", "process")
    assert gate.tags["messaging.batch.message_count"] == 1

    def dead_letter() -> Any:
        return list(read_topic(settings, settings.topic_prefix + DLQ.name)) or None

    (letter, *_) = eventually(dead_letter, "the dead letter")
    assert traceparent_of(letter.headers) == context


def test_traces_are_searchable_by_tree(traced_stack: dict[str, Any]) -> None:
    env = traced_stack["env"]
    root = agent(env, "root", "globex")
    found = eventually(
        lambda: traces("agentlog-gate", **{"agentlog.root_id": root["root_id"]}) or None, "the tree's traces"
    )
    assert all(any(s.tags.get("agentlog.root_id") == root["root_id"] for s in spans) for spans in found)


def test_a_usage_report_names_its_input_and_output_tokens(traced_stack: dict[str, Any]) -> None:
    env = traced_stack["env"]
    root = agent(env, "root", "initech")
    agent(env, "usage", "initech", root["root_id"], root["agent_id"], "1200", "300")
    found = eventually(
        lambda: (
            traces("agentlog-sdk", **{"agentlog.root_id": root["root_id"], "agentlog.record": "TokensConsumed"}) or None
        ),
        "the usage report's send span",
    )
    send = _one(found[0], "agentlog-sdk", "send", **{"agentlog.record": "TokensConsumed"})
    assert send.tags["gen_ai.usage.input_tokens"] == 1200
    assert send.tags["gen_ai.usage.output_tokens"] == 300
    assert send.tags["gen_ai.agent.id"] == root["agent_id"]
