"""A collector that is missing, refuses or hangs never blocks or fails the data path."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentlog.processors.policy import load_default_policy, to_event
from agentlog.producer import Producer
from agentlog.settings import Settings

from .support import agent, agentlog_command, free_port, run, running, telemetry_env

pytestmark = [pytest.mark.observability, pytest.mark.timeout(240)]


@pytest.fixture
def hanging_collector() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)  # read nothing, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    server.close()


@pytest.mark.parametrize("collector", ["refusing", "hanging"])
def test_decisions_are_made_and_published_whatever_the_collector_does(
    settings: Settings, tmp_path: Path, collector: str, hanging_collector: str
) -> None:
    endpoint = hanging_collector if collector == "hanging" else f"http://127.0.0.1:{free_port()}"
    with Producer(settings) as producer:
        producer.publish(to_event(load_default_policy(), published_by="tests"))
    # The exporters' own timeout is left at its default (10 s): the data path must not wait for it.
    env = telemetry_env(settings, endpoint, OTEL_EXPORTER_OTLP_TIMEOUT="10", OTEL_METRIC_EXPORT_INTERVAL="500")
    gate = agentlog_command("processors", "run", "--worker-id", "w1", "--log-level", "WARNING")
    with running(gate, env, tmp_path / "gate.log") as worker:
        for _ in range(3):  # each is a process whose exit must not wait for the collector either
            assert agent(env, "root", "acme")["record"] == "RootAdmitted"
        published = run(agentlog_command("publish", "AgentHeartbeat", "--json", json.dumps(_heartbeat())), env)
        assert published.returncode == 0, published.stderr
        assert worker.poll() is None, "the gate still runs"


def _heartbeat() -> dict[str, object]:
    return {"meta": {"tenant_id": "acme", "root_id": "acme/r"}, "agent_id": "acme/r"}
