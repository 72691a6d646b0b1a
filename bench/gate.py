"""Spawn-gate benchmark: decisions/s with 1 and N workers, latency at a fixed load, memory, one large tree.

Every figure is measured next to its ceiling in the same rounds on the same broker: a raw
pass-through process (``--child passthrough``) that consumes the same input records and
produces them unchanged, with the same consumer and producer settings and the same
transactional batches (consume, produce, send offsets, commit), but no decoding, no
decision and no state.

How (see ``bench/measure.py``): the gate workers and the pass-through are processes of
their own, on fresh topics for each round and each contender. The bench starts the
process(es), waits until the consumer group has assigned every partition, then starts
the clock, produces the input (pre-encoded, ~10x faster than the gate decides it) and
stops the clock when the group's committed offsets reach the end offsets of the input —
polling only those offsets, never the topics.
CPU per event is the process tree's CPU over that span; memory is its peak RSS.
Latency is the broker append time of the decision (or the copy) minus that of the
request (one clock), after a warm-up that proves the worker is deciding; the topics are
read once, after the load. The profile stage runs in this process, on one core, with
no broker.

A large tree (``--big-tree-leads``, 100: 20,001 agents in one tree) is decided by one
worker, then a fresh child process restores the changelog as a worker does on assignment:
its restore time and memory.

    python bench/gate.py [--requests 50000] [--rate 1000] [--seconds 20] [--trees 100000] [--big-tree-leads 100]
                         [--rounds 3] [--workers 2] [--skip profile throughput tracing latency memory big-tree]
                         [--baseline WORKTREE] [--keep]

The tracing stage runs one worker with tracing off, on (every span sampled, OTLP to a local Jaeger, started by
deploy/observability/jaeger.sh if none answers) and on with metrics, on input where every request carries a
trace context of its own; ``--baseline`` adds the gate of another checkout (an older commit's worktree).
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.keyring_admin import key_published, publish_keys
from agentlog.processors.gate_changelog import restore_partitions
from agentlog.processors.gate_input import decode_input
from agentlog.processors.input_merge import REQUESTS, InputRecord
from agentlog.processors.policy import from_event, load_default_policy, parse_policy, to_event
from agentlog.processors.spawn_gate import decide
from agentlog.processors.testing import wide_tree, wide_tree_policy
from agentlog.processors.tree_state import PartitionState
from agentlog.producer import Producer as EventProducer
from agentlog.records import Headers
from agentlog.replay import read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings, connection_env
from agentlog.signing import MAX_BATCH, SIGNATURE_HEADER, SigningKey, sign_batch
from agentlog.topic_admin import ensure_topics, tree_partition_count
from agentlog.topics import AGENT_LIFECYCLE, POLICY_DECISIONS, SPAWN_REQUESTS, TREE_KEYED, TopicSpec

sys.path.append(str(Path(__file__).resolve().parent))
import measure

RAW_OUT = TopicSpec("raw.out", TREE_KEYED, (), "root_id", "bench ceiling output (co-partitioned with the inputs)")
GATE_GROUP = "agentlog.spawn-gate"
RAW_GROUP = "raw-pass-through"


# -- workload -----------------------------------------------------------------------------


def bench_policy(require_signatures: bool = False) -> ev.PolicyPublished:
    """The default policy with caps high enough for 100,000 live trees."""
    document = load_default_policy().model_dump(mode="json")
    document["limits"].update(max_active_per_tenant=10_000_000, max_active_platform=10_000_000)
    document["limits"]["require_signatures"] = require_signatures
    document["configs"] = [dict(c, max_spawn_grant=max(c["max_spawn_grant"], 4)) for c in document["configs"]]
    return to_event(parse_policy(document, "bench"), published_by="bench")


def workload(trees: int, children: int, tag: str = "") -> list[ev.Event]:
    """Registrations then spawn requests, trees interleaved."""
    events: list[ev.Event] = []
    for t in range(trees):
        meta = ev.Meta(tenant_id=f"tenant-{t % 50}", root_id=f"root{tag}-{t}", producer="bench")
        events.append(
            ev.RootAgentRegistered(
                meta=meta,
                agent_id=meta.root_id,
                config="orchestrator",
                token_budget=1_000_000,
                spawn_budget=children * 2,
            )
        )
    for c in range(children):
        for t in range(trees):
            meta = ev.Meta(tenant_id=f"tenant-{t % 50}", root_id=f"root{tag}-{t}", producer="bench")
            events.append(
                ev.SpawnRequested(
                    meta=meta,
                    parent_agent_id=meta.root_id,
                    child_config="summarizer",
                    task=ev.TaskSpec(title=f"part {c}"),
                    requested_token_budget=1_000,
                )
            )
    return events


Encoded = list[tuple[bytes, bytes]]
"""(key, value) of each request, encoded once and produced to every round's fresh topics."""


def encode(events: Sequence[ev.Event]) -> Encoded:
    serde = Serde()
    return [(e.meta.root_id.encode(), serde.encode(e, SPAWN_REQUESTS.name)) for e in events]


def signed_input(settings: Settings, records: Encoded, tenants: list[str]) -> list[Headers]:
    """Each record's signature header as its tenant's runtime would send it (batches of 128 per tenant, in order),
    with the tenants' keys put on the round's keyring in one batch. Done before the clock starts."""
    topic = settings.topic_prefix + SPAWN_REQUESTS.name
    by_tenant: dict[str, list[int]] = {}
    for i, tenant in enumerate(tenants):
        by_tenant.setdefault(tenant, []).append(i)
    headers: list[Headers] = [[] for _ in records]
    published = []
    for tenant, indexes in by_tenant.items():
        key = SigningKey.generate()
        published.append(key_published(key, principal=f"{tenant}-runtime", tenant_id=tenant, published_by="bench"))
        for start in range(0, len(indexes), MAX_BATCH):
            chunk = indexes[start : start + MAX_BATCH]
            signatures = sign_batch(key, [(topic, records[i][0], records[i][1]) for i in chunk])
            for i, signature in zip(chunk, signatures, strict=True):
                headers[i] = [(SIGNATURE_HEADER, signature.encode())]
    publish_keys(settings, published)
    return headers


def produce(settings: Settings, records: Encoded, headers: list[Headers] | None = None) -> None:
    """Produce pre-encoded requests without a transaction (so the high watermark is the end)."""
    producer = Producer({**kafka_config.producer(settings), "linger.ms": 20})
    topic = settings.topic_prefix + SPAWN_REQUESTS.name
    for i, (key, value) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value, key, headers=headers[i] if headers is not None else None)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise SystemExit("could not produce the workload")


def fresh_topics(scratch: measure.Scratch, label: str, policy: ev.PolicyPublished | None = None) -> Settings:
    settings = scratch.settings(label)
    ensure_topics(settings, (RAW_OUT,))
    with EventProducer(settings) as producer:
        producer.publish(policy or bench_policy())
    return settings


# -- the contenders -----------------------------------------------------------------------


def start_gates(
    settings: Settings, workers: int, env: dict[str, str] | None = None, checkout: Path = measure.REPO
) -> list[measure.Service]:
    """``env``: the environment to start from (OTEL_* among it); ``checkout``: the agentlog that runs."""
    base = env if env is not None else dict(os.environ)
    return [
        measure.Service(
            measure.agentlog_command("processors", "run", f"--worker-id=bench-{i}", "--log-level=WARNING"),
            {**base, **connection_env(settings)},
            f"gate worker {i}",
            cwd=checkout,
        )
        for i in range(workers)
    ]


def start_passthrough(settings: Settings) -> list[measure.Service]:
    argv = [sys.executable, __file__, "--child", "passthrough"]
    return [measure.Service(argv, measure.child_env(settings), "pass-through")]


def passthrough_child(settings: Settings, inputs: Sequence[TopicSpec] = (SPAWN_REQUESTS,)) -> None:
    """The ceiling: consume ``inputs`` → produce the same bytes, one transaction per batch, as the gate's clients
    are set."""
    group = settings.topic_prefix + RAW_GROUP
    consumer = Consumer(
        {
            **kafka_config.reader(settings, group),
            "partition.assignment.strategy": "range",
            "fetch.wait.max.ms": 10,
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
        }
    )
    producer = Producer({**kafka_config.producer(settings, group), "linger.ms": 2})
    producer.init_transactions(30)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    target = settings.topic_prefix + RAW_OUT.name
    consumer.subscribe([settings.topic_prefix + spec.name for spec in inputs])
    while not stop.is_set():
        batch = [m for m in consumer.consume(2000, 0.005) if m.error() is None]
        if not batch:
            continue
        producer.begin_transaction()
        offsets: dict[tuple[str, int], int] = {}
        for msg in batch:
            producer.produce(target, msg.value(), msg.key(), partition=msg.partition())
            offsets[(msg.topic(), msg.partition())] = (msg.offset() or 0) + 1
        producer.send_offsets_to_transaction(
            [TopicPartition(t, p, o) for (t, p), o in offsets.items()], consumer.consumer_group_metadata(), 30
        )
        producer.commit_transaction(30)
    consumer.close()


Starter = Callable[[Settings], list[measure.Service]]


def contenders(workers: int) -> list[tuple[str, str, Starter, int, bool]]:
    """(label, group suffix, starter, members, signed input) of the ceiling, the gate with 1 and N workers,
    and one worker whose policy requires signatures, on signed input."""
    rows: list[tuple[str, str, Starter, int, bool]] = [
        ("raw pass-through (consume → produce, tx)", RAW_GROUP, start_passthrough, 1, False),
        ("spawn gate, 1 worker", GATE_GROUP, lambda s: start_gates(s, 1), 1, False),
        ("spawn gate, 1 worker, signed input verified", GATE_GROUP, lambda s: start_gates(s, 1), 1, True),
    ]
    if workers > 1:
        rows.append((f"spawn gate, {workers} workers", GATE_GROUP, lambda s: start_gates(s, workers), workers, False))
    return rows


def input_partitions(settings: Settings, group_suffix: str) -> list[TopicPartition]:
    topics = [SPAWN_REQUESTS.name] + ([AGENT_LIFECYCLE.name] if group_suffix == GATE_GROUP else [])
    return measure.partitions(measure.admin(settings), [settings.topic_prefix + t for t in topics])


def drain(
    settings: Settings,
    group_suffix: str,
    services: list[measure.Service],
    members: int,
    records: Encoded,
    headers: list[Headers] | None = None,
) -> float:
    """Wait until every worker holds its partitions, then produce ``records`` and time the group's
    committed offsets reaching their end; returns seconds.

    The input is produced only once the whole group is assigned: a backlog waiting on the
    topic would be half decided by the first worker before the others have joined.
    """
    client = measure.admin(settings)
    tps = input_partitions(settings, group_suffix)
    group = settings.topic_prefix + group_suffix
    measure.wait_assigned(client, group, len(tps), members, services)
    started = time.monotonic()
    for service in services:
        service.start_span()
    produce(settings, records, headers)
    finished = measure.wait_committed(client, group, tps, services)
    for service in services:
        service.end_span()
    return finished - started


def throughput(scratch: measure.Scratch, requests: int, rounds: int, workers: int) -> None:
    trees = max(requests // 5, 1)
    events = workload(trees, (requests - trees) // trees)
    records, tenants = encode(events), [e.meta.tenant_id for e in events]
    rows = [
        (label, suffix, start, members, signed, measure.Series(label))
        for label, suffix, start, members, signed in contenders(workers)
    ]
    for _ in range(rounds):
        for _label, suffix, start, members, signed, series in rows:
            settings = fresh_topics(scratch, "tp", bench_policy(require_signatures=signed))
            headers = signed_input(settings, records, tenants) if signed else None
            services = start(settings)
            try:
                seconds = drain(settings, suffix, services, members, records, headers)
            finally:
                measure.stop_all(services)
            cpu = sum(s.cpu_span_s for s in services)
            memory = max((s.memory() for s in services), key=lambda m: m.peak_total_mib)
            series.add(len(records) / seconds, cpu / len(records) * 1e6, memory)
    series_list = [row[-1] for row in rows]
    measure.print_table(
        f"throughput: {len(records):,} requests ({trees:,} trees) produced at once, {rounds} rounds"
        " (peak RSS: the largest worker)",
        series_list,
        ceiling=series_list[0],
    )
    print("  goal: ≥ 5,000 decisions/s and ≥ 25 % of the pass-through")
    ratios = [s / u for s, u in zip(series_list[2].values, series_list[1].values, strict=False)]
    print(f"  signed / unsigned input, 1 worker, per round: {', '.join(f'{r:.0%}' for r in ratios)}")
    print("  goal: ≥ 80 % (≤ 20 % fewer decisions/s with signatures verified)")
    if workers > 1:
        print(measure.speedup(f"{workers} workers", series_list[3], series_list[1]))


# -- tracing ------------------------------------------------------------------------------


def tracing(scratch: measure.Scratch, requests: int, rounds: int, baseline: Path | None) -> None:
    """One worker with tracing off and on (every span sampled, OTLP to a real Jaeger; with metrics too), on input
    where every request carries a trace of its own; and, with ``baseline``, the gate of an older checkout."""
    endpoint = measure.ensure_jaeger()
    trees = max(requests // 5, 1)
    records = encode(workload(trees, (requests - trees) // trees, "-traced"))
    headers: list[Headers] = list(measure.traceparents(len(records)))
    contenders = measure.tracing_contenders("spawn gate", endpoint, baseline)
    for _ in range(rounds):
        for contender in contenders:
            settings = fresh_topics(scratch, "trace")
            services = start_gates(settings, 1, contender.env, contender.checkout)
            try:
                seconds = drain(settings, GATE_GROUP, services, 1, records, headers)
            finally:
                measure.stop_all(services)
            cpu_us = services[0].cpu_span_s / len(records) * 1e6
            contender.series.add(len(records) / seconds, cpu_us, services[0].memory())
    title = f"tracing: {len(records):,} requests, each with a trace of its own, 1 worker, {rounds} rounds"
    measure.print_tracing(title, contenders, baseline)


# -- latency ------------------------------------------------------------------------------


def append_times(settings: Settings, topic: str, key: Callable[[bytes], str]) -> dict[str, int]:
    return {key(r.value): r.timestamp_ms for r in read_topic(settings, settings.topic_prefix + topic) if r.value}


def delays_ms(settings: Settings, gate: bool, skip: set[str]) -> list[float]:
    """Append → append delay of each request's decision (gate) or copy (pass-through)."""
    serde = Serde()

    def event_id(value: bytes) -> str:
        return str(serde.decode(value).meta.event_id)

    requests = append_times(settings, SPAWN_REQUESTS.name, event_id)
    if gate:
        out = [
            (str(serde.decode(r.value).meta.causation_id), r.timestamp_ms)
            for r in read_topic(settings, settings.topic_prefix + POLICY_DECISIONS.name)
            if r.value
        ]
    else:
        out = [
            (event_id(r.value), r.timestamp_ms)
            for r in read_topic(settings, settings.topic_prefix + RAW_OUT.name)
            if r.value
        ]
    return [float(ts - requests[cause]) for cause, ts in out if cause in requests and cause not in skip]


def latency(scratch: measure.Scratch, rate: int, seconds: int, rounds: int) -> None:
    total = rate * seconds
    warm_up = encode(workload(20, 2, tag="w"))
    load = encode(workload(max(total // 4, 1), 3)[:total])
    serde = Serde()
    warm_ids = {str(serde.decode(v).meta.event_id) for _k, v in warm_up}
    rows = {
        label: (suffix, start, members, measure.Series(f"{label}: p50", " ms"), measure.Series(f"{label}: p99", " ms"))
        for label, suffix, start, members, signed in contenders(1)
        if not signed
    }
    for _ in range(rounds):
        for suffix, start, members, p50, p99 in rows.values():
            settings = fresh_topics(scratch, "lat")
            services = start(settings)
            try:
                drain(settings, suffix, services, members, warm_up)  # assigned, policy read, deciding
                measure.paced(settings, [(SPAWN_REQUESTS.name, key, value) for key, value in load], rate)
                client = measure.admin(settings)
                tps = input_partitions(settings, suffix)
                measure.wait_committed(client, settings.topic_prefix + suffix, tps, services)
            finally:
                measure.stop_all(services)
            delays = delays_ms(settings, suffix == GATE_GROUP, warm_ids)
            memory = services[0].memory()
            p50.add(statistics.median(delays), memory=memory)
            p99.add(measure.pct(delays, 0.99), memory=memory)
    measure.print_table(
        f"latency at {rate:,} requests/s for {seconds}s, broker append of the request → append of the output,"
        f" {rounds} rounds",
        [s for row in rows.values() for s in row[3:]],
    )
    print("  goal: p99 ≤ 100 ms for the gate")


# -- memory -------------------------------------------------------------------------------


def memory(scratch: measure.Scratch, trees: int) -> None:
    settings = fresh_topics(scratch, "mem")
    records = encode(workload(trees, 1))
    services = start_gates(settings, 1)
    try:
        seconds = drain(settings, GATE_GROUP, services, 1, records)
    finally:
        measure.stop_all(services)
    print(
        f"\nmemory: {trees:,} live trees (root + 1 child each, {len(records):,} requests in {seconds:.1f}s):"
        f" gate worker peak RSS {services[0].memory()}   (goal ≤ 500 MiB)"
    )


# -- one large tree -----------------------------------------------------------------------


def big_tree(scratch: measure.Scratch, leads: int) -> None:
    """One tree of ``1 + leads * 200`` agents decided by one worker, then restored by a fresh process."""
    settings = fresh_topics(scratch, "big", to_event(wide_tree_policy(), published_by="bench"))
    records = encode(wide_tree(leads=leads))
    services = start_gates(settings, 1)
    try:
        seconds = drain(settings, GATE_GROUP, services, 1, records)
    finally:
        measure.stop_all(services)
    restore = measure.run_job([sys.executable, __file__, "--child", "restore"], measure.child_env(settings))
    print(
        f"\none tree of {len(records):,} agents: decided at {len(records) / seconds:,.0f} requests/s"
        f" (worker peak RSS {services[0].memory()}); a fresh process restores its partition in"
        f" {restore.seconds:.2f}s ({restore.cpu_s / max(restore.count, 1) * 1e6:.0f} µs CPU per agent),"
        f" peak RSS {restore.memory}"
    )


def restore_child(settings: Settings) -> None:
    """Restore every changelog partition, as a worker does on assignment; report the agents restored."""
    clock = measure.JobClock()
    count = tree_partition_count(settings)
    restored = restore_partitions(settings, list(range(count)), count)
    agents = sum(len(t.agents) for state, _ in restored.values() for t in state.trees.values())
    clock.report(agents)


# -- profile ------------------------------------------------------------------------------

PROFILE_BATCH = 500
"""Records decided between two encodes in the profile stage (a worker's batch is of this order)."""


def where_time_goes(count: int, rounds: int) -> None:
    """One core, no broker: decode, decide and encode rates of the same records, CPU time.

    As a worker does: batches of :data:`PROFILE_BATCH` records, each batch's events and outputs dropped once it is
    encoded, and what the setup built (the records, the policy) kept out of the garbage collector's generations
    (``gc.freeze``). Holding every output of the run instead made the collector walk them over and over, and cost
    more than the decisions: bench/README.md's earlier 133 µs a decision was mostly the collector's.
    """
    serde = Serde()
    events = workload(max(count // 5, 1), 4)[:count]
    raw = [
        InputRecord("t", 0, i, i, e.meta.root_id.encode(), serde.encode(e, "t"), source=REQUESTS)
        for i, e in enumerate(events)
    ]
    del events
    policy = from_event(bench_policy())
    stages = {name: measure.Series(name) for name in ("decode", "decide", "encode", "decode + decide + encode")}
    gc.collect()
    gc.freeze()
    try:
        for _ in range(rounds):
            state = PartitionState(partition=0, partitions=1)
            spent, outputs = [0.0, 0.0, 0.0], 0
            for first in range(0, count, PROFILE_BATCH):
                t0 = time.process_time()
                decoded = [decode_input(serde, r) for r in raw[first : first + PROFILE_BATCH]]
                t1 = time.process_time()
                decided = [out for e in decoded for out in decide(state, e, policy)]
                t2 = time.process_time()
                for out in decided:
                    serde.encode(out, "t")
                t3 = time.process_time()
                spent = [total + took for total, took in zip(spent, (t1 - t0, t2 - t1, t3 - t2), strict=True)]
                outputs += len(decided)
            stages["decode"].add(count / spent[0], spent[0] / count * 1e6)
            stages["decide"].add(count / spent[1], spent[1] / count * 1e6)
            stages["encode"].add(outputs / spent[2], spent[2] / outputs * 1e6)
            stages["decode + decide + encode"].add(count / sum(spent), sum(spent) / count * 1e6)
    finally:
        gc.unfreeze()
    measure.print_table(
        f"where the time goes (one core, CPU time, {count:,} requests in batches of {PROFILE_BATCH}, no broker,"
        f" {rounds} rounds)",
        list(stages.values()),
    )
    print("  goal: decode + decide + encode ≤ 60 µs per decision")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--trees", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds alternating the ceiling and the gate")
    parser.add_argument("--workers", type=int, default=2, help="also measure this many gate workers (1: only one)")
    parser.add_argument("--big-tree-leads", type=int, default=100, help="the large tree: 1 + 200 agents per lead")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["throughput", "tracing", "latency", "memory", "big-tree", "profile"]
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="tracing stage: also run the gate of this checkout (a worktree of an older commit), tracing off",
    )
    parser.add_argument("--keep", action="store_true", help="keep the topics and groups created")
    parser.add_argument("--child", choices=["passthrough", "restore"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "passthrough":
        passthrough_child(Settings())
        return
    if args.child == "restore":
        restore_child(Settings())
        return
    scratch = measure.Scratch(Settings(), keep=args.keep)
    print(f"gate benchmark on {scratch.base.bootstrap_servers}; {measure.load_average()}")
    try:
        if "profile" not in args.skip:
            where_time_goes(min(20_000, args.requests), args.rounds)
        if "throughput" not in args.skip:
            throughput(scratch, args.requests, args.rounds, args.workers)
        if "tracing" not in args.skip:
            tracing(scratch, args.requests, args.rounds, args.baseline)
        if "latency" not in args.skip:
            latency(scratch, args.rate, args.seconds, args.rounds)
        if "memory" not in args.skip:
            memory(scratch, args.trees)
        if "big-tree" not in args.skip:
            big_tree(scratch, args.big_tree_leads)
    finally:
        scratch.clean()


if __name__ == "__main__":
    main()
