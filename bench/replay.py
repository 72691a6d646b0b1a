"""Replay benchmark: export, verify, rebuild and decisions on ≥ 1,000,000 events, next to a plain consume.

All in one run against the same broker and database:

1. **Data**: a synthetic workload of agent trees (registration, spawn requests, usage,
   the root completing) is produced to the input topics; the real spawn gate
   (``agentlog processors run``) decides it; the projector projects everything into a
   fresh schema. Inputs plus decisions make up the events (``--events``, default 1,000,000).
2. **Ceiling**: a plain confluent-kafka consumer reads every topic once (no decoding).
3. ``replay export`` of everything (JSON lines, to a temporary file), ``replay verify``
   against the projected schema, ``replay rebuild`` into a fresh schema, ``replay
   decisions`` over the whole log — each timed, in events/s and as a share of the ceiling.
4. **Memory**: each stage runs with a sampler of this process's resident set size; the
   RSS at a quarter, half, three quarters and the end of the stage shows whether it stays
   flat as the events stream by.

Prints figures; asserts nothing.

    python bench/replay.py [--events 1000000] [--reuse PREFIX]   # --reuse: skip step 1, data of an earlier run
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka import Producer as KafkaProducer

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import ensure_topics
from agentlog.topics import AGENT_LIFECYCLE, CATALOGUE, SPAWN_REQUESTS, topic_of
from processors.ids import child_agent_id
from processors.policy import load_default_policy, to_event
from projections.migrate import migrate
from projections.projector import Projector, ProjectorOptions

# Run as a script, this file's folder (bench/) comes first on sys.path, and this file,
# bench/replay.py, would shadow the ``replay`` package: drop the folder before importing it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from replay.export import export  # noqa: E402  (after the sys.path fix above)
from replay.progress import Progress  # noqa: E402
from replay.rebuild import rebuild  # noqa: E402
from replay.runs import decisions_report  # noqa: E402
from replay.selection import Selection  # noqa: E402
from replay.topic_reader import partitions_of  # noqa: E402
from replay.verify import verify  # noqa: E402

EVENTS_PER_TREE = 26  # measured: 14 inputs and ~12 decisions per tree of this workload


# -- data ---------------------------------------------------------------------------------


def _tree(rng: random.Random, serial: int) -> Iterator[ev.Event]:
    root = f"bench-{serial}"

    def meta() -> ev.Meta:
        return ev.Meta(
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            tenant_id=f"t{serial % 50}",
            root_id=root,
            producer="bench",
        )

    yield ev.RootAgentRegistered(
        meta=meta(), agent_id=root, config="orchestrator", token_budget=200_000, spawn_budget=12
    )
    agents = [root]
    for _ in range(8):
        request_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        yield ev.SpawnRequested(
            meta=meta(),
            request_id=request_id,
            parent_agent_id=rng.choice(agents),
            child_config=rng.choice(["researcher", "coder", "reviewer", "summarizer"]),
            task=ev.TaskSpec(title="bench"),
            requested_token_budget=rng.choice([1_000, 5_000, 20_000]),
            requested_spawn_budget=rng.choice([0, 0, 1]),
        )
        agents.append(child_agent_id(request_id))
    for _ in range(4):
        yield ev.TokensConsumed(meta=meta(), agent_id=rng.choice(agents), tokens=rng.choice([100, 2_000, 30_000]))
    yield ev.AgentCompleted(meta=meta(), agent_id=root, result_summary="done", tokens_used=500)


def produce_workload(settings: Settings, trees: int) -> int:
    """Produce ``trees`` trees' inputs, interleaved across trees, each tree in order; returns the count."""
    serde = Serde()
    producer = KafkaProducer({**kafka_config.producer(settings), "linger.ms": 20, "batch.size": 1_000_000})
    rng = random.Random(42)
    count = 0
    window = 200  # trees in flight at once: interleaved, yet each tree's events in order
    streams = [_tree(rng, i) for i in range(min(window, trees))]
    started = len(streams)
    while streams:
        i = rng.randrange(len(streams))
        event = next(streams[i], None)
        if event is None:
            if started < trees:
                streams[i] = _tree(rng, started)
                started += 1
            else:
                streams.pop(i)
            continue
        topic = settings.topic_prefix + topic_of(type(event)).name
        while True:
            try:
                producer.produce(topic, serde.encode(event, topic), event.meta.root_id.encode())
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0
    return count


def gate_lag(settings: Settings) -> int:
    """Input records the gate's consumer group has not committed yet."""
    group = f"{settings.topic_prefix}agentlog.spawn-gate"
    consumer = Consumer(kafka_config.reader(settings, group))
    try:
        tps = [
            TopicPartition(settings.topic_prefix + spec.name, p)
            for spec in (SPAWN_REQUESTS, AGENT_LIFECYCLE)
            for p in partitions_of(settings, settings.topic_prefix + spec.name)
        ]
        lag = 0
        for tp in consumer.committed(tps, timeout=10):
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            lag += max(0, high - max(tp.offset, 0) - 1)  # the last offset may be a transaction marker
        return lag
    finally:
        consumer.close()


def prepare(settings: Settings, events: int) -> str:
    """Produce, decide and project ``events`` events; returns the projected schema."""
    ensure_topics(settings)
    publish_policy(settings)
    trees = max(1, events // EVENTS_PER_TREE)
    t0 = time.monotonic()
    inputs = produce_workload(settings, trees)
    print(f"produced {inputs:,} inputs of {trees:,} trees in {time.monotonic() - t0:.0f}s", flush=True)
    env = {
        **os.environ,
        "AGENTLOG_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "AGENTLOG_TOPIC_PREFIX": settings.topic_prefix,
    }
    t0 = time.monotonic()
    gate = subprocess.Popen(
        [sys.executable, "-m", "agentlog.cli.main", "processors", "run", "--worker-id=bench", "--log-level=ERROR"],
        env=env,
    )
    try:
        time.sleep(5)
        while (lag := gate_lag(settings)) > len(
            partitions_of(settings, settings.topic_prefix + SPAWN_REQUESTS.name)
        ) * 2:
            print(f"  gate: {lag:,} inputs to go", flush=True)
            time.sleep(5)
        time.sleep(3)
    finally:
        gate.terminate()
        gate.wait(60)
    print(f"the gate decided them in {time.monotonic() - t0:.0f}s", flush=True)
    schema = "bench_" + settings.topic_prefix.strip(".").replace("-", "_")
    migrate(settings, schema)
    t0 = time.monotonic()
    stats = Projector(settings, ProjectorOptions(schema=schema, group_id=f"projector-{schema}", idle_exit_s=3)).run()
    print(f"projected {stats.records:,} records in {time.monotonic() - t0:.0f}s", flush=True)
    return schema


def publish_policy(settings: Settings) -> None:
    """Publish the default policy for the gate."""
    from agentlog.producer import Producer

    with Producer(settings) as producer:
        producer.publish(to_event(load_default_policy(), published_by="bench"))


# -- measuring ----------------------------------------------------------------------------


class RssSampler:
    """Samples this process's resident set size every ``interval_s``."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(_rss_kib())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(_rss_kib())

    def quartiles_mib(self) -> list[int]:
        n = len(self.samples)
        return [self.samples[min(n - 1, int(n * q))] // 1024 for q in (0.25, 0.5, 0.75)] + [self.samples[-1] // 1024]


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def plain_consume(settings: Settings) -> int:
    """Every record of every topic, read once with a plain consumer; returns the count."""
    consumer = Consumer({**kafka_config.reader(settings), "enable.partition.eof": True})
    tps = [
        TopicPartition(settings.topic_prefix + s.name, p, OFFSET_BEGINNING)
        for s in CATALOGUE
        for p in partitions_of(settings, settings.topic_prefix + s.name)
    ]
    consumer.assign(tps)
    open_tps = {(tp.topic, tp.partition) for tp in tps}
    count = 0
    try:
        while open_tps:
            for msg in consumer.consume(10_000, 0.05):
                error = msg.error()
                if error is None:
                    count += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    open_tps.discard((msg.topic(), msg.partition()))
    finally:
        consumer.close()
    return count


def stage(name: str, run: Callable[[], int], ceiling: float | None) -> float:
    """Run one stage; print events/s, the share of the ceiling and the RSS quartiles; return events/s."""
    with RssSampler() as rss:
        t0 = time.monotonic()
        events = run()
        seconds = time.monotonic() - t0
    rate = events / seconds
    share = f"{rate / ceiling:6.1%} of ceiling" if ceiling else "   ceiling    "
    quartiles = " / ".join(f"{m}" for m in rss.quartiles_mib())
    print(
        f"{name:<22} {events:>10,} events {seconds:8.1f}s {rate:>10,.0f} events/s  {share}  RSS MiB {quartiles}",
        flush=True,
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--reuse", help="topic prefix of an earlier run's data (its schema is bench_<prefix>)")
    args = parser.parse_args()
    base = Settings()
    if args.reuse:
        settings = base.model_copy(update={"topic_prefix": args.reuse})
        schema = "bench_" + args.reuse.strip(".").replace("-", "_")
    else:
        settings = base.model_copy(update={"topic_prefix": f"bench-replay-{uuid.uuid4().hex[:6]}."})
        schema = prepare(settings, args.events)
    print(f"data: topic prefix {settings.topic_prefix}  schema {schema}  (rerun with --reuse {settings.topic_prefix})")
    quiet = Progress("", enabled=False)
    ceiling = stage("plain consume", lambda: plain_consume(settings), None)

    def run_export() -> int:
        with tempfile.TemporaryDirectory() as folder:
            return export(settings, Selection(), Path(folder) / "all.jsonl", progress=quiet).records

    def run_verify() -> int:
        report = verify(settings, schema)
        assert report.clean, report.differences[:5]
        return report.records

    def run_rebuild() -> int:
        report = rebuild(settings, schema, poll_s=1.0)
        import psycopg
        from psycopg import sql

        with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(report.rebuilt)))
        assert report.equal
        return report.records

    def run_decisions() -> int:
        report = decisions_report(settings, workers=2)
        assert report.clean, report.outcomes[:3]
        return report.inputs + report.recorded

    stage("replay export (jsonl)", run_export, ceiling)
    stage("replay verify", run_verify, ceiling)
    stage("replay rebuild", run_rebuild, ceiling)
    stage("replay decisions", run_decisions, ceiling)


if __name__ == "__main__":
    main()
