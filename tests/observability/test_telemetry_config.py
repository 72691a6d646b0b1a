"""Telemetry set up from the OTEL_* variables: off unless configured, nothing imported when off, clear errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.support import REPO

from .support import agentlog_command

pytestmark = pytest.mark.timeout(120)

_PROBE = """
import sys
from agentlog import telemetry, tracing
state = telemetry.configure("probe")
print(state.traces, state.metrics, tracing.enabled(), "opentelemetry.sdk" in sys.modules)
"""


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTLOG_METRICS"))}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**clean, **env}, cwd=REPO, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_nothing_is_set_up_or_imported_without_configuration() -> None:
    assert _probe() == "[] [] False False"


def test_an_endpoint_turns_on_otlp_for_traces_and_metrics() -> None:
    assert _probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1") == "['otlp'] ['otlp'] True True"


def test_the_sdk_can_be_disabled_whatever_else_is_set() -> None:
    assert _probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1", OTEL_SDK_DISABLED="true") == "[] [] False False"


def test_one_signal_can_be_turned_off() -> None:
    out = _probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1", OTEL_METRICS_EXPORTER="none")
    assert out == "['otlp'] [] True True"


def test_an_unknown_exporter_is_exit_2_naming_the_variable() -> None:
    done = subprocess.run(
        agentlog_command("publish", "AgentHeartbeat", "--json", "{}"),
        env={**os.environ, "OTEL_TRACES_EXPORTER": "zipkin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "OTEL_TRACES_EXPORTER='zipkin'" in done.stderr and "otlp" in done.stderr


def test_a_metrics_port_in_use_is_exit_2_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            agentlog_command("processors", "run", "--metrics-port", str(port)),
            env={**os.environ, "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1"},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"cannot serve metrics on port {port}" in done.stderr
