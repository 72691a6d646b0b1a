"""Running agentlog's processes with telemetry on, and reading what Jaeger and the Prometheus endpoints hold."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agentlog.settings import Settings
from tests.support import REPO, agentlog_env

JAEGER_QUERY = "http://127.0.0.1:16686"
JAEGER_OTLP_HTTP = "http://127.0.0.1:4318"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def telemetry_env(settings: Settings, endpoint: str | None = JAEGER_OTLP_HTTP, **extra: str) -> dict[str, str]:
    """The environment of an agentlog process pointed at ``settings``, exporting to ``endpoint`` (None: nowhere)."""
    env = {k: v for k, v in agentlog_env(settings).items() if not k.startswith("OTEL_")}
    if endpoint is not None:
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",  # spans leave within a moment, not after the default 5 s
            OTEL_METRIC_EXPORT_INTERVAL="1000",
            OTEL_EXPORTER_OTLP_TIMEOUT="2",
        )
    env.update(extra)
    return env


def agentlog_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "agentlog.cli.main", *args]


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a short-lived command to its end (two minutes at most)."""
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def agent(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run one step of :mod:`tests.observability.sdk_agent` and return what it printed."""
    done = run([sys.executable, "-m", "tests.observability.sdk_agent", *args], env)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@contextmanager
def running(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running agentlog process, stopped by SIGTERM at the end (SIGKILL if it does not stop)."""
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)


def eventually(probe: Callable[[], T | None], what: str, timeout_s: float = 90.0) -> T:
    """Poll ``probe`` until it returns something other than None (the test's own timeout bounds it too)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.3)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@dataclass(frozen=True)
class Span:
    """A span as Jaeger's query API returns it."""

    trace_id: str
    span_id: str
    service: str
    operation: str
    parent_id: str | None
    tags: dict[str, Any]
    links: list[str]
    """Trace ids of the span's FOLLOWS_FROM references (OpenTelemetry links)."""


def traces(service: str, **tags: str) -> list[list[Span]]:
    """Jaeger's traces with a span of ``service`` that has ``tags``, each as its spans."""
    query = {"service": service, "limit": "50", "lookback": "1h"}
    if tags:
        query["tags"] = json.dumps(tags)
    data = get_json(f"{JAEGER_QUERY}/api/traces?{urllib.parse.urlencode(query)}")["data"] or []
    return [_spans(trace) for trace in data]


def trace(trace_id: str) -> list[Span] | None:
    """One trace by id (None while Jaeger does not have it)."""
    try:
        data = get_json(f"{JAEGER_QUERY}/api/traces/{trace_id}")["data"]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise
    return _spans(data[0]) if data else None


def _spans(trace: dict[str, Any]) -> list[Span]:
    processes = trace["processes"]
    spans = []
    for span in trace["spans"]:
        parent = next((r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"), None)
        links = [r["traceID"] for r in span["references"] if r["refType"] == "FOLLOWS_FROM"]
        tags = {tag["key"]: tag["value"] for tag in span["tags"]}
        spans.append(
            Span(
                span["traceID"],
                span["spanID"],
                processes[span["processID"]]["serviceName"],
                span["operationName"],
                parent,
                tags,
                links,
            )
        )
    return spans


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    """The samples a Prometheus endpoint serves: name, labels, value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            labels = dict(_LABEL.findall(match[2] or ""))
            samples.append((match[1], labels, float(match[3])))
    return samples


def metric(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 when there is none)."""
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == want for k, want in labels.items()))
