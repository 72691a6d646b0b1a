"""Every benchmark runs to the end on a tiny workload, prints its figures and leaves nothing behind.

The figures themselves are not asserted (timings belong to the benchmarks, not the tests):
only that each script completes as documented, prints every table it promises, and
removes the topics, consumer groups and schemas it created.
"""

from __future__ import annotations

import re
import subprocess
import sys

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from agentlog.settings import Settings
from tests.support import REPO, agentlog_env

pytestmark = pytest.mark.timeout(420)


def leftovers(settings: Settings) -> set[str]:
    """Topics, consumer groups and schemas in this test's scope (the benchmarks nest theirs under it)."""
    prefix = settings.topic_prefix
    scope = "bench_" + "".join(c if c.isalnum() else "_" for c in prefix.lower())
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    topics = {f"topic {t}" for t in admin.list_topics(timeout=10).topics if t.startswith(prefix + "bench-")}
    groups = {
        f"group {g.group_id}" for g in admin.list_consumer_groups().result().valid if g.group_id.startswith(prefix)
    }
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", [scope]).fetchall()
    return topics | groups | {f"schema {name}" for (name,) in rows}


def run_bench(settings: Settings, script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        env=agentlog_env(settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    left = leftovers(settings)
    assert not left, f"{script} left behind {sorted(left)}"
    print(done.stdout)
    return done.stdout


def test_publish_bench(settings: Settings) -> None:
    """bench/publish.py prints the raw and SDK rates, their ratio and the serde table."""
    out = run_bench(settings, "publish.py", "--events", "2000", "--rounds", "2", "--serde-events", "500")
    figures = ("raw confluent-kafka producer", "agentlog SDK", "of ceiling", "building the model", "Avro→model")
    for figure in (*figures, "records signed", "signed / unsigned SDK"):
        assert figure in out


def test_gate_bench(settings: Settings) -> None:
    """bench/gate.py prints the profile, throughput with 1 and 2 workers, latency and memory."""
    out = run_bench(
        settings, "gate.py", "--requests", "1500", "--rate", "200", "--seconds", "2", "--trees", "300",
        "--rounds", "1", "--workers", "2", "--big-tree-leads", "3",
    )  # fmt: skip
    figures = ("decide", "raw pass-through", "spawn gate, 2 workers", "speed-up", "p99", "memory: 300 live trees")
    for figure in (
        *figures,
        "one tree of 601 agents",
        "signed input verified",
        "signed / unsigned input",
        "tracing on / off",
    ):
        assert figure in out


def test_projector_bench(settings: Settings) -> None:
    """bench/projector.py prints throughput (1 and 2 projectors) next to COPY, latency and lineage queries."""
    out = run_bench(
        settings, "projector.py", "--events", "2000", "--latency-seconds", "2", "--forest-roots", "2",
        "--rounds", "1", "--workers", "2",
    )  # fmt: skip
    for figure in ("COPY", "speed-up", "p99", "ancestors", "tracing on / off", "tracing and metrics on"):
        assert figure in out


def test_replay_bench(settings: Settings) -> None:
    """bench/replay.py prints the plain consume and every replay stage, with 1 and 2 decision workers."""
    out = run_bench(settings, "replay.py", "--events", "2000", "--rounds", "1", "--workers", "2")
    for figure in ("plain consume", "export", "verify", "rebuild", "decisions", "speed-up"):
        assert figure in out


def test_sdk_bench(settings: Settings) -> None:
    """bench/sdk.py prints the signal latency next to a plain consumer, and a client's memory with many handles."""
    out = run_bench(
        settings, "sdk.py", "--trees", "3", "--children", "3", "--pace-ms", "10", "--rounds", "1",
        "--handles", "300", "--idle-s", "1", "--beat-ms", "200", "--beat-s", "1",
    )  # fmt: skip
    for figure in (
        "plain consumer poll, own process (ceiling)",
        "handle callback",
        "p99",
        "memory: one client with 300 handles",
        "heartbeats every 200 ms for all of them, 1 s",
        " 0 failed batches",
    ):
        assert figure in out
    assert re.search(r"([1-9][\d,]*) beats/s acknowledged", out), out


def test_missions_bench(settings: Settings) -> None:
    """bench/missions.py prints the facts/s next to the raw pass-through, the dependency-resolution latency next to
    the pass-through's, and the cost of an added edge (raw cycle check and decide; accepted and rejected)."""
    out = run_bench(
        settings, "missions.py", "--trees", "10", "--missions", "8", "--rounds", "1", "--latency-rate", "100",
        "--latency-seconds", "2", "--cycle-missions", "300", "--cycle-edges", "600",
    )  # fmt: skip
    for figure in (
        "raw pass-through (consume → produce, tx)",
        "mission processor, 1 worker (facts/s)",
        "dependency resolution at 100 commands/s",
        "raw pass-through (consume → produce, tx): p99",
        "mission processor, 1 worker: p99",
        "cycle check, raw cycle_if_added: 300 missions growing to 600 hard dependencies",
        "cycle check, decide on a DependencyAdded",
        "accepted, reordered (Pearce-Kelly)",
        "rejected, a cycle",
        "goal: p99 ≤ 100 ms",
        "goal: ≤ 1 ms",
    ):
        assert figure in out
    only = run_bench(settings, "missions.py", "--only", "cycles", "--cycle-missions", "200", "--cycle-edges", "300")
    assert "cycle check" in only and "throughput" not in only and "dependency resolution" not in only


def test_bus_bench(settings: Settings) -> None:
    """bench/bus.py prints the pure parts' cost, messages/s next to the raw pass-through, accepted → inbox latency
    next to the pass-through's, and the memory of open questions."""
    out = run_bench(
        settings, "bus.py", "--trees", "50", "--rounds", "1", "--core-trees", "20", "--latency-rate", "200",
        "--latency-seconds", "2", "--latency-cycles", "1", "--questions", "1000", "--question-trees", "20",
    )  # fmt: skip
    for figure in (
        "where a message's CPU goes in the pure parts",
        "raw pass-through (consume → produce, tx)",
        "bus, 1 worker",
        "goal: ≥ 10,000 messages/s",
        "in the recipient's SDK inbox (Inbox.get)",
        "goal: accepted → in the recipient's inbox p99 ≤ 100 ms",
        "holding them",
        "goal: ≤ 500 MiB with 100,000 open questions",
    ):
        assert figure in out, figure


def test_faust_experiment(settings: Settings) -> None:
    """bench/faust_eos_check.py runs one tiny variant, prints its counts and deletes its topics."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    before = {t for t in admin.list_topics(timeout=10).topics if t.startswith("eos-")}
    out = run_bench(
        settings, "faust_eos_check.py", "--records", "300", "--kills", "1", "--variant", "single", "--sink", "plain",
        "--rate", "0", "--min-gap", "0.2", "--max-gap", "0.5",
    )  # fmt: skip
    assert "RESULT single/plain" in out and "read_committed" in out
    assert {t for t in admin.list_topics(timeout=10).topics if t.startswith("eos-")} <= before


def test_cli_bench(settings: Settings) -> None:
    """bench/cli.py times the bare interpreter, the help, one publish and one tail, and says whether each meets its
    goal."""
    out = run_bench(settings, "cli.py", "--rounds", "2")
    for figure in ("python -c pass", "agentlog --help", "agentlog publish (one event)", "agentlog tail --max 1"):
        assert figure in out
    assert out.count("the goal of") == 3
