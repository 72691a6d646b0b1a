"""The metrics move as decisions are made and records projected: scraped from the Prometheus endpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentlog.processors.policy import load_default_policy, to_event
from agentlog.producer import Producer
from agentlog.projections.migrate import migrate
from agentlog.settings import Settings
from tests.support import REPO

from .support import agentlog_command, eventually, free_port, metric, running, scrape, telemetry_env

pytestmark = [pytest.mark.observability, pytest.mark.timeout(300)]


def _agent(env: dict[str, str], *args: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.observability.sdk_agent", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


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

        root = _agent(env, "root", "acme")
        _agent(env, "spawn", "acme", root["root_id"], root["agent_id"])
        _agent(env, "spawn", "acme", root["root_id"], "not-an-agent-of-this-tree")

        def moved() -> list[tuple[str, dict[str, str], float]] | None:
            samples = scrape(gate_port)
            done = metric(samples, "agentlog_decisions_total", processor="agentlog.spawn-gate", record="SpawnDenied")
            active = metric(samples, "agentlog_agents_active", tenant="acme")
            return samples if done >= 1 and active == 2 else None

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


def _scrape_or_none(port: int) -> list[tuple[str, dict[str, str], float]] | None:
    try:
        return scrape(port)
    except OSError:
        return None
