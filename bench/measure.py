"""What every benchmark shares: processes measured from outside, rounds, figures, clean-up.

Two ways a stage is measured, both from outside the measured code:

- **A service** (the gate, a pass-through, the projector) runs as its own process,
  started by :class:`Service`. The bench waits until the consumer group has assigned
  every partition, starts the clock, and stops it when the committed positions (Kafka
  offsets, or the projector's positions table) reach the end offsets it knows. It polls
  only those small answers, never the topics themselves. CPU is read from ``/proc`` for
  the service's process tree at both ends of the measured span.
- **A job** (a publish run, a replay command, a plain consume) runs as a child process
  of the bench script (:func:`run_job`): the child imports everything, then times only
  the work and reports its wall time, its count and its CPU time (its own and that of
  the workers it waited for, from the kernel's accounting) as one JSON line.

Either way a sampler in the bench process records the resident memory of every process
of the tree every 0.2 s, and a stage is run for several rounds alternating with its
ceiling: a figure is the median of the rounds with their spread (min-max).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConsumerGroupDescription, OffsetSpec

from agentlog import kafka_config
from agentlog.projections import drop_schema as drop_projection_schema
from agentlog.settings import Settings, connection_env
from agentlog.topic_admin import delete_topics, ensure_topics
from agentlog.topics import CATALOGUE

REPO = Path(__file__).resolve().parent.parent
SAMPLE_INTERVAL_S = 0.2


# -- processes ----------------------------------------------------------------------------


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu_s(root: psutil.Process) -> float:
    """CPU seconds (user + system) used so far by a process, its live descendants and those it reaped."""
    total = 0.0
    for proc in _tree(root):
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + (t.children_user + t.children_system if proc is root else 0.0)
    return total


class MemorySampler:
    """Samples the resident memory of a process tree; keeps the peak of each process and of their sum."""

    def __init__(self, root_pid: int, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.root = psutil.Process(root_pid)
        self.interval_s = interval_s
        self.peak_by_pid: dict[int, int] = {}
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        total = 0
        for proc in _tree(self.root):
            try:
                rss = proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            total += rss
            self.peak_by_pid[proc.pid] = max(self.peak_by_pid.get(proc.pid, 0), rss)
        self.peak_total = max(self.peak_total, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def memory(self) -> Memory:
        return Memory(processes=len(self.peak_by_pid), peak_total_mib=self.peak_total / 2**20)


@dataclass(frozen=True)
class Memory:
    """Peak resident memory of a process tree: how many processes, and the peak of their sum."""

    processes: int
    peak_total_mib: float

    def __str__(self) -> str:
        return f"{self.peak_total_mib:,.0f} MiB" + (f" ({self.processes} proc.)" if self.processes > 1 else "")


def agentlog_command(*args: str) -> list[str]:
    """argv of the ``agentlog`` CLI run by this interpreter."""
    return [sys.executable, "-m", "agentlog.cli.main", *args]


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a process that uses ``settings`` (prefix, servers, database, credentials)."""
    return {**os.environ, **connection_env(settings), **extra}


class Service:
    """A long-running process measured from outside: CPU over a span, memory all along."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], label: str, cwd: Path = REPO) -> None:
        """``cwd``: the checkout whose agentlog ``python -m`` runs (another one measures an older commit)."""
        self.label = label
        self.popen = subprocess.Popen(list(argv), env=env, stdout=subprocess.DEVNULL, cwd=cwd)
        self.process = psutil.Process(self.popen.pid)
        self.sampler = MemorySampler(self.popen.pid).start()
        self._cpu_start: float | None = None
        self.cpu_span_s = 0.0

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise SystemExit(f"{self.label} exited with status {self.popen.returncode} during the benchmark")

    def start_span(self) -> None:
        self._cpu_start = tree_cpu_s(self.process)

    def end_span(self) -> None:
        assert self._cpu_start is not None, "end_span() before start_span()"
        self.cpu_span_s = tree_cpu_s(self.process) - self._cpu_start

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        self.sampler.stop()
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def memory(self) -> Memory:
        return self.sampler.memory()


# -- tracing ---------------------------------------------------------------------------------

JAEGER_OTLP = "http://127.0.0.1:4318"
JAEGER_QUERY = "http://127.0.0.1:16686"


def ensure_jaeger() -> str:
    """The OTLP endpoint of a local Jaeger, started (and built once) by deploy/observability/jaeger.sh if none
    answers."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{JAEGER_QUERY}/api/services", timeout=2):
            return JAEGER_OTLP
    except OSError:
        subprocess.run(["bash", str(REPO / "deploy/observability/jaeger.sh"), "up"], check=True)
        return JAEGER_OTLP


def tracing_env(endpoint: str | None, metrics: bool = False) -> dict[str, str]:
    """OTEL_* for a traced process (every span sampled, OTLP to ``endpoint``), or none of them (None); with
    ``metrics``, every instrument recorded too and served on a Prometheus endpoint (Jaeger takes no metrics)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTLOG_METRICS_PORT"))}
    if endpoint is not None:
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_TRACES_SAMPLER="always_on", OTEL_METRICS_EXPORTER="none")
    if metrics:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            env["AGENTLOG_METRICS_PORT"] = str(probe.getsockname()[1])
    return env


def traceparents(count: int) -> list[list[tuple[str, bytes]]]:
    """A ``traceparent`` header of its own trace for each of ``count`` records (the worst case: nothing shared)."""
    return [[("traceparent", f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01".encode())] for _ in range(count)]


@dataclass(frozen=True)
class TracingContender:
    """One way of running a stage in the tracing comparison: its environment and the checkout that runs."""

    label: str
    env: dict[str, str]
    checkout: Path
    series: Series


def tracing_contenders(stage: str, endpoint: str, baseline: Path | None) -> list[TracingContender]:
    """``stage`` with tracing off, on (every span sampled) and on with metrics; first, with ``baseline``, the stage
    of that checkout (tracing off: what it cost before)."""
    rows = [
        (f"{stage}, tracing off", tracing_env(None), REPO),
        (f"{stage}, tracing on (100 % sampled)", tracing_env(endpoint), REPO),
        (f"{stage}, tracing and metrics on", tracing_env(endpoint, metrics=True), REPO),
    ]
    if baseline is not None:
        rows.insert(0, (f"{stage} at {baseline.name} (before)", tracing_env(None), baseline))
    return [TracingContender(label, env, checkout, Series(label)) for label, env, checkout in rows]


def print_tracing(title: str, contenders: Sequence[TracingContender], baseline: Path | None) -> None:
    """The comparison's table (against tracing off) and its ratios per round, with the goals."""
    first, *rest = contenders
    before = first if baseline is not None else None
    off, on, with_metrics = rest if before is not None else contenders
    print_table(title, [c.series for c in contenders], ceiling=off.series)
    print(per_round("tracing on / off", on.series, off.series, "≥ 90 %"))
    print(per_round("tracing and metrics on / off", with_metrics.series, off.series, "(none)"))
    if before is not None:
        print(per_round(f"tracing off / {before.checkout.name}", off.series, before.series, "≥ 98 %"))


def per_round(label: str, numerator: Series, denominator: Series, goal: str) -> str:
    """One line: the ratio of two contenders in each round, and its median."""
    ratios = [n / d for n, d in zip(numerator.values, denominator.values, strict=False) if d]
    rounds = ", ".join(f"{r:.0%}" for r in ratios)
    return f"  {label}: {statistics.median(ratios):.0%} (per round {rounds}); goal {goal}" if ratios else ""


def stop_all(services: Iterable[Service]) -> None:
    for service in services:
        service.stop()


@dataclass(frozen=True)
class JobResult:
    """What a job reported of itself, and the memory its process tree reached."""

    seconds: float
    count: int
    cpu_s: float
    memory: Memory
    extra: dict[str, Any]
    postgres_cpu_s: float | None = None
    """CPU of the whole PostgreSQL server (every backend, reaped ones included) while the job ran."""


def run_job(
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    timeout_s: float = 3600,
    postgres: psutil.Process | None = None,
) -> JobResult:
    """Run a job child (it ends with :meth:`JobClock.report`'s JSON line) and sample its memory.

    With ``postgres`` (see :func:`postgres_server`), the server's CPU over the job's whole
    run is reported too: the job's own backends are among its children.
    """
    popen = subprocess.Popen(list(argv), env=env, stdout=subprocess.PIPE, cwd=REPO, text=True)
    sampler = MemorySampler(popen.pid).start()
    server_before = tree_cpu_s(postgres) if postgres is not None else None
    try:
        out, _ = popen.communicate(timeout=timeout_s)
    finally:
        sampler.stop()
    server_cpu = tree_cpu_s(postgres) - server_before if postgres is not None and server_before is not None else None
    if popen.returncode != 0:
        raise SystemExit(f"job {' '.join(argv[1:4])} … exited with status {popen.returncode}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"job {' '.join(argv[1:4])} … printed no result line")
    result = json.loads(lines[-1])
    return JobResult(
        seconds=result.pop("seconds"),
        count=result.pop("count"),
        cpu_s=result.pop("cpu_s"),
        memory=sampler.memory(),
        extra=result,
        postgres_cpu_s=server_cpu,
    )


def postgres_server(settings: Settings) -> psutil.Process | None:
    """The local PostgreSQL server process (the parent of every backend), or ``None`` if it is remote."""
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    try:
        server = psutil.Process(int(row[0]) if row else -1).parent()
    except (psutil.NoSuchProcess, ValueError):
        return None
    return server if server is not None and "postgres" in server.name() else None


class JobClock:
    """Inside a job: wall time and CPU time (this process and the children it reaped) of the work."""

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = self._cpu_now()

    @staticmethod
    def _cpu_now() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def report(self, count: int, **extra: object) -> None:
        """Print the job's result line (the last line of its output)."""
        seconds, cpu_s = time.perf_counter() - self._wall, self._cpu_now() - self._cpu
        print(json.dumps({"seconds": seconds, "count": count, "cpu_s": cpu_s, **extra}, default=str), flush=True)


# -- Kafka positions ----------------------------------------------------------------------


def admin(settings: Settings) -> AdminClient:
    return AdminClient(kafka_config.base(settings))


def partitions(client: AdminClient, topics: Iterable[str]) -> list[TopicPartition]:
    metadata = client.list_topics(timeout=10)
    return [TopicPartition(t, p) for t in topics for p in sorted(metadata.topics[t].partitions)]


def end_offsets(client: AdminClient, tps: Sequence[TopicPartition]) -> dict[tuple[str, int], int]:
    """The high watermark of every partition (inputs produced without transactions end there)."""
    futures = client.list_offsets({TopicPartition(tp.topic, tp.partition): OffsetSpec.latest() for tp in tps})
    return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}


def committed(client: AdminClient, group: str, tps: Sequence[TopicPartition]) -> dict[tuple[str, int], int]:
    """The group's committed offsets (-1 where nothing is committed yet)."""
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(tp.topic, tp.partition) for tp in tps])
    answer = client.list_consumer_group_offsets([request])[group].result()
    return {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions}


def describe_group(client: AdminClient, group: str) -> ConsumerGroupDescription | None:
    """The group as the coordinator sees it; ``None`` while the coordinator is not ready or the group not created."""
    try:
        return client.describe_consumer_groups([group])[group].result()
    except KafkaException:
        return None


def wait_assigned(
    client: AdminClient,
    group: str,
    expected_partitions: int,
    members: int = 1,
    services: Sequence[Service] = (),
    timeout_s: float = 120.0,
) -> float:
    """Wait until ``group`` is stable with ``members`` members holding ``expected_partitions``; return the time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for service in services:
            service.check_alive()
        description = describe_group(client, group)
        if description is None:
            time.sleep(0.1)
            continue
        held = sum(len(m.assignment.topic_partitions) for m in description.members if m.assignment)
        if (
            description.state == ConsumerGroupState.STABLE
            and len(description.members) == members
            and held >= expected_partitions
        ):
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"group {group} did not assign {expected_partitions} partitions to {members} members in time")


def wait_until(
    done: Callable[[], bool], services: Sequence[Service] = (), timeout_s: float = 900.0, poll_s: float = 0.1
) -> float:
    """Poll ``done`` until it holds; return the time it first held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return time.monotonic()
        for service in services:
            service.check_alive()
        time.sleep(poll_s)
    raise SystemExit(f"timed out after {timeout_s:.0f}s waiting for the stage to finish")


def caught_up(client: AdminClient, group: str, ends: dict[tuple[str, int], int]) -> Callable[[], bool]:
    """A check that ``group`` has committed up to ``ends`` on every partition."""
    tps = [TopicPartition(t, p) for t, p in ends]

    def check() -> bool:
        try:
            positions = committed(client, group, tps)
        except KafkaException:  # coordinator moving or loading: ask again next time
            return False
        return all(positions.get(tp, -1) >= end for tp, end in ends.items())

    return check


def nonempty_ends(client: AdminClient, tps: Sequence[TopicPartition]) -> dict[tuple[str, int], int]:
    """End offsets of the partitions that hold records (a consumer commits nothing for the others)."""
    return {tp: end for tp, end in end_offsets(client, tps).items() if end > 0}


def wait_committed(
    client: AdminClient, group: str, tps: Sequence[TopicPartition], services: Sequence[Service] = ()
) -> float:
    """Wait until ``group`` has committed every record now on ``tps``; return the time it had."""
    return wait_until(caught_up(client, group, nonempty_ends(client, tps)), services)


# -- the projector's positions ------------------------------------------------------------


def projector_positions(conn: psycopg.Connection[Any]) -> dict[tuple[str, int], int]:
    """The next offsets the projector has committed, in the schema of ``conn``."""
    rows = conn.execute("SELECT topic, partition, next_offset FROM projector_positions").fetchall()
    return {(topic, partition): offset for topic, partition, offset in rows}


def projected(conn: psycopg.Connection[Any], ends: dict[tuple[str, int], int]) -> Callable[[], bool]:
    """A check that the projector's positions have reached ``ends`` on every partition."""

    def check() -> bool:
        positions = projector_positions(conn)
        return all(positions.get(where, 0) >= end for where, end in ends.items())

    return check


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) of a local process; ``None`` if it is not on this machine (or gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def drop_schema(settings: Settings, schema: str) -> None:
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        drop_projection_schema(conn, schema)


# -- fixtures -----------------------------------------------------------------------------


@dataclass
class Scratch:
    """Topics, consumer groups and schemas a benchmark created; removed by :meth:`clean` unless kept."""

    base: Settings
    keep: bool = False
    prefixes: list[str] = field(default_factory=list)
    extra_topics: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)

    def settings(self, label: str, *, create: bool = True) -> Settings:
        """Settings with a fresh topic prefix (and the catalogue's topics created).

        The prefix nests under the configured one, so that a benchmark run with
        ``AGENTLOG_TOPIC_PREFIX`` set (as the smoke tests do) stays inside it.
        """
        prefix = f"{self.base.topic_prefix}bench-{label}-{uuid.uuid4().hex[:6]}."
        self.prefixes.append(prefix)
        scoped = self.base.model_copy(update={"topic_prefix": prefix})
        if create:
            ensure_topics(scoped)
        return scoped

    def group(self, name: str) -> str:
        """A consumer group name, scoped like the topics and removed at the end."""
        scoped = f"{self.base.topic_prefix}bench-{name}-{uuid.uuid4().hex[:6]}"
        self.groups.append(scoped)
        return scoped

    def schema(self, label: str) -> str:
        """A PostgreSQL schema name (not created), scoped like the topics and dropped at the end."""
        name = f"{self.schema_prefix}{label}_{uuid.uuid4().hex[:6]}"
        self.schemas.append(name)
        return name

    @property
    def schema_prefix(self) -> str:
        scope = "".join(c if c.isalnum() else "_" for c in self.base.topic_prefix.lower())
        return f"bench_{scope}"

    def clean(self) -> None:
        if self.keep:
            print(f"\nkept: topic prefixes {self.prefixes}, schemas {self.schemas}")
            return
        client = admin(self.base)
        existing = set(client.list_topics(timeout=10).topics)
        doomed = [t for t in existing if any(t.startswith(p) for p in self.prefixes)] + [
            t for t in self.extra_topics if t in existing
        ]
        if doomed:
            delete_topics(self.base, doomed)
        self._delete_groups(client)
        for schema in self.schemas:
            drop_schema(self.base, schema)

    def _delete_groups(self, client: AdminClient, patience_s: float = 20.0) -> None:
        """Delete our consumer groups; static members linger for a session timeout after they stop."""
        deadline = time.monotonic() + patience_s
        while True:
            groups = {g.group_id for g in client.list_consumer_groups().result().valid}
            ours = [g for g in groups if g in self.groups or any(g.startswith(p) for p in self.prefixes)]
            if not ours:
                return
            failed = []
            for group, future in client.delete_consumer_groups(ours).items():
                try:
                    future.result()
                except KafkaException:
                    failed.append(group)
            if not failed:
                return
            if time.monotonic() > deadline:
                print(f"(consumer groups left behind, still in use: {', '.join(sorted(failed))})")
                return
            time.sleep(1)


def catalogue_topics(settings: Settings) -> list[str]:
    return [settings.topic_prefix + spec.name for spec in CATALOGUE]


# -- figures ------------------------------------------------------------------------------


@dataclass
class Series:
    """One figure over several rounds."""

    label: str
    unit: str = "/s"
    values: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    """CPU µs per event of the measured process(es), per round."""
    backend_cpu_us: list[float] = field(default_factory=list)
    """CPU µs per event of the PostgreSQL backend(s), per round (where one is involved)."""
    memory: list[Memory] = field(default_factory=list)

    def add(
        self, value: float, cpu_us: float | None = None, memory: Memory | None = None, backend_us: float | None = None
    ) -> None:
        self.values.append(value)
        if cpu_us is not None:
            self.cpu_us.append(cpu_us)
        if backend_us is not None:
            self.backend_cpu_us.append(backend_us)
        if memory is not None:
            self.memory.append(memory)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


def spread(values: Sequence[float], fmt: str = ",.0f") -> str:
    if len(values) < 2:
        return ""
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def print_table(title: str, rows: Sequence[Series], ceiling: Series | None = None, value_fmt: str = ",.0f") -> None:
    """Median, spread, ratio to the ceiling (median of per-round ratios), CPU per event and peak memory."""
    print(f"\n{title}")
    header = f"  {'':<44}{'median':>12}{'spread (min-max)':>24}{'of ceiling':>18}{'CPU µs/ev':>11}{'PG µs/ev':>10}"
    print(header + f"{'peak RSS':>22}")
    for row in rows:
        ratio = ""
        if ceiling is not None and row is not ceiling and ceiling.values:
            ratios = [v / c for v, c in zip(row.values, ceiling.values, strict=False) if c]
            if ratios:
                ratio = f"{statistics.median(ratios):.0%}"
                if len(ratios) > 1:
                    ratio += f" ({min(ratios):.0%}-{max(ratios):.0%})"
        cpu = f"{statistics.median(row.cpu_us):.0f}" if row.cpu_us else "-"
        backend = f"{statistics.median(row.backend_cpu_us):.0f}" if row.backend_cpu_us else "-"
        memory = str(max(row.memory, key=lambda m: m.peak_total_mib)) if row.memory else "-"
        value = f"{row.median:{value_fmt}}{row.unit}"
        print(
            f"  {row.label:<44}{value:>12}{spread(row.values, value_fmt):>24}{ratio:>18}{cpu:>11}{backend:>10}"
            f"{memory:>22}"
        )


def speedup(label: str, many: Series, one: Series) -> str:
    ratios = [m / o for m, o in zip(many.values, one.values, strict=False) if o]
    text = f"{statistics.median(ratios):.2f}x"
    if len(ratios) > 1:
        text += f" ({min(ratios):.2f}-{max(ratios):.2f}x)"
    return f"  speed-up, {label}: {text} against one worker in the same rounds"


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def pct(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered), math.ceil(q * len(ordered))) - 1)]


def paced(settings: Settings, records: Sequence[tuple[str, bytes, bytes]], rate: int) -> float:
    """Produce ``(topic, key, value)`` records (topics unprefixed) at ``rate`` per second, in 10 ms steps; returns
    the seconds producing took (before the final flush)."""
    producer = Producer(kafka_config.producer(settings))
    step = max(rate // 100, 1)
    started = time.monotonic()
    for i in range(0, len(records), step):
        for topic, key, value in records[i : i + step]:
            producer.produce(settings.topic_prefix + topic, value, key)
        producer.poll(0)
        pause = started + (i + step) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    took = time.monotonic() - started
    if producer.flush(60):
        raise SystemExit("could not produce the paced load")
    return took


def parts_of(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type for ``--only a,b``: the named parts, each one of ``choices``."""

    def parts(value: str) -> list[str]:
        chosen = [p.strip() for p in value.split(",") if p.strip()]
        if not chosen or any(p not in choices for p in chosen):
            raise argparse.ArgumentTypeError(f"choose among {', '.join(choices)} (comma-separated)")
        return chosen

    return parts
