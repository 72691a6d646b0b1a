"""The SDK's side of the control plane: how soon a handle hears a fact, and what many handles cost.

1. **Signal latency.** A gate worker runs; one client registers ``--trees`` roots and
   spawns ``--children`` children of each (1,000 agents by default), each a handle with a
   callback. Then the roots are terminated one at a time, every ``--pace-ms``: each
   termination cascades to its children as ``AgentTerminated`` facts. A signal's latency is
   the time from the broker appending the fact (its ``LogAppendTime``) to the handle's
   callback being called. The ceiling, in the same run and a process of its own: a plain
   confluent-kafka consumer (``read_committed``) on the same decisions partitions, from the
   append to the poll that returns the record. Goal: p99 ≤ 50 ms.
2. **Memory and idle CPU.** A child process attaches ``--handles`` handles (10,000 by
   default) over 100 trees, then sits idle for ``--idle-s`` seconds with them: its
   resident memory before and after, and the CPU it spends idle. Goal: ≤ 200 MiB.
   Then it beats for all of them (``--beat-ms``, the policy's default interval of 10 s,
   all due at once: the worst case, one batch of every handle) for ``--beat-s`` seconds:
   the CPU that costs and the beats the broker acknowledged per second (10,000 agents
   every 10 s are 1,000 records/s).

Run: ``python bench/sdk.py`` (``--trees 5 --children 4 --handles 500`` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import measure
import psutil
from confluent_kafka import Consumer, TopicPartition
from gate import bench_policy

from agentlog import kafka_config
from agentlog.client import AgentlogClient
from agentlog.handles import AgentHandle, Signal
from agentlog.producer import Producer as EventProducer
from agentlog.settings import Settings
from agentlog.topics import POLICY_DECISIONS
from agentlog.watermarks import watermarks


class PlainFollower:
    """The ceiling: a plain consumer of the decisions topic, recording append → poll per record."""

    def __init__(self, settings: Settings) -> None:
        topic = settings.topic_prefix + POLICY_DECISIONS.name
        self.consumer = Consumer(kafka_config.reader(settings))
        count = len(self.consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        self.consumer.assign([TopicPartition(topic, p, watermarks(self.consumer, topic, p)[1]) for p in range(count)])
        self.latencies_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.consumer.poll(0.05)  # returns on the first record that arrives
            if msg is not None and msg.error() is None:
                self.latencies_ms.append(time.time() * 1000 - msg.timestamp()[1])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.consumer.close()


def plain_child() -> None:
    """The ceiling's own process: follow until SIGTERM, then print the latencies as one JSON line."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    follower = PlainFollower(Settings())
    print("ready", flush=True)
    stop.wait()
    follower.close()
    print(json.dumps({"latencies_ms": follower.latencies_ms}), flush=True)


def start_plain_follower(settings: Settings) -> subprocess.Popen[str]:
    """The plain consumer in a process of its own (no GIL shared with the client), once it has its positions."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", "plain"],
        env=measure.child_env(settings),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise SystemExit("the plain consumer did not start")
    return child


def stop_plain_follower(child: subprocess.Popen[str]) -> list[float]:
    child.terminate()
    out, _ = child.communicate(timeout=60)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit("the plain consumer printed no result")
    latencies: list[float] = json.loads(lines[-1])["latencies_ms"]
    return latencies


def one_round(settings: Settings, trees: int, children: int, pace_ms: int) -> tuple[list[float], list[float]]:
    """The latencies of every signal in one run, and those of the plain consumer over the same records."""
    with EventProducer(settings) as producer:
        producer.publish(bench_policy())
    gate = measure.Service(
        measure.agentlog_command("processors", "run", "--worker-id=bench-sdk", "--log-level=WARNING"),
        measure.child_env(settings),
        "gate worker",
    )
    try:
        with AgentlogClient("bench", settings, timeout=60) as client:
            roots = [client.start_root("orchestrator", 2_000_000, children + 1) for _ in range(trees)]
            parents = [root for root in roots for _ in range(children)]
            with ThreadPoolExecutor(8) as pool:
                handles = list(pool.map(lambda r: r.spawn("researcher", "find", 1_000), parents))
            latencies: list[float] = []
            heard = threading.Event()

            def on_signal(signal: Signal) -> None:
                latencies.append(time.time() * 1000 - signal.appended_ms)
                if len(latencies) >= len(handles):
                    heard.set()

            for handle in handles:
                handle.on_signal(on_signal)
            ceiling = start_plain_follower(settings)
            for root in roots:
                root.terminate("bench")
                time.sleep(pace_ms / 1000)
            if not heard.wait(120):
                raise SystemExit(f"only {len(latencies)} of {len(handles)} signals arrived")
            time.sleep(0.5)
            plain = stop_plain_follower(ceiling)
            gate.check_alive()
    finally:
        gate.stop()
    return latencies, plain


def signal_latency(scratch: measure.Scratch, trees: int, children: int, pace_ms: int, rounds: int) -> None:
    sdk = measure.Series("handle callback (one client, every agent a handle)", unit=" ms")
    plain = measure.Series("plain consumer poll, own process (ceiling)", unit=" ms")
    for round_number in range(rounds):
        latencies, plain_latencies = one_round(scratch.settings(f"sdk-{round_number}"), trees, children, pace_ms)
        sdk.add(measure.pct(latencies, 0.99))
        plain.add(measure.pct(plain_latencies, 0.99))
        print(
            f"  round {round_number + 1}: {len(latencies):,} signals, p50 {statistics.median(latencies):.1f} ms,"
            f" p99 {measure.pct(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms;"
            f" plain consumer p99 {measure.pct(plain_latencies, 0.99):.1f} ms",
            flush=True,
        )
    measure.print_table(
        f"signal latency, fact appended → callback, p99 per round ({trees * children:,} agents, {rounds} rounds)",
        [plain, sdk],
        value_fmt=",.1f",
    )
    print("  goal: p99 ≤ 50 ms")


def memory_child(handles: int, idle_s: float, beat_ms: int, beat_s: float) -> None:
    """Attach ``handles`` handles in one client, then idle, then beat for them; report RSS, idle CPU and the
    heartbeats' CPU as the job's line."""
    settings = Settings()
    process = psutil.Process()
    clock = measure.JobClock()
    with AgentlogClient("bench", settings, timeout=30) as client:
        before = process.memory_info().rss
        held: list[AgentHandle] = [client.attach(f"bench/root-{i % 100}", f"agent-{i}") for i in range(handles)]
        after = process.memory_info().rss
        cpu = process.cpu_times()
        time.sleep(idle_s)
        idle = process.cpu_times()
        idle_cpu = (idle.user + idle.system) - (cpu.user + cpu.system)
        for handle in held:  # as if the gate had answered each start with this interval
            client.heartbeats.watch(handle, beat_ms, 3 * beat_ms)
        time.sleep(beat_s)
        beating = process.cpu_times()
        beat_cpu = (beating.user + beating.system) - (idle.user + idle.system)
        clock.report(
            len(held),
            rss_before_mib=before / 2**20,
            rss_after_mib=after / 2**20,
            idle_cpu_pct=100 * idle_cpu / idle_s,
            beat_cpu_pct=100 * beat_cpu / beat_s,
            beats_per_s=client.heartbeats.sent / beat_s,
            beat_failures=client.heartbeats.failed,
        )


def memory(scratch: measure.Scratch, handles: int, idle_s: float, beat_ms: int, beat_s: float) -> None:
    settings = scratch.settings("sdk-memory")
    argv = [sys.executable, __file__, "--child", "memory", "--handles", str(handles), "--idle-s", str(idle_s)]
    argv += ["--beat-ms", str(beat_ms), "--beat-s", str(beat_s)]
    result = measure.run_job(argv, measure.child_env(settings))
    extra = result.extra
    print(f"\nmemory: one client with {result.count:,} handles ({idle_s:g} s idle with them)")
    print(
        f"  resident memory {extra['rss_before_mib']:,.0f} MiB before the handles, {extra['rss_after_mib']:,.0f} MiB"
        f" after; peak of the process {result.memory}"
    )
    per_handle = (extra["rss_after_mib"] - extra["rss_before_mib"]) * 2**20 / max(result.count, 1)
    print(f"  about {per_handle:,.0f} bytes per handle; idle CPU {extra['idle_cpu_pct']:.1f} % of a core")
    print("  goal: ≤ 200 MiB with 10,000 handles")
    per_beat_us = extra["beat_cpu_pct"] / 100 * 1e6 / max(extra["beats_per_s"], 1e-9)
    print(
        f"  heartbeats every {beat_ms:,} ms for all of them, {beat_s:g} s: {extra['beats_per_s']:,.0f} beats/s"
        f" acknowledged, {extra['beat_cpu_pct']:.1f} % of a core ({per_beat_us:,.0f} µs of CPU a beat),"
        f" {extra['beat_failures']} failed batches"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--children", type=int, default=5, help="at most the policy's max_parallel_children (5)")
    parser.add_argument("--pace-ms", type=int, default=10, help="milliseconds between two root terminations")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--handles", type=int, default=10_000)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--beat-ms", type=int, default=10_000, help="heartbeat interval of the memory part")
    parser.add_argument("--beat-s", type=float, default=30.0, help="how long the memory part beats")
    parser.add_argument("--skip", nargs="*", default=[], choices=["latency", "memory"])
    parser.add_argument("--keep", action="store_true", help="keep the topics and groups created")
    parser.add_argument("--child", choices=["memory", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "memory":
        memory_child(args.handles, args.idle_s, args.beat_ms, args.beat_s)
        return
    if args.child == "plain":
        plain_child()
        return
    scratch = measure.Scratch(Settings(), keep=args.keep)
    print(f"sdk benchmark on {scratch.base.bootstrap_servers}; {measure.load_average()}")
    try:
        if "latency" not in args.skip:
            signal_latency(scratch, args.trees, args.children, args.pace_ms, args.rounds)
        if "memory" not in args.skip:
            memory(scratch, args.handles, args.idle_s, args.beat_ms, args.beat_s)
    finally:
        scratch.clean()


if __name__ == "__main__":
    main()
