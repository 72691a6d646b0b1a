"""Does faust-streaming's ``processing_guarantee="exactly_once"`` survive SIGKILL and rebalances?

Why: the spawn-gate processor must give every request exactly one decision. faust-streaming
(0.15.x, on aiokafka) advertises exactly-once consume->produce via Kafka transactions, but
upstream has open reports of duplicates (faust-streaming/faust#517 duplicates after
kill+restart, #323 crash and duplicates on rebalance, #502). This script measures it instead
of trusting it.

What it does, per variant:

* creates two fresh topics IN and OUT (6 partitions each) and a fresh faust app id;
* a faust worker (memory store, no tables, ``exactly_once``) reads IN and, for every record,
  sends one record to OUT with the same key and value ``"<in partition>:<in offset>"``, so
  every output names exactly one input;
* a plain confluent-kafka producer writes ``--records`` inputs to IN while the workers run
  (at ``--rate`` records/s, keys spread over ``--keys`` ids, murmur2 partitioner so that OUT
  is co-partitioned with IN, which faust's per-partition transactional producers need);
* the orchestrator SIGKILLs a worker ``--kills`` times at random moments, restarting it
  each time and timing how long until every lagging IN partition makes progress again;
* variant ``single``: one worker; variant ``rebalance``: a second worker joins midway
  (rebalance) and kills pick one of the two workers at random;
* sink ``plain``: the app consumes only IN, the normal way to write a faust processor.
  faust 0.15.3 picks the transactional producer from the *consumer's* metadata for the
  destination topic (``TransactionManager.send`` -> ``consumer.key_partition``); a topic the
  worker does not consume has none, so the send silently goes through the ordinary,
  non-transactional producer (cf. faust-streaming/faust#177). Sink ``subscribed``: the app
  also runs a no-op agent on OUT, so sends do go through the per-partition transactional
  producers; this tests faust's transaction handling itself;
* when all input is committed (or ``--drain-timeout`` passes) the workers get SIGTERM and
  OUT is read from the beginning with ``isolation.level=read_committed``.

It prints, per variant: inputs, committed outputs, missing inputs (no output), duplicated
inputs (more than one output) and the surplus copies, outputs naming no input, outputs
whose key differs from their input's key, holes in OUT's offsets (0 = no transaction ever
wrote to OUT), the same figures for ``read_uncommitted`` (which shows aborted transactional
writes), per-kill recovery times, worker exit codes (None = SIGTERM did not stop it within
60 s, so it was killed), and error/traceback lines found in the worker logs. It asserts
nothing: it is an experiment, the figures are the result.

Usage::

    python bench/faust_eos_check.py --records 20000 --kills 10
    python bench/faust_eos_check.py --variant rebalance --sink subscribed --kills 12

Needs a Kafka broker with transactions (``bash deploy/local/stack.sh up``), faust-streaming
and confluent-kafka. Worker logs are kept in ``--workdir`` (default: a temp directory).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

PARTITIONS = 6

# faust settings used by the worker. The timeouts are lowered (defaults: session 60 s,
# heartbeat 3 s, rebalance 60 s, commit interval 2.8 s) so a killed member is evicted and
# its partitions are reassigned within seconds rather than a minute.
FAUST_SETTINGS = {
    "processing_guarantee": "exactly_once",
    "store": "memory://",
    "topic_partitions": PARTITIONS,
    "topic_allow_declare": False,
    "consumer_auto_offset_reset": "earliest",
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 1.0,
    "broker_rebalance_timeout": 10.0,
    "broker_commit_interval": 1.0,
    "web_enabled": False,
}


# --------------------------------------------------------------------------- worker side


def run_worker(args: argparse.Namespace) -> None:
    """Run one faust worker (in a subprocess started by the orchestrator)."""
    import faust

    app = faust.App(args.app_id, broker=f"kafka://{args.bootstrap}", **FAUST_SETTINGS)
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    in_topic = app.topic(args.in_topic, **raw)
    out_topic = app.topic(args.out_topic, **raw)

    @app.agent(in_topic)
    async def forward(stream):
        async for event in stream.events():
            msg = event.message
            await out_topic.send(key=msg.key, value=f"{msg.partition}:{msg.offset}".encode())

    if args.sink == "subscribed":
        # Workaround experiment: also consume OUT (doing nothing with it), so the worker's
        # consumer has OUT's metadata and faust can map the send to a transactional producer.
        @app.agent(out_topic)
        async def ignore_out(stream):
            async for _ in stream:
                pass

    # --without-web: the worker CLI starts the web server (port 6066) even with web_enabled=False,
    # and two workers on one host would collide.
    sys.argv = [sys.argv[0], "worker", "-l", args.loglevel, "--without-web"]
    app.main()


# --------------------------------------------------------------------- orchestrator side


@dataclass
class Kill:
    worker: str
    at: float  # seconds since variant start
    lagging: int  # IN partitions with uncommitted input at the moment of the kill
    recovery: float | None  # seconds until every lagging partition advanced; None = timed out


@dataclass
class Worker:
    name: str
    cmd: list[str]
    logdir: str
    proc: subprocess.Popen | None = None
    starts: int = 0
    logs: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.starts += 1
        path = os.path.join(self.logdir, f"{self.name}-{self.starts:02d}.log")
        self.logs.append(path)
        with open(path, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class Offsets:
    """Committed offsets of the faust group vs end offsets of IN."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        from confluent_kafka import (
            Consumer,
            ConsumerGroupTopicPartitions,
            KafkaException,
            TopicPartition,
        )
        from confluent_kafka.admin import AdminClient

        self._tp = TopicPartition
        self._error = KafkaException
        self._req = ConsumerGroupTopicPartitions
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.meta = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}-probe"})
        self.group, self.topic = group, topic

    def committed(self) -> list[int]:
        req = self._req(self.group, [self._tp(self.topic, p) for p in range(PARTITIONS)])
        try:
            res = self.admin.list_consumer_group_offsets([req])[self.group].result()
        except self._error:  # group may not exist yet / coordinator busy
            return [0] * PARTITIONS
        got = {tp.partition: max(tp.offset, 0) for tp in res.topic_partitions}
        return [got.get(p, 0) for p in range(PARTITIONS)]

    def ends(self) -> list[int]:
        for attempt in range(50):
            try:
                return [
                    self.meta.get_watermark_offsets(self._tp(self.topic, p), timeout=10)[1] for p in range(PARTITIONS)
                ]
            except self._error:  # e.g. NOT_LEADER right after topic creation
                if attempt == 49:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.meta.close()


def create_topics(bootstrap: str, *names: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    for fut in futures.values():
        fut.result()


def delete_scratch(bootstrap: str, app_id: str, *topics: str) -> None:
    """Remove the run's topics, faust's internal topics of the app and the consumer groups it used."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    doomed = [t for t in admin.list_topics(timeout=10).topics if t in topics or t.startswith(app_id)]
    for fut in admin.delete_topics(doomed).values() if doomed else ():
        fut.result()
    prefixes = (app_id, *topics)
    groups = [g.group_id for g in admin.list_consumer_groups().result().valid if g.group_id.startswith(prefixes)]
    for fut in admin.delete_consumer_groups(groups).values() if groups else ():
        try:
            fut.result()
        except Exception as e:  # a group whose members are still leaving: say so, keep the figures
            print(f"  (consumer group not deleted: {e})")


def produce(bootstrap: str, topic: str, records: int, keys: int, rate: float, done: threading.Event) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    start = time.monotonic()
    for i in range(records):
        if rate > 0:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.produce(topic, key=f"req-{i % keys:05d}".encode(), value=str(i).encode())
        producer.poll(0)
    producer.flush(60)
    done.set()


def read_all(bootstrap: str, topic: str, isolation: str) -> list[tuple[int, int, bytes, bytes]]:
    """(partition, offset, key, value) of every record visible at the given isolation level."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, -2) for p in range(PARTITIONS)])  # -2 = beginning
    at_eof: set[int] = set()
    rows = []
    deadline = time.monotonic() + 120
    while len(at_eof) < PARTITIONS and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 1.0):
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_eof.add(msg.partition())
                continue
            at_eof.discard(msg.partition())
            rows.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
    consumer.close()
    if len(at_eof) < PARTITIONS:
        print(f"  WARNING: {topic} ({isolation}) not read to the end within 120 s")
    return rows


def count(inputs: dict[str, bytes], outputs: list[tuple[int, int, bytes, bytes]]) -> dict[str, int]:
    per_input = collections.Counter(value.decode() for _, _, _, value in outputs)
    wrong_key = sum(1 for _, _, key, value in outputs if value.decode() in inputs and inputs[value.decode()] != key)
    return {
        "outputs": len(outputs),
        "missing": sum(1 for ref in inputs if ref not in per_input),
        "duplicated_inputs": sum(1 for ref, n in per_input.items() if n > 1 and ref in inputs),
        "surplus_copies": sum(n - 1 for ref, n in per_input.items() if n > 1 and ref in inputs),
        "unknown_refs": sum(n for ref, n in per_input.items() if ref not in inputs),
        "wrong_key": wrong_key,
    }


def offset_gaps(rows: list[tuple[int, int, bytes, bytes]]) -> int:
    """Holes in OUT's offsets as seen by read_committed.

    Every transaction leaves a commit/abort marker that takes an offset (and aborted records
    are skipped), so zero holes means no record reached OUT through a Kafka transaction.
    """
    by_partition = collections.defaultdict(list)
    for partition, offset, _, _ in rows:
        by_partition[partition].append(offset)
    gaps = 0
    for offsets in by_partition.values():
        offsets.sort()
        gaps += offsets[0] > 0
        gaps += sum(1 for a, b in itertools.pairwise(offsets) if b - a > 1)
    return gaps


def scan_logs(paths: list[str]) -> tuple[int, collections.Counter]:
    """Number of tracebacks and the distinct ERROR/CRITICAL/exception lines in worker logs."""
    tracebacks = 0
    lines: collections.Counter = collections.Counter()
    for path in paths:
        with open(path, errors="replace") as fh:
            for raw_line in fh:
                line = raw_line.replace("\x1b[?25l", "").replace("\x1b[?25h", "")  # terminal escapes
                if line.startswith("Traceback"):
                    tracebacks += 1
                if any(s in line for s in ("[ERROR]", "[CRITICAL]", "Error:", "Exception", "Fenced", "fenced")):
                    text = line.split("] ", 3)[-1].strip() if line.startswith("[") else line.strip()
                    lines[text[:200]] += 1
    return tracebacks, lines


class Run:
    """One variant: topics, workers, the kill loop, the drain and the final count."""

    def __init__(self, args: argparse.Namespace, variant: str, sink: str, logroot: str) -> None:
        self.args, self.variant, self.sink = args, variant, sink
        self.rng = random.Random(args.seed)
        tag = f"{variant}-{sink}-{uuid.uuid4().hex[:8]}"
        self.in_topic, self.out_topic, self.app_id = f"eos-in-{tag}", f"eos-out-{tag}", f"eos-app-{tag}"
        logdir = os.path.join(logroot, tag)
        os.makedirs(logdir)
        print(f"\n=== variant {variant}, sink {sink}: app {self.app_id}, {self.in_topic} -> {self.out_topic}")
        print(f"  worker logs: {logdir}")
        create_topics(args.bootstrap, self.in_topic, self.out_topic)
        cmd = [sys.executable, os.path.abspath(__file__), "worker", "--app-id", self.app_id]
        cmd += ["--in-topic", self.in_topic, "--out-topic", self.out_topic, "--sink", sink]
        cmd += ["--bootstrap", args.bootstrap, "--loglevel", args.loglevel]
        self.workers = [Worker(f"w{i + 1}", cmd, logdir) for i in range(2 if variant == "rebalance" else 1)]
        self.offsets = Offsets(args.bootstrap, self.app_id, self.in_topic)
        self.produced = threading.Event()
        self.kills: list[Kill] = []
        self.crashes: list[str] = []
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def revive(self) -> None:
        """Restart a worker that exited on its own (crash) and remember that it did."""
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is not None:
                self.crashes.append(f"{w.name} run {w.starts} exited with {w.proc.returncode}")
                print(f"  t={self.now():6.1f}s {self.crashes[-1]} (not killed by us) -> restarting")
                w.start()

    def wait_progress(self, since: list[int], timeout: float) -> float | None:
        """Seconds until every partition that had pending input at `since` committed more."""
        start = time.monotonic()
        ends = self.offsets.ends()
        lagging = [p for p in range(PARTITIONS) if since[p] < ends[p]]
        while time.monotonic() - start < timeout:
            self.revive()
            now = self.offsets.committed()
            if all(now[p] > since[p] for p in lagging):
                return time.monotonic() - start
            time.sleep(0.2)
        return None

    def kill_one(self, number: int) -> None:
        victim = self.rng.choice([w for w in self.workers if w.proc is not None])
        before = self.offsets.committed()
        lagging = sum(1 for p, end in enumerate(self.offsets.ends()) if before[p] < end)
        at = self.now()
        victim.kill()
        victim.start()
        recovery = self.wait_progress(before, self.args.recovery_timeout) if lagging else None
        self.kills.append(Kill(victim.name, at, lagging, recovery))
        rec = f"{recovery:.1f} s" if recovery is not None else "TIMEOUT"
        rec = rec if lagging else "n/a (nothing pending)"
        print(f"  t={at:6.1f}s kill #{number} {victim.name} (lagging partitions {lagging}) -> recovered in {rec}")

    def drive(self) -> tuple[bool, list[int | None]]:
        """Produce, kill and restart, drain; returns (drained, worker exit codes)."""
        args = self.args
        producer_args = (args.bootstrap, self.in_topic, args.records, args.keys, args.rate, self.produced)
        threading.Thread(target=produce, args=producer_args, daemon=True).start()
        self.workers[0].start()
        while sum(self.offsets.ends()) < PARTITIONS * 10:  # some input in every partition first
            time.sleep(0.2)
        first = self.wait_progress([0] * PARTITIONS, 120)
        print(f"  first worker processing after {first if first is None else round(first, 1)} s")
        for k in range(args.kills):
            if len(self.workers) > 1 and self.workers[1].proc is None and k >= args.kills // 2:
                self.workers[1].start()
                print(f"  t={self.now():6.1f}s second worker started (rebalance)")
                time.sleep(self.rng.uniform(0.0, 3.0))  # kill during or right after the rebalance
            else:
                time.sleep(self.rng.uniform(args.min_gap, args.max_gap))
            self.revive()
            self.kill_one(k + 1)
        for w in self.workers:
            if w.proc is None:
                w.start()

        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline:
            self.revive()
            if self.produced.is_set() and self.offsets.committed() == self.offsets.ends():
                break
            time.sleep(0.5)
        drained = self.produced.is_set() and self.offsets.committed() == self.offsets.ends()
        print(
            f"  drained={drained} after {self.now():.1f} s; "
            f"committed {sum(self.offsets.committed())} / {sum(self.offsets.ends())}"
        )
        return drained, [w.stop() for w in self.workers]

    def run(self) -> None:
        try:
            _, codes = self.drive()
            elapsed = self.now()
            print(f"  workers stopped (exit codes {codes}; None = ignored SIGTERM for 60 s, killed)")
        finally:
            for w in self.workers:  # only matters if something above raised
                if w.proc is not None and w.proc.poll() is None:
                    w.kill()
            self.offsets.close()
        try:
            self.report(elapsed)
        finally:
            if not self.args.keep:
                delete_scratch(self.args.bootstrap, self.app_id, self.in_topic, self.out_topic)

    def report(self, elapsed: float) -> None:
        bootstrap = self.args.bootstrap
        inputs = {f"{p}:{o}": key for p, o, key, _ in read_all(bootstrap, self.in_topic, "read_committed")}
        out_rows = read_all(bootstrap, self.out_topic, "read_committed")
        committed = count(inputs, out_rows)
        committed["offset_gaps"] = offset_gaps(out_rows)
        uncommitted = count(inputs, read_all(bootstrap, self.out_topic, "read_uncommitted"))
        recoveries = [k.recovery for k in self.kills if k.recovery is not None]
        timeouts = sum(1 for k in self.kills if k.lagging and k.recovery is None)
        tracebacks, errors = scan_logs([p for w in self.workers for p in w.logs])

        head = f"{self.variant}/{self.sink}: kills={len(self.kills)} inputs={len(inputs)}"
        print(f"  RESULT {head} elapsed={elapsed:.1f}s")
        print(f"    read_committed  : {committed}")
        print(f"    read_uncommitted: {uncommitted}")
        if recoveries:
            mean = sum(recoveries) / len(recoveries)
            print(
                f"    recovery after kill: min {min(recoveries):.1f} s, max {max(recoveries):.1f} s, "
                f"mean {mean:.1f} s; timeouts {timeouts}"
            )
        starts = ", ".join(f"{w.name}={w.starts}" for w in self.workers)
        print(f"    worker starts: {starts}; tracebacks in logs: {tracebacks}")
        print(f"    unexpected worker exits: {len(self.crashes)} {self.crashes}")
        for line, n in errors.most_common(12):
            print(f"      {n:5d}x {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    worker = sub.add_parser("worker", help="(internal) run one faust worker")
    worker.add_argument("--app-id", required=True)
    worker.add_argument("--in-topic", required=True)
    worker.add_argument("--out-topic", required=True)
    worker.add_argument("--bootstrap", default="127.0.0.1:19092")
    worker.add_argument("--loglevel", default="warn")
    worker.add_argument("--sink", choices=["plain", "subscribed"], default="plain")

    parser.add_argument("--records", type=int, default=20000, help="input records per variant")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs per variant")
    parser.add_argument("--bootstrap", default=os.environ.get("AGENTLOG_BOOTSTRAP_SERVERS", "127.0.0.1:19092"))
    parser.add_argument("--variant", choices=["single", "rebalance", "both"], default="both")
    parser.add_argument(
        "--sink",
        choices=["plain", "subscribed", "both"],
        default="both",
        help="plain: the app only consumes IN (normal usage); subscribed: it also consumes OUT",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="input records/s (0 = as fast as possible)")
    parser.add_argument("--keys", type=int, default=5000, help="distinct keys (request ids)")
    parser.add_argument("--min-gap", type=float, default=0.5, help="min seconds between recovery and next kill")
    parser.add_argument("--max-gap", type=float, default=5.0, help="max seconds between recovery and next kill")
    parser.add_argument("--recovery-timeout", type=float, default=90.0)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--loglevel", default="warn", help="faust worker log level (crit/error/warn/info/debug)")
    parser.add_argument("--workdir", default=None, help="where worker logs go (default: new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the topics and consumer groups of each variant")
    args = parser.parse_args()

    if args.cmd == "worker":
        run_worker(args)
        return
    logroot = args.workdir or tempfile.mkdtemp(prefix="faust-eos-")
    os.makedirs(logroot, exist_ok=True)
    for sink in ["plain", "subscribed"] if args.sink == "both" else [args.sink]:
        for variant in ["single", "rebalance"] if args.variant == "both" else [args.variant]:
            Run(args, variant, sink, logroot).run()


if __name__ == "__main__":
    main()
