"""The metrics move as decisions are made and records projected: scraped from the Prometheus endpoints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer as KafkaProducer

from agentlog.processors.policy import load_default_policy, to_event
from agentlog.producer import Producer
from agentlog.projections.migrate import migrate
from agentlog.settings import Settings
from tests.support import REPO

from .support import agent, agentlog_command, eventually, free_port, metric, running, scrape, telemetry_env

pytestmark = [pytest.mark.observability, pytest.mark.timeout(300)]


def test_decisions_latency_lag_agents_and_projected_rows_are_scraped(
    settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    with Producer(settings) as producer:
        producer.publish(to_event(load_default_policy(), published_by="tests"))
    schema = "t_" + unique_name
    migrate(settings, schema)
    gate_port, projector_port = free_port(), free_port()
    env = telemetry_env(settings, endpoint=None)  # no collector: the endpoints alone
    gate = agentlog_command("processors", "run", "--worker-id", "w1", "--metrics-port", str(gate_port))
    projector = agentlog_command(
        "projector", "run", "--schema", schema, "--group", f"p-{unique_name}", "--metrics-port", str(projector_port)
    )
    with running(gate, env, tmp_path / "gate.log"), running(projector, env, tmp_path / "projector.log"):
        before = eventually(lambda: _scrape_or_none(gate_port), "the gate's endpoint")
        assert metric(before, "agentlog_decisions_total", record="RootAdmitted") == 0

        root = agent(env, "root", "acme")
        agent(env, "spawn", "acme", root["root_id"], root["agent_id"])
        agent(env, "spawn", "acme", root["root_id"], "not-an-agent-of-this-tree")
        raw = KafkaProducer({"bootstrap.servers": settings.bootstrap_servers})
        raw.produce(settings.topic_prefix + "agentlog.spawn.requests", b"\x00not avro", b"acme/x")
        assert raw.flush(30) == 0

        def moved() -> list[tuple[str, dict[str, str], float]] | None:
            samples = scrape(gate_port)
            done = metric(samples, "agentlog_decisions_total", processor="agentlog.spawn-gate", record="SpawnDenied")
            active = metric(samples, "agentlog_agents_active", tenant="acme")
            dead = metric(samples, "agentlog_dead_letters_total", stage="processors.spawn_gate")
            return samples if done >= 1 and active == 2 and dead == 1 else None

        samples = eventually(moved, "the gate's metrics to move")
        assert metric(samples, "agentlog_decisions_total", record="RootAdmitted") == 1
        assert metric(samples, "agentlog_decisions_total", record="SpawnApproved") == 1
        denied = [labels for name, labels, value in samples if name == "agentlog_decisions_total" and value > 0]
        assert any(d["record"] == "SpawnDenied" and d["reason"] for d in denied), "a denial is counted by its reason"
        assert metric(samples, "agentlog_decision_latency_milliseconds_count") >= 3
        assert metric(samples, "agentlog_batch_size_count") >= 1
        assert metric(samples, "agentlog_transaction_commit_milliseconds_count") >= 1
        assert metric(samples, "agentlog_agents_active", scope="platform") == 2
        limits = {labels.get("scope"): value for name, labels, value in samples if name == "agentlog_agents_limit"}
        policy = load_default_policy().limits
        assert limits == {"platform": policy.max_active_platform, "tenant": policy.max_active_per_tenant}
        lags = [labels for name, labels, _ in samples if name == "agentlog_consumer_lag"]
        assert {labels["topic"] for labels in lags} == {
            settings.topic_prefix + "agentlog.spawn.requests",
            settings.topic_prefix + "agentlog.agent.lifecycle",
        }

        def projected() -> list[tuple[str, dict[str, str], float]] | None:
            samples = scrape(projector_port)
            decisions = settings.topic_prefix + "agentlog.policy.decisions"
            return samples if metric(samples, "agentlog_projector_rows_total", topic=decisions) >= 3 else None

        samples = eventually(projected, "the projector's rows")
        assert metric(samples, "agentlog_projector_batch_milliseconds_count") >= 1
        assert any(name == "agentlog_projector_lag" for name, _, _ in samples)

        slo_samples = _slo_gauges(env, schema, tmp_path)
        served = {name for name, _, _ in scrape(gate_port) + scrape(projector_port) + slo_samples}
    # Every metric the shipped alert rules and dashboard use is one these processes serve.
    for path in (RULES, DASHBOARD):
        used = set(re.findall(r"\bagentlog_[a-z0-9_]+", path.read_text()))
        assert used, path
        assert used <= served | {n.removesuffix("_bucket") for n in served}, (path.name, sorted(used - served))


RULES = REPO / "deploy/observability/alerts.yml"
DASHBOARD = REPO / "deploy/observability/grafana-dashboard.json"


def test_the_alert_rules_and_the_dashboard_are_well_formed() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}
    assert {"AgentlogSpawnPolicyViolationRateHigh", "AgentlogChildCompletionRateLow"} <= set(alerts)
    assert alerts["AgentlogConcurrentAgentsOverLimit"]["labels"]["severity"] == "P1"
    assert alerts["AgentlogAverageSpawnDepthHigh"]["labels"]["severity"] == "P3"
    assert all(rule["expr"].strip() for group in groups for rule in group["rules"])
    dashboard = json.loads(DASHBOARD.read_text())
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    assert all(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])


def _slo_gauges(env: dict[str, str], schema: str, tmp_path: Path) -> list[tuple[str, dict[str, str], float]]:
    """What ``agentlog slo --serve`` serves once it evaluated the workload of the test above."""
    slo_port = free_port()
    slo = agentlog_command("slo", "--serve", "--interval", "1s", "--schema", schema, "--metrics-port", str(slo_port))
    with running(slo, env, tmp_path / "slo.log"):

        def evaluated() -> list[tuple[str, dict[str, str], float]] | None:
            samples = _scrape_or_none(slo_port) or []
            return samples if metric(samples, "agentlog_slo_value", slo="concurrent_agents") == 2 else None

        samples = eventually(evaluated, "the SLO gauges")
    assert metric(samples, "agentlog_slo_value", slo="spawn_policy_violation_rate") == 0.5
    assert metric(samples, "agentlog_slo_breached", slo="spawn_policy_violation_rate") == 1
    assert metric(samples, "agentlog_slo_breached", slo="concurrent_agents") == 0
    return samples


def _scrape_or_none(port: int) -> list[tuple[str, dict[str, str], float]] | None:
    try:
        return scrape(port)
    except OSError:
        return None
