"""Replay benchmark: export, verify, rebuild and decisions (1 and N workers), next to a plain consume.

All in one run against the same broker and database (see ``bench/measure.py``):

1. **Data** (not measured): a synthetic workload of agent trees (registration, spawn
   requests, usage, the root completing) is produced to the input topics without
   transactions; the real spawn gate (``agentlog processors run``) decides it, and is
   stopped once its consumer group has committed the inputs' end offsets; the projector
   (``agentlog projector run``, started with the gate) projects every topic into a fresh
   schema, and is stopped once its positions table reaches the topics' last records. Both
   are :class:`measure.Service` processes, waited for by polling those positions only.
   Inputs plus decisions make up the events (``--events``, default 1,000,000).
2. **Stages**, each a *job*: a child process of this script (``--job NAME``, hidden) that
   imports everything, then times only the stage and reports its wall time, its count and
   its CPU time (its own and that of the worker processes it reaped) as one JSON line.
   A sampler in the bench process records the resident memory of the job's whole process
   tree (decision workers included). The stages:

   - the **ceiling**: a plain confluent-kafka consumer reads every topic once (no decoding);
   - ``replay export`` of everything (JSON lines, to a temporary file): records/s;
   - ``replay verify`` against the projected schema: Kafka records/s;
   - ``replay rebuild`` into a fresh schema, then the comparison: records/s (the rebuilt
     schema is dropped at the end of the job);
   - ``replay decisions`` with 1 worker and with ``--workers`` (default 2): **inputs**
     re-decided per second. The recorded decisions compared with them are shown next to
     the table, not counted in the rate.

3. **Rounds** (``--rounds``, default 3): each round runs the ceiling, then every stage.
   A figure is the median of the rounds with their spread (min to max); its share of the
   ceiling is the median of the per-round ratios; CPU µs per event is the job's CPU time
   divided by its count, and for verify and rebuild, PG µs per event is the CPU the whole
   PostgreSQL server (every backend, reaped ones included) used while the job ran;
   memory is the peak RSS of the job's process tree. The speed-up
   of N decision workers is taken against one worker in the same rounds. On a tiny
   workload start-up dominates (each job is a fresh interpreter; N decision workers are
   spawned processes that import the replay code first), so only large runs say much.

Every topic prefix, consumer group and schema created is removed at the end unless
``--keep``; ``--reuse PREFIX`` skips step 1 and runs on the data of an earlier kept run
(which is then left in place). Prints figures; asserts nothing but the stages' own
verdicts (verify clean, rebuild equal, every decision reproduced).

    python bench/replay.py [--events 1000000] [--rounds 3] [--workers 2] [--keep] [--reuse PREFIX]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka import Producer as KafkaProducer

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.processors.ids import child_agent_id
from agentlog.processors.policy import load_default_policy, to_event
from agentlog.projections.db import connect
from agentlog.projections.migrate import migrate
from agentlog.replay import Progress, Selection, decisions_report, export, rebuild, record_ends, verify
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import AGENT_LIFECYCLE, SPAWN_REQUESTS, topic_of
from agentlog.watermarks import watermarks

BENCH = Path(__file__).resolve().parent
sys.path.append(str(BENCH))  # spawned decision workers import measure too
import measure  # noqa: E402

SCRIPT = Path(__file__).resolve()
EVENTS_PER_TREE = 26  # measured: 14 inputs and ~12 decisions per tree of this workload
GATE_INPUTS = (SPAWN_REQUESTS, AGENT_LIFECYCLE)


@dataclass(frozen=True)
class Data:
    """Where the benchmark's data lives: the topics (by prefix) and the projected schema."""

    settings: Settings
    schema: str


def data_schema(scratch: measure.Scratch, prefix: str) -> str:
    """The projected schema of the data under ``prefix``, in the scratch's scope.

    Named after the prefix, so that ``--reuse`` finds it (with the same ``AGENTLOG_TOPIC_PREFIX``).
    """
    own = prefix.removeprefix(scratch.base.topic_prefix).lower()
    return scratch.schema_prefix + "".join(c if c.isalnum() else "_" for c in own).strip("_")


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


def _interleaved(trees: int) -> Iterator[ev.Event]:
    """The events of ``trees`` trees, 200 trees in flight at once, each tree's events in order."""
    rng = random.Random(42)
    streams = [_tree(rng, i) for i in range(min(200, trees))]
    started = len(streams)
    while streams:
        i = rng.randrange(len(streams))
        event = next(streams[i], None)
        if event is not None:
            yield event
        elif started < trees:
            streams[i] = _tree(rng, started)
            started += 1
        else:
            streams.pop(i)


def produce_workload(settings: Settings, trees: int) -> int:
    """Produce ``trees`` trees' inputs without transactions; returns the count."""
    serde = Serde()
    producer = KafkaProducer({**kafka_config.producer(settings), "linger.ms": 20, "batch.size": 1_000_000})
    count = 0
    for event in _interleaved(trees):
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
    if producer.flush(120):
        raise SystemExit("could not produce the workload")
    return count


def publish_policy(settings: Settings) -> None:
    """Publish the default policy for the gate."""
    from agentlog.producer import Producer

    with Producer(settings) as producer:
        producer.publish(to_event(load_default_policy(), published_by="bench"))


def start_gate(settings: Settings) -> measure.Service:
    argv = measure.agentlog_command("processors", "run", "--worker-id=bench", "--log-level=ERROR")
    return measure.Service(argv, measure.child_env(settings), "the gate")


def start_projector(settings: Settings, scratch: measure.Scratch, schema: str) -> measure.Service:
    migrate(settings, schema)
    group = scratch.group("replay-projector")
    argv = measure.agentlog_command("projector", "run", f"--schema={schema}", f"--group={group}")
    return measure.Service(argv, measure.child_env(settings), "the projector")


def wait_decided(settings: Settings, gate: measure.Service) -> None:
    """Wait until the gate's group has committed every input.

    The gate commits, per partition and input topic, the offset after the last record it
    decided: once caught up, the high watermark (the inputs hold no transaction markers).
    It commits nothing for a partition it never got a record of, so those are left out.
    Its group is named after the prefix (and removed with it).
    """
    group = f"{settings.topic_prefix}agentlog.spawn-gate"
    client = measure.admin(settings)
    inputs = measure.partitions(client, [settings.topic_prefix + spec.name for spec in GATE_INPUTS])
    measure.wait_committed(client, group, inputs, services=[gate])


def wait_projected(settings: Settings, schema: str, projector: measure.Service) -> None:
    """Wait until the projector's positions reach every topic's last record (call once the gate has stopped)."""
    ends = record_ends(settings, measure.catalogue_topics(settings))
    with connect(settings, schema) as conn:
        measure.wait_until(measure.projected(conn, ends), services=[projector])


def prepare(scratch: measure.Scratch, events: int) -> Data:
    """Produce about ``events`` events under a fresh prefix; decide them with the gate and project them."""
    settings = scratch.settings("replay")
    schema = data_schema(scratch, settings.topic_prefix)
    scratch.schemas.append(schema)
    publish_policy(settings)
    trees = max(1, events // EVENTS_PER_TREE)
    t0 = time.monotonic()
    inputs = produce_workload(settings, trees)
    print(f"data: produced {inputs:,} inputs of {trees:,} trees in {time.monotonic() - t0:.1f}s", flush=True)
    t0 = time.monotonic()
    gate, projector = start_gate(settings), start_projector(settings, scratch, schema)  # start-ups overlap
    try:
        wait_decided(settings, gate)
        gate.stop()
        print(f"      the gate decided them in {time.monotonic() - t0:.1f}s (peak RSS {gate.memory()})", flush=True)
        wait_projected(settings, schema, projector)
        projector.stop()
        print(f"      projected into {schema} after {time.monotonic() - t0:.1f}s (peak RSS {projector.memory()})")
    finally:
        measure.stop_all([gate, projector])
    return Data(settings, schema)


# -- jobs (child processes: ``--job NAME``) -----------------------------------------------

JobOutcome = tuple[int, dict[str, Any]]
"""What a job reports: its count and anything else worth printing."""


def plain_consume(settings: Settings) -> int:
    """Every record of every topic, read once with one plain consumer (no decoding); returns the count."""
    consumer = Consumer({**kafka_config.reader(settings), "enable.partition.eof": True, "fetch.wait.max.ms": 10})
    client = measure.admin(settings)
    tps = measure.partitions(client, measure.catalogue_topics(settings))
    # Explicit start offsets: OFFSET_BEGINNING costs a lookup of about half a second per partition.
    consumer.assign([TopicPartition(t.topic, t.partition, watermarks(consumer, t.topic, t.partition)[0]) for t in tps])
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
                else:
                    raise SystemExit(f"plain consume: {error.str()}")
    finally:
        consumer.close()
    return count


def job_consume(settings: Settings, args: argparse.Namespace) -> JobOutcome:
    return plain_consume(settings), {}


def job_export(settings: Settings, args: argparse.Namespace) -> JobOutcome:
    with tempfile.TemporaryDirectory() as folder:
        manifest = export(settings, Selection(), Path(folder) / "all.jsonl", progress=Progress("", enabled=False))
    return manifest.records, {}


def job_verify(settings: Settings, args: argparse.Namespace) -> JobOutcome:
    report = verify(settings, args.schema)
    if not report.clean:
        raise SystemExit(f"verify found {len(report.differences)} differences, e.g. {report.differences[0]}")
    return report.records, {}


def job_rebuild(settings: Settings, args: argparse.Namespace) -> JobOutcome:
    report = rebuild(settings, args.schema, args.target, poll_s=0.1)
    if not report.equal:
        raise SystemExit(f"the rebuild differs in {', '.join(t.table for t in report.tables if not t.equal)}")
    return report.records, {}


def job_decisions(settings: Settings, args: argparse.Namespace) -> JobOutcome:
    report = decisions_report(settings, schema=args.schema, workers=args.workers)
    if not report.clean:
        raise SystemExit(f"{len(report.outcomes)} recorded decisions not reproduced, e.g. {report.outcomes[0]}")
    return report.inputs, {"recorded": report.recorded, "pending": report.pending}


JOBS: dict[str, Callable[[Settings, argparse.Namespace], JobOutcome]] = {
    "consume": job_consume,
    "export": job_export,
    "verify": job_verify,
    "rebuild": job_rebuild,
    "decisions": job_decisions,
}


def run_job_child(args: argparse.Namespace) -> None:
    """The child side: time the stage alone and print its result line (the rebuilt schema is dropped after)."""
    settings = Settings().model_copy(update={"topic_prefix": args.prefix})
    clock = measure.JobClock()
    try:
        count, extra = JOBS[args.job](settings, args)
        clock.report(count, **extra)
    finally:
        if args.target:
            measure.drop_schema(settings, args.target)


# -- rounds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One measured job and the row it fills."""

    label: str
    job: str
    workers: int | None = None


CEILING = Stage("plain consume (ceiling), records", "consume")


def stages(workers: int) -> list[Stage]:
    rows = [
        Stage("replay export (JSON lines), records", "export"),
        Stage("replay verify, records", "verify"),
        Stage("replay rebuild, records", "rebuild"),
        Stage("replay decisions, 1 worker: inputs", "decisions", 1),
    ]
    if workers > 1:
        rows.append(Stage(f"replay decisions, {workers} workers: inputs", "decisions", workers))
    return rows


def job_argv(stage: Stage, data: Data, *extra: str) -> list[str]:
    argv = [sys.executable, str(SCRIPT), "--job", stage.job, "--prefix", data.settings.topic_prefix]
    argv += ["--schema", data.schema, *extra]
    return argv + (["--workers", str(stage.workers)] if stage.workers is not None else [])


def measure_stage(stage: Stage, data: Data, scratch: measure.Scratch, series: measure.Series) -> measure.JobResult:
    """Run the stage's job once and add its rate, CPU per event and memory to ``series``."""
    target = None
    if stage.job == "rebuild":  # a fresh target each time, noted (with its group) for the clean-up
        target = scratch.schema("rebuilt")
        scratch.groups.append(f"{data.settings.topic_prefix}agentlog-rebuild-{target}")  # named by rebuild()
    argv = job_argv(stage, data, *(["--target", target] if target else []))
    involves_postgres = stage.job in ("verify", "rebuild")
    server = measure.postgres_server(data.settings) if involves_postgres else None
    result = measure.run_job(argv, measure.child_env(data.settings), postgres=server)
    if target:
        scratch.schemas.remove(target)  # the job has dropped it
    if result.count == 0:
        raise SystemExit(f"{stage.label}: the job counted nothing")
    server_us = None if result.postgres_cpu_s is None else result.postgres_cpu_s / result.count * 1e6
    series.add(result.count / result.seconds, result.cpu_s / result.count * 1e6, result.memory, server_us)
    print(f"  {stage.label}: {result.count:,} in {result.seconds:.2f}s", flush=True)
    return result


def run_rounds(data: Data, scratch: measure.Scratch, rounds: int, workers: int) -> None:
    """Alternate the ceiling and the stages for ``rounds`` rounds; print the figures."""
    ceiling = measure.Series(CEILING.label)
    rows = {stage: measure.Series(stage.label) for stage in stages(workers)}
    last: dict[Stage, measure.JobResult] = {}
    for r in range(1, rounds + 1):
        print(f"round {r}/{rounds}", flush=True)
        last[CEILING] = measure_stage(CEILING, data, scratch, ceiling)
        for stage, series in rows.items():
            last[stage] = measure_stage(stage, data, scratch, series)
    print_figures(ceiling, rows, last, rounds)


def print_figures(
    ceiling: measure.Series, rows: dict[Stage, measure.Series], last: dict[Stage, measure.JobResult], rounds: int
) -> None:
    decisions = [stage for stage in rows if stage.job == "decisions"]
    one = last[decisions[0]]
    title = (
        f"Replay of {last[CEILING].count:,} records ({one.count:,} inputs, {one.extra['recorded']:,} decisions): "
        f"per second, median of {rounds} round{'s' if rounds > 1 else ''}"
    )
    measure.print_table(title, [ceiling, *rows.values()], ceiling)
    print(
        f"  decisions: the rate counts the {one.count:,} inputs re-decided ({one.extra['pending']:,} of them pending);"
        f"\n  the {one.extra['recorded']:,} recorded decisions they are compared with are not counted"
    )
    if len(decisions) > 1:
        many = decisions[-1]
        print(measure.speedup(f"decisions, {many.workers} workers", rows[many], rows[decisions[0]]))


# -- main ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="inputs plus decisions, about")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each the ceiling then every stage")
    parser.add_argument("--workers", type=int, default=2, help="also measure decisions with this many workers")
    parser.add_argument("--keep", action="store_true", help="keep the topics, groups and schemas created")
    parser.add_argument("--reuse", metavar="PREFIX", help="the topic prefix of an earlier run kept with --keep")
    parser.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1 or args.workers < 1:
        parser.error("--rounds and --workers must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    if args.job:
        run_job_child(args)
        return
    scratch = measure.Scratch(Settings(), keep=args.keep)
    print(f"replay benchmark on {scratch.base.bootstrap_servers}; {measure.load_average()}", flush=True)
    try:
        if args.reuse:
            data = Data(scratch.base.model_copy(update={"topic_prefix": args.reuse}), data_schema(scratch, args.reuse))
        else:
            data = prepare(scratch, args.events)
        print(f"data: topic prefix {data.settings.topic_prefix}, schema {data.schema}", flush=True)
        run_rounds(data, scratch, args.rounds, args.workers)
    finally:
        scratch.clean()
    if args.keep and not args.reuse:
        print(f"rerun on the same data with --reuse {data.settings.topic_prefix}")


if __name__ == "__main__":
    main()
