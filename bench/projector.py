"""Projector benchmark: throughput next to a plain COPY, latency at a fixed load, lineage queries.

All in one run against the same broker and database:

1. **Throughput**: a synthetic forest (lifecycle, decisions, handoffs; 73 events per tree
   of 13 agents) is published, then one projector projects it (decode, audit chain,
   lineage merge, one transaction per batch). Next to it, the ceiling: the very same audit
   rows, read back, written with a plain ``COPY`` into a table of the same shape without
   indexes — and into one with the same indexes.
2. **Latency** at a fixed 1,000 events/s: event creation → the batch holding it committed
   (rows visible), p50/p99, measured in the projector process on one clock.
3. **Lineage queries** on a forest of ~100,000 agents (90 trees, fanout 10, depth 3;
   written through the projector's own writer): the subtree of a root (1,111 agents),
   ancestors and path of a leaf, now and as of a past moment.

Prints figures; asserts nothing.

    python bench/projector.py [--events 50000] [--latency-seconds 10] [--forest-roots 90]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import set_json_dumps

from agentlog.producer import Producer
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import delete_topics, ensure_topics
from agentlog.topics import CATALOGUE, key_of, topic_of
from projections import audit_chain
from projections.batch import AUDIT_COLUMNS, Batch, PartitionState, RawRecord, build_batch
from projections.db import connect
from projections.lineage import Lineage
from projections.migrate import migrate
from projections.projector import Projector, ProjectorOptions
from projections.workload import ForestShape, forest
from projections.writer import AUDIT_TYPES, BatchWriter


def backend_cpu(conn: psycopg.Connection[Any]) -> float | None:
    """CPU seconds (user + system) the server process of ``conn`` has used, if it runs on this machine."""
    try:
        with open(f"/proc/{conn.info.backend_pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_row_us(seconds: float | None, rows: int) -> str:
    return "n/a" if seconds is None else f"{seconds / rows * 1e6:.1f} us"


class TimedWriter(BatchWriter):
    """A writer that notes when batches were written, the CPU they took, and each event's time to visibility."""

    def __init__(self, settings: Settings, schema: str) -> None:
        super().__init__(settings, schema)
        self.first: float | None = None
        self.last = 0.0
        self.rows = 0
        self.latencies: list[float] = []
        self.cpu: list[float] = [0.0, 0.0]
        """Process CPU seconds at the first write and at the last commit."""
        self.server_cpu: list[float | None] = [None, None]
        """The same for the writer's PostgreSQL backend (``None`` if it is not on this machine)."""

    def write(self, batch: Batch) -> None:
        started = time.perf_counter()
        if self.first is None:
            self.first = started
            self.cpu[0] = time.process_time()
            self.server_cpu[0] = backend_cpu(self.connection())
        super().write(batch)
        self.last = time.perf_counter()
        self.cpu[1] = time.process_time()
        self.server_cpu[1] = backend_cpu(self.connection())
        self.rows += len(batch)
        now = datetime.now(UTC)
        occurred = AUDIT_COLUMNS.index("occurred_at")
        self.latencies += [(now - row[occurred]).total_seconds() for row in batch.audit_rows if row[occurred]]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(action: Callable[[], object], repeat: int = 1) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def fresh(settings: Settings, tag: str) -> tuple[Settings, str]:
    prefix = f"bench-{tag}-{uuid.uuid4().hex[:6]}."
    scoped = settings.model_copy(update={"topic_prefix": prefix})
    ensure_topics(scoped)
    schema = f"bench_{tag}_{uuid.uuid4().hex[:6]}"
    migrate(settings, schema)
    return scoped, schema


def drop(settings: Settings, scoped: Settings | None, schema: str) -> None:
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    if scoped is not None:
        delete_topics(scoped, [scoped.topic_prefix + spec.name for spec in CATALOGUE])


def throughput(settings: Settings, events: int) -> None:
    scoped, schema = fresh(settings, "tp")
    try:
        workload = forest(ForestShape(roots=max(1, events // 73)))
        publish = timed(lambda: Producer(scoped).publish_many(workload))[0]
        print(f"published {len(workload):,} events in {publish:.1f}s")
        writer = TimedWriter(scoped, schema)
        options = ProjectorOptions(schema=schema, group_id=f"bench-{uuid.uuid4()}", idle_exit_s=2.0)
        wall = timed(lambda: Projector(scoped, options, writer=writer).run())[0]
        assert writer.first is not None
        busy = writer.last - writer.first
        rate = writer.rows / busy
        print(
            f"projector (decode + chain + lineage, 1 tx/batch): {rate:>10,.0f} events/s "
            f"({writer.rows:,} rows in {busy:.2f}s from first to last commit; run incl. group join {wall:.1f}s)"
        )
        start_cpu, end_cpu = writer.server_cpu
        server = end_cpu - start_cpu if start_cpu is not None and end_cpu is not None else None
        client = writer.cpu[1] - writer.cpu[0]
        print(
            f"{'  CPU per event, same span':<49} projector process {per_row_us(client, writer.rows)},"
            f" PostgreSQL backend {per_row_us(server, writer.rows)}"
        )
        with connect(settings, schema, autocommit=True) as conn:
            set_json_dumps(lambda text: text, context=conn)  # JSON values are read back as the text written
            as_written = [
                sql.SQL("{}::text").format(sql.Identifier(c)) if c in ("value", "headers") else sql.Identifier(c)
                for c in AUDIT_COLUMNS
            ]
            rows = conn.execute(sql.SQL("SELECT {} FROM audit_log").format(sql.SQL(", ").join(as_written))).fetchall()
            columns = sql.SQL(", ").join(sql.Identifier(c) for c in AUDIT_COLUMNS)
            for label, like in (("plain COPY, no indexes", ""), ("plain COPY, same indexes", " INCLUDING ALL")):
                table = sql.Identifier(f"ceiling_{uuid.uuid4().hex[:6]}")
                conn.execute(sql.SQL("CREATE TABLE {} (LIKE audit_log" + like + ")").format(table))

                def copy(table: sql.Identifier = table) -> None:
                    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(table, columns)
                    with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as out:
                        out.set_types(AUDIT_TYPES)
                        for row in rows:
                            out.write_row(row)

                before = backend_cpu(conn)
                seconds = timed(copy)[0]
                after = backend_cpu(conn)
                server = after - before if before is not None and after is not None else None
                print(
                    f"{label:<49} {len(rows) / seconds:>10,.0f} rows/s   projector = {rate / (len(rows) / seconds):.0%}"
                    f"   (backend CPU {per_row_us(server, len(rows))}/row)"
                )
        chain = timed(lambda: [audit_chain.link(r[15], r[0], r[1], r[2], r[3], r[5], r[8]) for r in rows])[0]
        print(f"{'audit chain alone (sha256 per row)':<49} {len(rows) / chain:>10,.0f} rows/s")
    finally:
        drop(settings, scoped, schema)


def latency(settings: Settings, seconds: int, rate: int = 1000) -> None:
    scoped, schema = fresh(settings, "lat")
    try:
        writer = TimedWriter(scoped, schema)
        projector = Projector(scoped, ProjectorOptions(schema=schema, group_id=f"bench-{uuid.uuid4()}"), writer=writer)
        thread = threading.Thread(target=projector.run)
        thread.start()
        time.sleep(3)  # group join and assignment
        events = forest(ForestShape(roots=rate * seconds // 73 + 1), start=datetime.now(UTC))
        with Producer(scoped) as producer:
            start = time.perf_counter()
            for i, event in enumerate(events[: rate * seconds]):
                due = start + i / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                meta = event.meta.model_copy(update={"occurred_at": datetime.now(UTC)})
                producer.send(event.model_copy(update={"meta": meta}))
            producer.flush()
        deadline = time.monotonic() + 30
        while writer.rows < rate * seconds and time.monotonic() < deadline:
            time.sleep(0.1)
        projector.stop()
        thread.join()
        lat = writer.latencies
        print(
            f"latency at {rate:,} events/s for {seconds}s ({len(lat):,} events): "
            f"p50 {pct(lat, 0.5) * 1000:.0f} ms, p99 {pct(lat, 0.99) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms"
        )
    finally:
        drop(settings, scoped, schema)


def lineage_queries(settings: Settings, roots: int) -> None:
    _, schema = settings, f"bench_lin_{uuid.uuid4().hex[:6]}"
    migrate(settings, schema)
    try:
        shape = ForestShape(roots=roots, fanout=10, depth=3, lifecycle=False, denied_per_agent=0, handoffs=False)
        workload = forest(shape)
        serde = Serde()
        offsets: dict[str, int] = {}
        records = []
        for event in workload:
            topic = topic_of(type(event)).name
            offsets[topic] = offsets.get(topic, -1) + 1
            records.append(RawRecord(topic, 0, offsets[topic], 0, key_of(event).encode(), serde.encode(event, topic)))
        states = {(t, 0): PartitionState(0, audit_chain.GENESIS) for t in offsets}
        writer = BatchWriter(settings, schema, role=None)
        start = time.perf_counter()
        for i in range(0, len(records), 5000):
            batch = build_batch(records[i : i + 5000], states, serde, "")
            writer.write(batch)
            states.update(batch.end)
        writer.close()
        built = time.perf_counter() - start
        with connect(settings, schema, autocommit=True) as conn:
            conn.execute("ANALYZE")
            agents = conn.execute("SELECT count(*) FROM agents").fetchone()
            print(f"forest: {agents[0] if agents else 0:,} agents in {roots} trees, written in {built:.1f}s")
            lineage = Lineage(conn)
            root, leaf = "root-0-7", "root-0-7.3.4.5"
            middle = workload[len(workload) // 2].meta.occurred_at
            subtree = len(lineage.descendants(root)) + 1
            cases: list[tuple[str, Callable[[], object]]] = [
                (f"subtree of {subtree:,} agents (descendants)", lambda: lineage.descendants(root)),
                (f"tree of {subtree:,} agents (+ denied, handoffs)", lambda: lineage.tree(root)),
                ("ancestors of a depth-3 leaf", lambda: lineage.ancestors(leaf)),
                ("path of a depth-3 leaf", lambda: lineage.path(leaf)),
                ("subtree, as of a past moment", lambda: lineage.descendants(root, middle + timedelta(days=1))),
                ("ancestors, as of a past moment", lambda: lineage.ancestors(leaf, middle + timedelta(days=1))),
            ]
            for label, query in cases:
                times = timed(query, repeat=30)[3:]
                print(
                    f"{label:<49} p50 {statistics.median(times) * 1000:7.2f} ms  p99 {pct(times, 0.99) * 1000:7.2f} ms"
                )
    finally:
        drop(settings, None, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--latency-seconds", type=int, default=10)
    parser.add_argument("--forest-roots", type=int, default=90)
    args = parser.parse_args()
    settings = Settings()
    print(f"broker {settings.bootstrap_servers}; one projector, batches of {ProjectorOptions().batch_size:,}")
    throughput(settings, args.events)
    latency(settings, args.latency_seconds)
    lineage_queries(settings, args.forest_roots)


if __name__ == "__main__":
    main()
