"""Spawn-gate benchmark: sustained decisions/s, latency at a fixed load, memory with many trees.

Each figure is measured next to its ceiling in the same run on the same broker: a raw
pass-through that consumes the same input records and produces them unchanged, with the
same transactional batches (consume, produce, send offsets, commit) but no decoding, no
decision and no state. Latency is broker append time of the decision minus broker append
time of the request (one clock). Memory is the worker process's resident set size.

    python bench/gate.py [--requests 50000] [--rate 1000] [--seconds 20] [--trees 100000]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.producer import Producer as EventProducer
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import delete_topics, ensure_topics
from agentlog.topics import CATALOGUE, POLICY_DECISIONS, SPAWN_REQUESTS, TopicSpec
from processors.gate_input import decode_input
from processors.input_merge import REQUESTS, InputRecord
from processors.policy import from_event, load_default_policy, parse_policy, to_event
from processors.spawn_gate import decide
from processors.tree_state import PartitionState

# Run as a script, bench/ comes first on sys.path and bench/replay.py would shadow the
# ``replay`` package: drop the folder before importing from it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
from replay.gate_inputs import read_topic  # noqa: E402  (after the sys.path fix above)

REPO = Path(__file__).resolve().parent.parent


def bench_policy() -> ev.PolicyPublished:
    """The default policy with caps high enough for 100,000 live trees."""
    document = load_default_policy().model_dump(mode="json")
    document["limits"].update(max_active_per_tenant=10_000_000, max_active_platform=10_000_000)
    document["configs"] = [dict(c, max_spawn_grant=max(c["max_spawn_grant"], 4)) for c in document["configs"]]
    return to_event(parse_policy(document, "bench"), published_by="bench")


def workload(trees: int, children: int) -> list[ev.Event]:
    """Registrations then spawn requests, trees interleaved."""
    events: list[ev.Event] = []
    for t in range(trees):
        meta = ev.Meta(tenant_id=f"tenant-{t % 50}", root_id=f"root-{t}", producer="bench")
        events.append(
            ev.RootAgentRegistered(
                meta=meta,
                agent_id=f"root-{t}",
                config="orchestrator",
                token_budget=1_000_000,
                spawn_budget=children * 2,
            )
        )
    for c in range(children):
        for t in range(trees):
            meta = ev.Meta(tenant_id=f"tenant-{t % 50}", root_id=f"root-{t}", producer="bench")
            events.append(
                ev.SpawnRequested(
                    meta=meta,
                    parent_agent_id=f"root-{t}",
                    child_config="summarizer",
                    task=ev.TaskSpec(title=f"part {c}"),
                    requested_token_budget=1_000,
                )
            )
    return events


def start_worker(settings: Settings, worker_id: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AGENTLOG_TOPIC_PREFIX": settings.topic_prefix,
        "AGENTLOG_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentlog.cli.main",
            "processors",
            "run",
            "--worker-id",
            worker_id,
            "--log-level",
            os.environ.get("GATE_LOG_LEVEL", "WARNING"),  # DEBUG: the time of each batch's steps
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def count_records(settings: Settings, topic: str) -> tuple[int, int, int]:
    """(records, first append ms, last append ms) of a topic, read_committed."""
    n, first, last = 0, None, 0
    for _p, _o, ts, _k, _v in read_topic(settings, topic):
        n += 1
        first = ts if first is None else min(first, ts)
        last = max(last, ts)
    return n, first or 0, last


def wait_for(settings: Settings, topic: str, expected: int, timeout_s: float) -> tuple[int, int, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        n, first, last = count_records(settings, topic)
        if n >= expected or time.monotonic() > deadline:
            return n, first, last
        time.sleep(1)


def pass_through(settings: Settings, source: str, target: str, expected: int) -> None:
    """The ceiling: consume → produce the same bytes, one transaction per batch, no decisions."""
    consumer = Consumer({**kafka_config.reader(settings, f"{settings.topic_prefix}raw"), "fetch.wait.max.ms": 10})
    producer = Producer({**kafka_config.producer(settings, f"{settings.topic_prefix}raw"), "linger.ms": 2})
    producer.init_transactions(30)
    consumer.subscribe([source])
    moved = 0
    while moved < expected:
        batch = [m for m in consumer.consume(2000, 0.02) if m.error() is None]
        if not batch:
            continue
        producer.begin_transaction()
        for msg in batch:
            producer.produce(target, msg.value(), msg.key(), partition=msg.partition())
        offsets = {}
        for msg in batch:
            offsets[(msg.topic(), msg.partition())] = (msg.offset() or 0) + 1
        producer.send_offsets_to_transaction(
            [TopicPartition(t, p, o) for (t, p), o in offsets.items()], consumer.consumer_group_metadata(), 30
        )
        producer.commit_transaction(30)
        moved += len(batch)
    consumer.close()


def fresh_settings(label: str) -> Settings:
    settings = Settings(topic_prefix=f"bench-{label}-{uuid.uuid4().hex[:6]}.")
    ensure_topics(settings)
    ensure_topics(settings, (TopicSpec("raw.out", 6, (), "root_id", "bench ceiling output"),))
    with EventProducer(settings) as producer:
        producer.publish(bench_policy())
    return settings


def cleanup(settings: Settings) -> None:
    delete_topics(
        settings,
        [settings.topic_prefix + s.name for s in CATALOGUE]
        + [settings.topic_prefix + "raw.out", settings.topic_prefix + "agentlog.spawn-gate.changelog"],
    )


def throughput(requests: int) -> None:
    trees = max(requests // 5, 1)
    events = workload(trees, (requests - trees) // trees)
    settings = fresh_settings("tp")
    try:
        with EventProducer(settings) as producer:
            producer.publish_many(events)
        requests_topic = settings.topic_prefix + SPAWN_REQUESTS.name
        started = time.monotonic()
        pass_through(settings, requests_topic, settings.topic_prefix + "raw.out", len(events))
        raw_s = time.monotonic() - started
        worker = start_worker(settings, "bench")
        n, first, last = wait_for(settings, settings.topic_prefix + POLICY_DECISIONS.name, len(events), 600)
        peak = rss_mib(worker.pid)
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        gate_rate = n / max((last - first) / 1000, 1e-3)
        print(f"\nthroughput: {len(events):,} requests ({trees:,} trees) already on the topic")
        print(f"  raw pass-through (consume → produce, transactions)  {len(events) / raw_s:>10,.0f} records/s")
        print(
            f"  spawn gate (decode → decide → encode, transactions) {gate_rate:>10,.0f} decisions/s"
            f"   ratio {gate_rate / (len(events) / raw_s):.0%}   (goal ≥ 5,000/s)"
        )
        print(f"  worker resident memory after it: {peak:,.0f} MiB")
    finally:
        cleanup(settings)


def latency(rate: int, seconds: int) -> None:
    settings = fresh_settings("lat")
    worker = start_worker(settings, "bench-lat")
    try:
        time.sleep(5)  # let the worker join its group and read the policy
        total = rate * seconds
        events = workload(max(total // 4, 1), 3)[:total]
        with EventProducer(settings) as producer:
            started = time.monotonic()
            for i in range(0, len(events), max(rate // 100, 1)):
                producer.publish_many(events[i : i + max(rate // 100, 1)])
                pause = started + (i / rate) - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        wait_for(settings, settings.topic_prefix + POLICY_DECISIONS.name, len(events), 120)
        requests = {
            str(_decode_meta(v).event_id): ts
            for _p, _o, ts, _k, v in read_topic(settings, settings.topic_prefix + SPAWN_REQUESTS.name)
        }
        delays = []
        for _p, _o, ts, _k, v in read_topic(settings, settings.topic_prefix + POLICY_DECISIONS.name):
            cause = _decode_meta(v).causation_id
            if cause is not None and str(cause) in requests:
                delays.append(ts - requests[str(cause)])
        delays.sort()
        p50, p99 = statistics.median(delays), delays[int(len(delays) * 0.99) - 1]
        print(f"\nlatency at {rate:,} requests/s for {seconds}s ({len(delays):,} decisions, append → append):")
        print(f"  p50 {p50:.0f} ms   p99 {p99:.0f} ms   max {delays[-1]:.0f} ms   (goal p99 ≤ 100 ms)")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        cleanup(settings)


_SERDE = Serde()


def _decode_meta(value: bytes | None) -> ev.Meta:
    return _SERDE.decode(value or b"").meta


def memory(trees: int) -> None:
    settings = fresh_settings("mem")
    try:
        with EventProducer(settings) as producer:
            producer.publish_many(workload(trees, 1))
        worker = start_worker(settings, "bench-mem")
        n, _, _ = wait_for(settings, settings.topic_prefix + POLICY_DECISIONS.name, trees * 2, 900)
        size = rss_mib(worker.pid)
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        print(
            f"\nmemory: {trees:,} live trees (root + 1 child each, {n:,} decisions): worker RSS {size:,.0f} MiB"
            "   (goal ≤ 500 MiB)"
        )
    finally:
        cleanup(settings)


def where_time_goes(count: int) -> None:
    """One core, no broker: decode, decide and encode rates of the same records."""
    serde = Serde()
    events = workload(max(count // 5, 1), 4)[:count]
    raw = [InputRecord(REQUESTS, "t", 0, i, i, None, serde.encode(e, "t")) for i, e in enumerate(events)]
    state = PartitionState(partition=0, partitions=1)
    policy = from_event(bench_policy())
    t0 = time.perf_counter()
    decoded = [decode_input(serde, r) for r in raw]
    t1 = time.perf_counter()
    outputs = [out for e in decoded for out in decide(state, e, policy)]
    t2 = time.perf_counter()
    for out in outputs:
        serde.encode(out, "t")
    t3 = time.perf_counter()
    print(f"\nwhere the time goes (one core, {count:,} requests, no broker):")
    print(
        f"  decode {count / (t1 - t0):>10,.0f}/s   decide {count / (t2 - t1):>10,.0f}/s"
        f"   encode {len(outputs) / (t3 - t2):>10,.0f}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--trees", type=int, default=100_000)
    parser.add_argument("--skip", nargs="*", default=[], choices=["throughput", "latency", "memory", "profile"])
    args = parser.parse_args()
    if "profile" not in args.skip:
        where_time_goes(20_000)
    if "throughput" not in args.skip:
        throughput(args.requests)
    if "latency" not in args.skip:
        latency(args.rate, args.seconds)
    if "memory" not in args.skip:
        memory(args.trees)


if __name__ == "__main__":
    main()
