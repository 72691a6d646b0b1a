"""Projector benchmark: throughput next to a plain COPY, latency at a fixed load, lineage queries.

Everything is measured from outside the projector, which runs as its own process
(``agentlog projector run``, or this script's hidden latency child) against the same
broker and database as its ceiling, in several rounds (``--rounds``); a figure is the
median of the rounds with their spread. The harness is :mod:`bench.measure`.

1. **Throughput.** A synthetic forest (lifecycle, decisions, handoffs; 73 events per tree
   of 13 agents) is published once to fresh topics. In every round, each into a fresh
   migrated schema:

   a. one projector process projects it (decode, audit chain, lineage merge, one
      transaction per batch);
   b. ``--workers`` processes of one consumer group project it into one schema, for the
      speed-up against one process in the same rounds;
   c. the ceiling: the very same audit rows (read back once from the first round's
      schema) written with a plain binary ``COPY`` into a table of the same shape with the
      same indexes, and into one without indexes.

   The clock starts once the group is stable with every partition assigned and stops when
   the committed positions — the schema's ``projector_positions`` table, polled every
   0.1 s with one small query — reach the end offsets of every partition; only the
   events committed in between count. No worker can start before the others have joined:
   the positions table is locked until they have, so a worker that is assigned partitions
   waits to read its positions (the broker assigns at once, with no initial delay). CPU is
   that of the projector process tree (``/proc``, via psutil) and of its PostgreSQL
   backends (``/proc/<pid>/stat``; found in ``pg_stat_activity`` by the client ports of
   the tree's connections), both read at the two ends of the span; memory is the peak
   resident set, sampled throughout. The ceiling's CPU is that of the bench process (the
   ``COPY`` client) and of its own backend.
2. **Latency** at a fixed 1,000 events/s, produced by the bench: event creation (its
   ``occurred_at``, set when it is sent) → the commit of the batch holding it (rows
   visible), recorded by the projector child after each commit on the same machine
   clock, after a short warm-up; p50, p99 and max per round.
3. **Lineage queries** on a forest of ~100,000 agents (90 trees, fanout 10, depth 3;
   written through the projector's own writer, in the bench process): the subtree of a
   root (1,111 agents), ancestors and path of a leaf, now and as of a past moment.

Every topic, consumer group and schema is created fresh and removed at the end (unless
``--keep``). Prints figures; asserts nothing.

    python bench/projector.py [--events 50000] [--latency-seconds 10] [--forest-roots 90]
                              [--skip throughput tracing latency lineage] [--baseline WORKTREE]
                              [--rounds 3] [--workers 2] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
from confluent_kafka import ConsumerGroupState, TopicPartition
from confluent_kafka.admin import AdminClient
from psycopg import sql
from psycopg.types.json import set_json_dumps

from agentlog import events as ev
from agentlog.producer import Producer
from agentlog.projections import audit_chain
from agentlog.projections.batch import AUDIT_COLUMNS, Batch, PartitionState, build_batch
from agentlog.projections.db import Conn, connect
from agentlog.projections.lineage import Lineage
from agentlog.projections.migrate import migrate
from agentlog.projections.projector import Projector, ProjectorOptions
from agentlog.projections.workload import ForestShape, forest
from agentlog.projections.writer import AUDIT_TYPES, BatchWriter
from agentlog.records import Record
from agentlog.serde import Serde
from agentlog.settings import Settings, connection_env
from agentlog.topics import key_of, topic_of
from bench import measure

EVENTS_PER_TREE = 73
LATENCY_RATE = 1000
"""Events per second of the latency load."""
WARM_UP_TREES = 1
STAGE_TIMEOUT_S = 900.0
REBALANCE_NOTICE_S = 1.25
"""A heartbeat interval and a margin: the projector heartbeats every second (its default session timeout / 10)."""
OCCURRED_AT = AUDIT_COLUMNS.index("occurred_at")
Ends = dict[tuple[str, int], int]
"""End offset of every non-empty partition."""


# -- the projector's PostgreSQL side ----------------------------------------------------------


def backends_cpu_s(pids: Sequence[int]) -> float | None:
    """CPU seconds of the PostgreSQL backends ``pids``; ``None`` if none is on this machine."""
    times = [t for t in (measure.process_cpu_s(pid) for pid in pids) if t is not None]
    return sum(times) if times else None


def service_backends(conn: Conn, services: Sequence[measure.Service], app_name: str) -> list[int]:
    """Backend pids of the PostgreSQL connections of the services' process trees.

    Found by client port. ``app_name`` (the services' ``PGAPPNAME``) would do for connections that
    do not name themselves, but the projector's writer does: ``agentlog-projector:<schema>``, which
    libpq prefers to the environment and PostgreSQL cuts at 63 bytes.
    """
    pids = {p.pid for s in services for p in [s.process, *s.process.children(recursive=True)]}
    ports = [
        c.laddr.port
        for c in psutil.net_connections("tcp")
        if c.pid in pids and c.raddr and c.raddr.port == conn.info.port
    ]
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s) OR application_name = %s", (ports, app_name)
    ).fetchall()
    return [int(pid) for (pid,) in rows]


@contextmanager
def positions_locked(conn: Conn) -> Iterator[None]:
    """Hold the positions table: a projector assigned partitions waits in its callback to read them."""
    with conn.transaction():
        conn.execute("LOCK TABLE projector_positions IN ACCESS EXCLUSIVE MODE")
        yield


def wait_joined(
    client: AdminClient, group: str, members: int, services: Sequence[measure.Service], timeout_s: float = 120.0
) -> None:
    """Wait until ``members`` members have joined ``group`` and each of them knows the assignment is not final.

    Members that joined together are assigned together (the group is stable at once); a member that was
    assigned earlier hears of the rebalance the later ones caused at its next heartbeat.
    """
    deadline = time.monotonic() + timeout_s
    seen: float | None = None
    while time.monotonic() < deadline:
        for service in services:
            service.check_alive()
        description = measure.describe_group(client, group)
        if description is None:
            time.sleep(0.1)
            continue
        if len(description.members) >= members:
            if description.state == ConsumerGroupState.STABLE:
                return
            seen = seen or time.monotonic()
            if time.monotonic() - seen >= REBALANCE_NOTICE_S:
                return
        time.sleep(0.05)
    raise SystemExit(f"{members} projectors did not join group {group} in time")


# -- one measured span ------------------------------------------------------------------------


@dataclass(frozen=True)
class SpanResult:
    """What happened between the two ends of a span."""

    seconds: float
    events: int
    """Events committed during the span."""
    cpu_s: float
    backend_cpu_s: float | None
    memory: measure.Memory | None = None
    before: int = 0
    """Events already committed when the span started."""

    def add_to(self, series: measure.Series, value: float | None = None) -> None:
        """Add ``value`` (by default the rate: events per second) with the CPU per event and the memory."""
        backend = None if self.backend_cpu_s is None else self.backend_cpu_s / self.events * 1e6
        rate = self.events / self.seconds
        series.add(rate if value is None else value, self.cpu_s / self.events * 1e6, self.memory, backend)


class Span:
    """CPU of services and their PostgreSQL backends, and events committed, from :meth:`start` to :meth:`end`."""

    def __init__(self, services: Sequence[measure.Service], conn: Conn, backends: Sequence[int]) -> None:
        self.services = services
        self.conn = conn
        self.backends = backends
        self._started = 0.0
        self._backend_cpu: float | None = None
        self._committed = 0

    def start(self) -> Span:
        self._started = time.monotonic()
        for service in self.services:
            service.start_span()
        self._backend_cpu = backends_cpu_s(self.backends)
        self._committed = sum(measure.projector_positions(self.conn).values())
        return self

    def end(self, done: float) -> SpanResult:
        """End the span that the stage finished at ``done`` (a monotonic time)."""
        for service in self.services:
            service.end_span()
        backend_now = backends_cpu_s(self.backends)
        events = sum(measure.projector_positions(self.conn).values()) - self._committed
        if events <= 0:
            raise SystemExit("no event was committed during the span (all before it started?): use more --events")
        backend = None if backend_now is None or self._backend_cpu is None else backend_now - self._backend_cpu
        return SpanResult(
            seconds=done - self._started,
            events=events,
            cpu_s=sum(s.cpu_span_s for s in self.services),
            backend_cpu_s=backend,
            memory=combined_memory(self.services),
            before=self._committed,
        )


def combined_memory(services: Sequence[measure.Service]) -> measure.Memory:
    """The processes of several services, and the sum of their peaks."""
    memories = [s.memory() for s in services]
    return measure.Memory(sum(m.processes for m in memories), sum(m.peak_total_mib for m in memories))


@contextmanager
def running(
    argvs: Sequence[Sequence[str]], env: dict[str, str], label: str, checkout: Path = measure.REPO
) -> Iterator[list[measure.Service]]:
    """Services started from ``argvs`` (in ``checkout``: the agentlog that runs), stopped on the way out."""
    services: list[measure.Service] = []
    try:
        for i, argv in enumerate(argvs):
            services.append(measure.Service(argv, env, f"{label} {i + 1}/{len(argvs)}", cwd=checkout))
        yield services
    finally:
        measure.stop_all(services)


# -- fixtures ---------------------------------------------------------------------------------


def fresh_schema(scratch: measure.Scratch, settings: Settings, label: str) -> str:
    """A new migrated schema, dropped by ``scratch``."""
    schema = scratch.schema(label)
    migrate(settings, schema)
    return schema


@dataclass(frozen=True)
class Topics:
    """A fresh topic prefix with the catalogue's topics, and what the projectors of its stages are named."""

    scratch: measure.Scratch
    settings: Settings
    client: AdminClient
    partitions: list[TopicPartition]
    """Every partition of every catalogue topic: what a projector's group is assigned."""

    @classmethod
    def fresh(cls, scratch: measure.Scratch, label: str) -> Topics:
        settings = scratch.settings(label)
        client = measure.admin(settings)
        return cls(scratch, settings, client, measure.partitions(client, measure.catalogue_topics(settings)))

    def ends(self) -> Ends:
        return measure.nonempty_ends(self.client, self.partitions)

    def schema(self, label: str) -> str:
        return fresh_schema(self.scratch, self.settings, label)

    def names(self) -> tuple[str, str]:
        """A fresh consumer group and PostgreSQL application name for the projectors of a stage."""
        return self.scratch.group("projector"), f"bench-projector-{uuid.uuid4().hex[:8]}"


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def timed(action: Callable[[], object], repeat: int = 1) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


# -- 1. throughput ----------------------------------------------------------------------------


def publish_forest(scratch: measure.Scratch, events: int) -> tuple[Topics, Ends]:
    topics = Topics.fresh(scratch, "proj-tp")
    workload = forest(ForestShape(roots=max(1, events // EVENTS_PER_TREE)))
    with Producer(topics.settings) as producer:
        seconds = timed(lambda: producer.publish_many(workload))[0]
    ends = topics.ends()
    print(f"published {len(workload):,} events in {seconds:.1f}s to {len(ends)} of {len(topics.partitions)} partitions")
    if sum(ends.values()) != len(workload):
        print(f"  (the end offsets add up to {sum(ends.values()):,}, not {len(workload):,})")
    return topics, ends


def project(
    topics: Topics,
    ends: Ends,
    workers: int,
    base_env: dict[str, str] | None = None,
    checkout: Path = measure.REPO,
) -> tuple[SpanResult, str]:
    """``workers`` projector processes of one group project the topics into a fresh schema (``base_env``: the
    environment to start from, OTEL_* among it; ``checkout``: the agentlog that runs)."""
    schema = topics.schema(f"proj_{workers}w")
    group, app_name = topics.names()
    argv = measure.agentlog_command("projector", "run", "--schema", schema, "--group", group)
    env = {**(base_env if base_env is not None else os.environ), **connection_env(topics.settings)}
    env["PGAPPNAME"] = app_name
    with (
        connect(topics.settings, schema, autocommit=True) as conn,
        running([argv] * workers, env, "projector", checkout) as services,
    ):
        with positions_locked(conn):
            wait_joined(topics.client, group, workers, services)
        measure.wait_assigned(topics.client, group, len(topics.partitions), workers, services)
        span = Span(services, conn, service_backends(conn, services, app_name)).start()
        result = span.end(measure.wait_until(measure.projected(conn, ends), services, STAGE_TIMEOUT_S))
    if result.before:
        print(f"  ({result.before:,} events were committed before the span started; not counted)")
    return result, schema


def read_audit_rows(conn: Conn, schema: str) -> list[tuple[Any, ...]]:
    """The audit rows of ``schema`` as the projector wrote them (JSON as its text)."""
    as_written = [
        sql.SQL("{}::text").format(sql.Identifier(c)) if c in ("value", "headers") else sql.Identifier(c)
        for c in AUDIT_COLUMNS
    ]
    query = sql.SQL("SELECT {} FROM {}.audit_log").format(sql.SQL(", ").join(as_written), sql.Identifier(schema))
    return conn.execute(query).fetchall()


def copy_rows(conn: Conn, target: sql.Composed, rows: list[tuple[Any, ...]]) -> SpanResult:
    """Binary ``COPY`` of ``rows`` into ``target`` in one transaction, with the CPU of the bench and its backend."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        target, sql.SQL(", ").join(sql.Identifier(c) for c in AUDIT_COLUMNS)
    )
    backend_before, client_before, started = (
        measure.process_cpu_s(conn.info.backend_pid),
        time.process_time(),
        time.monotonic(),
    )
    with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as out:
        out.set_types(AUDIT_TYPES)
        for row in rows:
            out.write_row(row)
    seconds, client = time.monotonic() - started, time.process_time() - client_before
    backend_after = measure.process_cpu_s(conn.info.backend_pid)
    backend = None if backend_before is None or backend_after is None else backend_after - backend_before
    return SpanResult(seconds, len(rows), client, backend)


def ceiling(
    conn: Conn, schema: str, source: str, rows: list[tuple[Any, ...]], series: measure.Series, *, indexes: bool
) -> None:
    """One round of the ceiling: ``rows`` copied into a fresh table shaped like ``source``'s audit log."""
    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(f"audit_{uuid.uuid4().hex[:6]}"))
    like = " INCLUDING ALL" if indexes else ""
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE {}.audit_log" + like + ")").format(target, sql.Identifier(source)))
    copy_rows(conn, target, rows).add_to(series)
    conn.execute(sql.SQL("DROP TABLE {}").format(target))


def throughput(scratch: measure.Scratch, events: int, rounds: int, workers: int) -> None:
    topics, ends = publish_forest(scratch, events)
    one = measure.Series("projector, 1 process")
    many = measure.Series(f"projector, {workers} processes (one group)")
    indexed = measure.Series("plain binary COPY, same indexes (ceiling)")
    bare = measure.Series("plain binary COPY, no indexes")
    ceiling_schema = scratch.schema("proj_ceiling")
    rows: list[tuple[Any, ...]] = []
    with connect(topics.settings, autocommit=True) as conn:
        set_json_dumps(lambda text: text, context=conn)  # JSON values are copied as the text read back
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(ceiling_schema)))
        for r in range(rounds):
            result, source = project(topics, ends, 1)
            result.add_to(one)
            rows = rows or read_audit_rows(conn, source)
            project(topics, ends, workers)[0].add_to(many)
            for series, indexes in ((indexed, True), (bare, False)):
                ceiling(conn, ceiling_schema, source, rows, series, indexes=indexes)
            print(
                f"  round {r + 1}: 1 process {one.values[-1]:,.0f}/s, {workers} processes {many.values[-1]:,.0f}/s,"
                f" COPY with indexes {indexed.values[-1]:,.0f}/s"
            )
    measure.print_table(
        f"Throughput: {sum(ends.values()):,} events, {plural(rounds, 'round')}"
        " (CPU: of the projector processes, for COPY of the bench; PG: of their backends)",
        [one, many, indexed, bare],
        ceiling=indexed,
    )
    print(measure.speedup(f"{workers} processes", many, one))


# -- tracing ---------------------------------------------------------------------------------


def tracing(scratch: measure.Scratch, events: int, rounds: int, baseline: Path | None) -> None:
    """One projector with tracing off and on (every span sampled, OTLP to a real Jaeger; with metrics too), on a
    forest whose every record carries a trace of its own; with ``baseline``, the projector of an older checkout."""
    endpoint = measure.ensure_jaeger()
    topics = Topics.fresh(scratch, "proj-trace")
    workload = forest(ForestShape(roots=max(1, events // EVENTS_PER_TREE)))
    with Producer(topics.settings) as producer:
        for event, headers in zip(workload, measure.traceparents(len(workload)), strict=True):
            producer.send(event, headers=list(headers))
        producer.flush()
    ends = topics.ends()
    contenders = measure.tracing_contenders("projector", endpoint, baseline)
    for _ in range(rounds):
        for contender in contenders:
            project(topics, ends, 1, contender.env, contender.checkout)[0].add_to(contender.series)
    events = sum(ends.values())
    title = f"Tracing: {events:,} events, each with a trace of its own, 1 process, {plural(rounds, 'round')}"
    measure.print_tracing(title, contenders, baseline)


# -- 2. latency -------------------------------------------------------------------------------


class LatencyWriter(BatchWriter):
    """After each committed batch, notes each row's ``occurred_at`` and its time to the commit."""

    def __init__(self, settings: Settings, schema: str) -> None:
        super().__init__(settings, schema)
        self.samples: list[tuple[float, float]] = []
        """(occurred_at as a POSIX time, seconds from it to the commit) of every event row."""

    def write(self, batch: Batch) -> None:
        super().write(batch)
        committed = datetime.now(UTC)
        self.samples += [
            (row[OCCURRED_AT].timestamp(), (committed - row[OCCURRED_AT]).total_seconds())
            for row in batch.audit_rows
            if row[OCCURRED_AT] is not None
        ]


def child_latency(schema: str, group: str, out: Path) -> None:
    """The latency child: project until SIGTERM, then write the samples to ``out`` as JSON."""
    settings = Settings()
    writer = LatencyWriter(settings, schema)
    projector = Projector(settings, ProjectorOptions(schema=schema, group_id=group), writer=writer)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        projector.stop()

    signal.signal(signal.SIGTERM, stop)
    projector.run()
    out.write_text(json.dumps(writer.samples))


def send_now(producer: Producer, event: ev.Event) -> None:
    """Send ``event`` as created now."""
    meta = event.meta.model_copy(update={"occurred_at": datetime.now(UTC)})
    producer.send(event.model_copy(update={"meta": meta}))


def produce_at(producer: Producer, events: Sequence[ev.Event], rate: int) -> None:
    start = time.perf_counter()
    for i, event in enumerate(events):
        pause = start + i / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        send_now(producer, event)
    producer.flush()


def child_command(schema: str, group: str, out: Path) -> list[str]:
    """argv of this script's latency child."""
    script = str(Path(__file__).resolve())
    return [sys.executable, script, "--child-latency", "--schema", schema, "--group", group, "--out", str(out)]


def under_load(topics: Topics, schema: str, out: Path, load: Sequence[ev.Event]) -> tuple[SpanResult, float]:
    """Run the latency child through a warm-up and ``load``; the span over the load, and the time it started."""
    group, app_name = topics.names()
    env = measure.child_env(topics.settings, PGAPPNAME=app_name)
    with (
        connect(topics.settings, schema, autocommit=True) as conn,
        running([child_command(schema, group, out)], env, "latency projector") as services,
        Producer(topics.settings) as producer,
    ):
        measure.wait_assigned(topics.client, group, len(topics.partitions), services=services)
        produce_at(producer, forest(ForestShape(roots=WARM_UP_TREES), seed=1), LATENCY_RATE)
        measure.wait_until(measure.projected(conn, topics.ends()), services, STAGE_TIMEOUT_S)
        span = Span(services, conn, service_backends(conn, services, app_name)).start()
        load_start = time.time()
        produce_at(producer, load, LATENCY_RATE)
        result = span.end(measure.wait_until(measure.projected(conn, topics.ends()), services, STAGE_TIMEOUT_S))
    return result, load_start


def latency_round(scratch: measure.Scratch, seconds: float, series: Sequence[measure.Series]) -> None:
    """One round: a fresh projector child, a warm-up, then ``seconds`` of load at :data:`LATENCY_RATE`."""
    topics = Topics.fresh(scratch, "proj-lat")
    schema = topics.schema("proj_lat")
    count = round(LATENCY_RATE * seconds)
    load = forest(ForestShape(roots=count // EVENTS_PER_TREE + 1), start=datetime.now(UTC))[:count]
    with tempfile.TemporaryDirectory(prefix="bench-projector-") as tmp:
        out = Path(tmp) / "latencies.json"
        result, load_start = under_load(topics, schema, out, load)
        if not out.exists():
            raise SystemExit("the latency projector did not write its latencies")
        samples = json.loads(out.read_text())
    latencies = [latency * 1000 for occurred, latency in samples if occurred >= load_start]
    p50, p99, worst = (measure.pct(latencies, q) for q in (0.5, 0.99, 1.0))
    print(f"  {len(latencies):,} events: p50 {p50:,.0f} ms, p99 {p99:,.0f} ms, max {worst:,.0f} ms")
    result.add_to(series[0], p50)
    for row, value in zip(series[1:], (p99, worst), strict=True):
        row.add(value)


def latency(scratch: measure.Scratch, seconds: float, rounds: int) -> None:
    print(f"\nlatency at {LATENCY_RATE:,} events/s for {seconds:g}s, {plural(rounds, 'round')}")
    label = "event created → its batch committed"
    series = [measure.Series(f"{label}, {q}", unit=" ms") for q in ("p50", "p99", "max")]
    for _ in range(rounds):
        latency_round(scratch, seconds, series)
    measure.print_table("Latency (CPU µs/ev: the projector process over the load)", series)


# -- 3. lineage queries -----------------------------------------------------------------------


def write_forest(settings: Settings, schema: str, workload: list[ev.Event]) -> float:
    """Write ``workload`` through the projector's writer (no Kafka); returns the seconds it took."""
    serde = Serde()
    offsets: dict[str, int] = {}
    records = []
    for event in workload:
        topic = topic_of(type(event)).name
        offsets[topic] = offsets.get(topic, -1) + 1
        records.append(Record(topic, 0, offsets[topic], 0, key_of(event).encode(), serde.encode(event, topic)))
    states = {(t, 0): PartitionState(0, audit_chain.GENESIS) for t in offsets}
    writer = BatchWriter(settings, schema, role=None)
    start = time.perf_counter()
    for i in range(0, len(records), 5000):
        batch = build_batch(records[i : i + 5000], states, serde, "")
        writer.write(batch)
        states.update(batch.end)
    writer.close()
    return time.perf_counter() - start


def lineage_queries(scratch: measure.Scratch, roots: int) -> None:
    settings = scratch.base
    schema = fresh_schema(scratch, settings, "proj_lin")
    shape = ForestShape(roots=roots, fanout=10, depth=3, lifecycle=False, denied_per_agent=0, handoffs=False)
    workload = forest(shape)
    built = write_forest(settings, schema, workload)
    with connect(settings, schema, autocommit=True) as conn:
        conn.execute("ANALYZE")
        agents = conn.execute("SELECT count(*) FROM agents").fetchone()
        print(f"\nforest: {agents[0] if agents else 0:,} agents in {roots} trees, written in {built:.1f}s")
        lineage = Lineage(conn)
        root = f"root-0-{min(7, roots - 1)}"
        leaf = f"{root}.3.4.5"
        past = workload[len(workload) // 2].meta.occurred_at + timedelta(days=1)
        subtree = len(lineage.descendants(root)) + 1
        cases: list[tuple[str, Callable[[], object]]] = [
            (f"subtree of {subtree:,} agents (descendants)", lambda: lineage.descendants(root)),
            (f"tree of {subtree:,} agents (+ denied, handoffs)", lambda: lineage.tree(root)),
            ("ancestors of a depth-3 leaf", lambda: lineage.ancestors(leaf)),
            ("path of a depth-3 leaf", lambda: lineage.path(leaf)),
            ("subtree, as of a past moment", lambda: lineage.descendants(root, past)),
            ("ancestors, as of a past moment", lambda: lineage.ancestors(leaf, past)),
        ]
        for label, query in cases:
            times = timed(query, repeat=30)[3:]
            print(
                f"  {label:<47} p50 {statistics.median(times) * 1000:7.2f} ms"
                f"  p99 {measure.pct(times, 0.99) * 1000:7.2f} ms"
            )


# -- main -------------------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="events of the throughput forest")
    parser.add_argument("--latency-seconds", type=float, default=10, help="seconds of load per latency round")
    parser.add_argument("--forest-roots", type=int, default=90, help="trees of the lineage forest (1,111 agents each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="projector processes of the second stage")
    parser.add_argument("--keep", action="store_true", help="keep the topics, groups and schemas created")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["throughput", "tracing", "latency", "lineage"],
        help="stages to leave out",
    )
    parser.add_argument("--baseline", type=Path, help="tracing stage: also run the projector of this checkout")
    parser.add_argument("--child-latency", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.child_latency:
        child_latency(args.schema, args.group, args.out)
        return
    settings = Settings()
    print(measure.load_average())
    print(f"broker {settings.bootstrap_servers}; projector batches of {ProjectorOptions().batch_size:,}")
    scratch = measure.Scratch(settings, keep=args.keep)
    try:
        if "throughput" not in args.skip:
            throughput(scratch, args.events, args.rounds, args.workers)
        if "tracing" not in args.skip:
            tracing(scratch, args.events, args.rounds, args.baseline)
        if "latency" not in args.skip:
            latency(scratch, args.latency_seconds, args.rounds)
        if "lineage" not in args.skip:
            lineage_queries(scratch, args.forest_roots)
    finally:
        scratch.clean()


if __name__ == "__main__":
    main()
