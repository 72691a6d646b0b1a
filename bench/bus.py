"""Consultation-bus benchmark: messages/s on a backlog, accepted → inbox latency at a fixed rate, memory with
100,000 open questions, and what the pure core costs per message.

The workload is what the bus reads: per tree, the gate's facts (the root admitted and four
workers approved, on ``agentlog.policy.decisions``, as ``processors.testing.admitted_tree``
makes them) and rounds of 20 messages on ``agentlog.messages``: the root asks each worker
for a part (4 ``AgentRequest``) and each replies (4 ``AgentReply``); each worker asks a
question without a recipient, which goes to its parent, the root (4 ``AgentQuestion``), and
the root decides it (4 ``DecisionRecorded``); two ``AgentAlert`` broadcast to the four other
agents; two ``Handoff`` between workers. Answers come after what they answer, interleaved
with the rest; the pure core accepts every message (checked before each part). No policy is
published, so the bus runs on the contract's default limits (600 messages per agent a
minute, counted in record time). The bus worker is ``agentlog processors run --processor
bus`` in a process of its own, on fresh topics for each round and contender (``bench/measure.py``).

Four parts (``--only`` picks some of them):

- **core**: no broker, one core, in this process: the CPU time per message of the pure
  parts of a worker's step on the throughput workload: decoding the input
  (``decode_bus_input``), ``bus_core.decide`` at record time, encoding its facts, and the
  changelog records of the changed keys (per 100 inputs, as the runtime writes them per
  batch). What the worker pays beyond them is the runtime's and the Kafka clients'.
- **throughput**: ``--trees`` trees of ``--cycles`` rounds, pre-encoded, produced at once to
  one worker; the clock runs from the first record produced to the consumer group's
  committed offsets reaching the end of both input topics. The ceiling, in the same rounds
  on fresh topics: the pass-through process of ``bench/gate.py`` (``bench/missions.py``'s
  too): it consumes the same two topics and produces the same bytes in the same
  transactional batches, with no decoding, no decision and no state. Both figures are
  messages/s (the gate's facts are in the input and the span, not in the count); CPU is µs
  per message of the measured process.
- **latency**: one worker, after a warm-up (the gate's facts of every tree and four trees'
  messages, drained), is fed ``--latency-rate`` messages/s for ``--latency-seconds`` by a
  paced producer (trees of ``--latency-cycles`` rounds, about ten trees at a time). Two
  observer processes start before the load and note the wall clock when each record
  reaches them: an **SDK inbox** (``AgentlogClient("acme").bus.inbox(...)`` of
  ``agentlog/bus_client.py``, serving every agent of the paced trees, the moment
  ``Inbox.get`` hands a message out; a broadcast counts once per recipient) and a plain
  confluent-kafka consumer of ``agentlog.message.events`` (read_committed, the SDK's
  consumer settings and poll loop). Each is timed from the message's broker append time
  (every topic uses ``LogAppendTime``; the broker and the observers share this machine's
  clock): append → in the inbox is the figure of the goal; append → the ``MessageAccepted``'s
  own append is the decision latency; append → seen by the plain consumer separates the
  inbox's cost from the bus's. The ceiling, in the same rounds: the raw pass-through of the
  same stream, its copies timed by their append and by a plain consumer of its output.
  The topics are read once, after the load.
- **memory**: one worker decides ``--questions`` questions of ``--question-trees`` trees,
  each with a ``decide_by`` a day away and never decided: its RSS when assigned and idle
  (before any input), once it holds them all, and its peak; the size of its state's
  changelog (``agentlog.bus.changelog``, keys and values: all it wrote, and the newest record
  per key, which a restore keeps); then a fresh worker restores that state, and its RSS and
  the time from its start to deciding a new message are reported. The questions accepted
  are counted on ``agentlog.message.events``.

Run: ``python bench/bus.py [--trees 2000] [--cycles 1] [--rounds 3] [--latency-rate 1000] [--latency-seconds 15]
[--latency-rounds 1] [--latency-cycles 5] [--questions 100000] [--question-trees 2000]
[--only core,throughput,latency,memory] [--keep]``. Goals: ≥ 10,000 messages/s; accepted →
inbox p99 ≤ 100 ms at 1,000 messages/s; ≤ 500 MiB with 100,000 open questions. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer, TopicPartition

sys.path.append(str(Path(__file__).resolve().parent))
import measure
from gate import RAW_GROUP, RAW_OUT, append_times, passthrough_child
from missions import WORKERS, Encoded, encode, fresh_topics, gate_facts, produce, staggered

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.partition_reader import BEGINNING, PartitionReader
from agentlog.processors.bus_core import decide
from agentlog.processors.bus_input import NAME, SOURCES, decode_bus_input, record_time_us
from agentlog.processors.bus_state import BusPartition, records_of
from agentlog.processors.bus_worker import BUS_CHANGELOG
from agentlog.processors.input_merge import InputRecord
from agentlog.replay import read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import tree_partition_count
from agentlog.topics import MESSAGE_EVENTS, MESSAGES, POLICY_DECISIONS

PARTS = ("core", "throughput", "latency", "memory")
TENANT = "acme"
AGENTS_PER_TREE = 1 + len(WORKERS)
MESSAGES_PER_CYCLE = 20
IDLE_S = 10.0
"""An observer told to stop gives up after this long without a new record (it stops at once when it has all)."""
_P = ev.Priority


# -- workloads ----------------------------------------------------------------------------


def _meta(root: str) -> ev.Meta:
    return ev.Meta(tenant_id=TENANT, root_id=root, producer="bench")


def tree_agents(root: str) -> list[str]:
    """The agents of a bench tree (the root and its four workers), as ``gate_facts`` admits them."""
    return [root, *(f"{root}/{w}" for w in WORKERS)]


def conversation(root: str, cycle: int, deadline: datetime) -> list[ev.Event]:
    """One round of a tree's talk: 20 messages, every answer after what it answers."""
    workers = tree_agents(root)[1:]
    requests = [
        ev.AgentRequest(
            meta=_meta(root),
            from_agent_id=root,
            to_agent_id=worker,
            subject=f"Summarise part {cycle}.{i} of the report",
            body=f"Read section {cycle}.{i}, list its open points and the figures they rest on. " * 3,
            reply_by=deadline,
        )
        for i, worker in enumerate(workers)
    ]
    questions = [
        ev.AgentQuestion(
            meta=_meta(root),
            from_agent_id=worker,
            priority=_P.HIGH if i == 0 else _P.NORMAL,
            question=f"Section {cycle}.{i} cites two sources that disagree on the 2025 figure: which one holds?",
            options=["the audited accounts", "the press release", "neither: flag it"],
            decide_by=deadline,
        )
        for i, worker in enumerate(workers)
    ]
    replies = [
        ev.AgentReply(
            meta=_meta(root),
            message_id=uuid.uuid4(),
            request_id=request.message_id,
            from_agent_id=request.to_agent_id,
            body="Done: three open points, each with its source; one figure could not be checked.",
            details={"open_points": "3", "unchecked": "1"},
        )
        for request in requests
    ]
    decisions = [
        ev.DecisionRecorded(
            meta=_meta(root),
            question_id=question.message_id,
            decided_by=root,
            choice="the audited accounts",
            rationale="Audited figures take precedence over communications; note the difference.",
            impact="The summary quotes the audited figure with a footnote.",
            impact_details={"sections": "1"},
        )
        for question in questions
    ]
    alerts = [
        ev.AgentAlert(meta=_meta(root), from_agent_id=workers[0], priority=_P.HIGH, text="Source server slow."),
        ev.AgentAlert(meta=_meta(root), from_agent_id=workers[2], priority=_P.LOW, text="Cache warmed up."),
    ]
    handoffs = [
        ev.Handoff(
            meta=_meta(root),
            from_agent_id=workers[a],
            to_agent_id=workers[b],
            task=ev.TaskSpec(title=f"Check the tables of part {cycle}.{a}"),
            context={"found": "two tables without a source", "where": f"section {cycle}.{a}"},
        )
        for a, b in ((1, 2), (3, 0))
    ]
    return [*requests, *questions, alerts[0], *replies, handoffs[0], *decisions, alerts[1], handoffs[1]]


def tree_talk(root: str, cycles: int, deadline: datetime) -> list[ev.Event]:
    return [m for cycle in range(cycles) for m in conversation(root, cycle, deadline)]


def backlog(roots: Sequence[str], cycles: int, deadline: datetime) -> tuple[list[ev.Event], list[ev.Event]]:
    """The gate's facts and the messages of ``roots``, the trees' messages interleaved step by step."""
    per_tree = [tree_talk(root, cycles, deadline) for root in roots]
    interleaved = [m[i] for i in range(max(len(m) for m in per_tree)) for m in per_tree if i < len(m)]
    return gate_facts(roots), interleaved


def far_deadline() -> datetime:
    """A ``reply_by`` / ``decide_by`` nothing in the bench reaches: no request or question expires."""
    return datetime.now(UTC) + timedelta(days=1)


def core_answers(events: Sequence[ev.Event]) -> list[list[ev.Event]]:
    """What the pure core answers to each input, one partition holding every tree, 1 ms of record time apart."""
    state = BusPartition()
    start_us = int(time.time() * 1e6)
    return [decide(state, event, None, start_us + 1000 * i)[0] for i, event in enumerate(events)]


def check_accepted(answers: Sequence[list[ev.Event]], what: str) -> None:
    """The workload is meant to be accepted whole: say so and stop if the pure core rejects some of it."""
    rejected = [fact for answer in answers for fact in answer if isinstance(fact, ev.MessageRejected)]
    if rejected:
        reasons = sorted({f.reason.name for f in rejected})
        raise SystemExit(f"the pure core rejects {len(rejected):,} messages of the {what} ({', '.join(reasons)})")


def deliveries(answers: Sequence[list[ev.Event]]) -> int:
    """Inbox entries the answers make for an inbox serving every agent (a broadcast: all but its sender)."""
    return sum(
        AGENTS_PER_TREE - 1 if fact.broadcast else len(fact.recipients)
        for answer in answers
        for fact in answer
        if isinstance(fact, ev.MessageAccepted)
    )


# -- the contenders -----------------------------------------------------------------------


def start_bus(settings: Settings) -> list[measure.Service]:
    command = measure.agentlog_command(
        "processors", "run", "--processor=bus", "--worker-id=bench", "--log-level=WARNING"
    )
    return [measure.Service(command, measure.child_env(settings), "bus worker")]


def start_passthrough(settings: Settings) -> list[measure.Service]:
    argv = [sys.executable, __file__, "--child", "passthrough"]
    return [measure.Service(argv, measure.child_env(settings), "pass-through")]


Starter = Callable[[Settings], list[measure.Service]]
CEILING = "raw pass-through (consume → produce, tx)"
WORKER = "bus, 1 worker"
CONTENDERS: tuple[tuple[str, str, Starter], ...] = ((CEILING, RAW_GROUP, start_passthrough), (WORKER, NAME, start_bus))
"""(label, group suffix, starter): the ceiling and the worker."""


def input_partitions(settings: Settings) -> list[TopicPartition]:
    return measure.partitions(measure.admin(settings), [settings.topic_prefix + spec.name for spec in SOURCES])


def produce_in_order(settings: Settings, batches: Sequence[Encoded]) -> None:
    """Produce each batch and flush it before the next: the gate's facts are appended before the messages of their
    trees (one producer's batches to two topics are appended in any order, and a message appended before its
    tree's ``RootAdmitted`` is rejected ``UNKNOWN_TREE``)."""
    for batch in batches:
        produce(settings, batch)


def drain(settings: Settings, group: str, services: list[measure.Service], batches: Sequence[Encoded]) -> float:
    """Wait until the worker holds every partition, then produce ``batches`` in order and time the group's committed
    offsets reaching their end; returns seconds."""
    client = measure.admin(settings)
    tps = input_partitions(settings)
    measure.wait_assigned(client, settings.topic_prefix + group, len(tps), 1, services)
    for service in services:
        service.start_span()
    started = time.monotonic()
    produce_in_order(settings, batches)
    finished = measure.wait_committed(client, settings.topic_prefix + group, tps, services)
    for service in services:
        service.end_span()
    return finished - started


def answered(settings: Settings) -> tuple[int, int]:
    """How many ``MessageAccepted`` and ``MessageRejected`` the bus wrote (by record name; read after the run)."""
    serde = Serde()
    topic = settings.topic_prefix + MESSAGE_EVENTS.name
    names = [serde.record_name(r.value) for r in read_topic(settings, topic) if r.value]
    return names.count(ev.MessageAccepted.avro_name), names.count(ev.MessageRejected.avro_name)


def changelog_size(settings: Settings) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(records, bytes)`` of keys and values the bus wrote to its state's changelog, and of the newest record per
    key (what a restore keeps, and what compaction leaves)."""
    topic = settings.topic_prefix + BUS_CHANGELOG.name
    newest: dict[tuple[int, bytes], int] = {}
    records = size = 0
    with PartitionReader(settings) as reader:
        reader.assign((topic, p, BEGINNING) for p in range(tree_partition_count(settings)))
        for record in reader.read_to_end(stable=True):
            length = len(record.key or b"") + len(record.value or b"")
            records, size = records + 1, size + length
            newest[(record.partition, record.key or b"")] = length if record.value is not None else 0
    live = [n for n in newest.values() if n]
    return (records, size), (len(live), sum(live))


def rss_mib(service: measure.Service) -> float:
    return float(service.process.memory_info().rss) / 2**20


# -- the pure core ------------------------------------------------------------------------


def core_costs(trees: int, cycles: int, rounds: int) -> None:
    print(f"\n[core] {measure.load_average()}")
    facts, messages = backlog([f"acme/core-{t}" for t in range(trees)], cycles, far_deadline())
    events = [*facts, *messages]
    check_accepted(core_answers(events), "core workload")
    serde = Serde()
    start_ms = int(time.time() * 1000)
    records = []
    for i, e in enumerate(events):
        source = 1 if i < len(facts) else 0
        topic = SOURCES[source].name
        records.append(
            InputRecord(topic, 0, i, start_ms + i // 10, e.meta.root_id.encode(), serde.encode(e, topic), None, source)
        )
    stages = {name: measure.Series(name) for name in ("decode", "decide", "encode the facts", "changelog records")}
    count = len(messages)
    for _ in range(rounds):
        state = BusPartition()
        t0 = time.process_time()
        decoded = [decode_bus_input(serde, r) for r in records]
        t1 = time.process_time()
        answers = [
            decide(state, e, None, record_time_us(r)) if e is not None else ([], set())
            for e, r in zip(decoded, records, strict=True)
        ]
        t2 = time.process_time()
        for outputs, _ in answers:
            for out in outputs:
                serde.encode(out, MESSAGE_EVENTS.name)
        t3 = time.process_time()
        for i in range(0, len(answers), 100):
            changed: set[str] = set()
            for _, keys in answers[i : i + 100]:
                changed |= keys
            records_of(state, changed)
        t4 = time.process_time()
        for series, took in zip(stages.values(), (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            series.add(count / took, took / count * 1e6)
    measure.print_table(
        f"where a message's CPU goes in the pure parts (one core, no broker, CPU time; {count:,} messages of"
        f" {trees:,} trees and their {len(facts):,} gate facts; rates and µs per message, {rounds} rounds)",
        list(stages.values()),
    )
    total = sum(statistics.median(s.cpu_us) for s in stages.values())
    print(f"  together: {total:.0f} µs per message ({1e6 / total:,.0f} messages/s on one core)")


# -- throughput ---------------------------------------------------------------------------


def throughput(scratch: measure.Scratch, trees: int, cycles: int, rounds: int) -> None:
    print(f"\n[throughput] {measure.load_average()}")
    facts, messages = backlog([f"acme/bus-{t}" for t in range(trees)], cycles, far_deadline())
    check_accepted(core_answers([*facts, *messages]), "throughput workload")
    records = [encode(facts), encode(messages)]
    ceiling = measure.Series(CEILING)
    worker = measure.Series(WORKER)
    notes: list[str] = []
    for _ in range(rounds):
        for series, (_label, group, start) in zip((ceiling, worker), CONTENDERS, strict=True):
            settings = fresh_topics(scratch, "bus")
            services = start(settings)
            try:
                seconds = drain(settings, group, services, records)
            finally:
                measure.stop_all(services)
            cpu = sum(s.cpu_span_s for s in services)
            memory = max((s.memory() for s in services), key=lambda m: m.peak_total_mib)
            series.add(len(messages) / seconds, cpu / len(messages) * 1e6, memory)
            if series is worker and (found := answered(settings)) != (len(messages), 0):
                notes.append(f"the worker accepted {found[0]:,} and rejected {found[1]:,} of {len(messages):,}")
    measure.print_table(
        f"throughput: {trees:,} trees x {cycles * MESSAGES_PER_CYCLE} messages = {len(messages):,} messages (and"
        f" {len(facts):,} gate facts) produced at once, {rounds} rounds; messages/s, CPU µs per message",
        [ceiling, worker],
        ceiling=ceiling,
    )
    for note in notes:
        print(f"  NOTE: {note}")
    print("  goal: ≥ 10,000 messages/s")


# -- latency ------------------------------------------------------------------------------


def latency_roots(trees: int) -> list[str]:
    return [f"acme/lat-{t}" for t in range(trees)]


@dataclass(frozen=True)
class LatencyLoad:
    """The latency run's input, encoded, and what the pure core says of it."""

    warm_up: list[Encoded]
    """The gate's facts of every tree and the warm-up trees' messages: drained before the clock."""
    load: Encoded
    """The paced messages."""
    trees: int
    """Trees of the paced messages (``latency_roots``): the inbox serves all their agents."""
    ids: frozenset[str]
    """Event ids of the paced messages."""
    deliveries: int
    """Inbox entries the paced messages make (the pure core's answers)."""


def latency_load(rate: int, seconds: int, cycles: int) -> LatencyLoad:
    total = rate * seconds
    roots = latency_roots(math.ceil(total / (cycles * MESSAGES_PER_CYCLE)))
    warm_roots = [f"acme/warm-{t}" for t in range(4)]
    deadline = far_deadline()
    facts = gate_facts([*warm_roots, *roots])
    warm = staggered([tree_talk(r, 1, deadline) for r in warm_roots], 4)
    # About ten trees at a time, whatever the size, so that every kind of message is in the stream all along.
    load = staggered([tree_talk(r, cycles, deadline) for r in roots], max(min(len(roots), 10), 1))[:total]
    answers = core_answers([*facts, *warm, *load])
    check_accepted(answers, "latency workload")
    return LatencyLoad(
        [encode(facts), encode(warm)],
        encode(load),
        len(roots),
        frozenset(str(m.meta.event_id) for m in load),
        deliveries(answers[len(facts) + len(warm) :]),
    )


class Observer:
    """A child process (``--child inbox`` or ``--child tail``) that notes the wall clock when each record reaches
    it; it says ``ready`` once it reads from the current ends, and reports when told to stop."""

    def __init__(self, settings: Settings, label: str, child: str, expect: int, **args: object) -> None:
        self.label = label
        argv = [sys.executable, __file__, "--child", child, "--child-args", json.dumps({"expect": expect, **args})]
        self.popen = subprocess.Popen(
            argv, env=measure.child_env(settings), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=measure.REPO,
        )  # fmt: skip
        self.process = psutil.Process(self.popen.pid)
        self.sampler = measure.MemorySampler(self.popen.pid).start()
        self.cpu_span_s = 0.0
        self._cpu_start = 0.0

    def wait_ready(self) -> None:
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        if line.strip() != "ready":
            raise SystemExit(f"{self.label} did not start (said {line.strip()!r}, status {self.popen.poll()})")

    def start_span(self) -> None:
        self._cpu_start = measure.tree_cpu_s(self.process)

    def end_span(self) -> None:
        self.cpu_span_s = measure.tree_cpu_s(self.process) - self._cpu_start

    def finish(self) -> list[tuple[str, float]]:
        """Tell it to stop; returns ``(event id of the message, wall-clock ms when seen)`` of every record it saw."""
        out, _ = self.popen.communicate("stop\n", timeout=120)
        self.sampler.stop()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if self.popen.returncode != 0 or not lines:
            raise SystemExit(f"{self.label} exited with status {self.popen.returncode} without its report")
        return [(cause, float(ms)) for cause, ms in json.loads(lines[-1])["seen"]]

    def kill(self) -> None:
        self.sampler.stop()
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def _stop_signal() -> threading.Event:
    """Set when the bench writes a line (or closes) this child's stdin."""
    stop = threading.Event()

    def wait() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait, daemon=True, name="stop").start()
    return stop


def _collect(next_batch: Callable[[], list[Any]], expect: int) -> list[tuple[Any, float]]:
    """Call ``next_batch`` (it waits a little) until told to stop and ``expect`` items came, or ``IDLE_S`` passed
    without one; each item with the wall-clock ms it came at."""
    stop = _stop_signal()
    print("ready", flush=True)
    seen: list[tuple[Any, float]] = []
    last = time.monotonic()
    while True:
        batch = next_batch()
        if batch:
            now_ms = time.time() * 1000
            seen += [(item, now_ms) for item in batch]
            last = time.monotonic()
        if stop.is_set() and (len(seen) >= expect or time.monotonic() - last > IDLE_S):
            return seen


def inbox_child(settings: Settings, trees: int, expect: int) -> None:
    """The SDK inbox of every agent of the paced trees: when ``Inbox.get`` hands each message out."""
    from agentlog.client import AgentlogClient

    client = AgentlogClient(TENANT, settings)
    inbox = client.bus.inbox([(root, agent) for root in latency_roots(trees) for agent in tree_agents(root)])
    if not inbox.wait_ready(300):
        raise SystemExit("the inbox did not read its history in time")

    def next_batch() -> list[str]:
        message = inbox.get(timeout=0.05)
        return [str(message.fact.meta.causation_id)] if message is not None else []

    seen = _collect(next_batch, expect)
    print(json.dumps({"seen": seen}), flush=True)
    inbox.close()
    client.close()


def tail_child(settings: Settings, topic: str, expect: int) -> None:
    """A plain read_committed consumer of ``topic`` from its current ends, polling as the SDK's follower does; the
    records are decoded only at the end (the event id of a copy, the causation id of a fact)."""
    name = settings.topic_prefix + topic
    consumer = Consumer(kafka_config.reader(settings))
    count = len(consumer.list_topics(name, timeout=10).topics[name].partitions)
    ends = [consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10, cached=False)[1] for p in range(count)]
    consumer.assign([TopicPartition(name, p, end) for p, end in enumerate(ends)])

    def next_batch() -> list[bytes]:
        first = consumer.poll(0.02)
        batch = [] if first is None else [first, *consumer.consume(999, 0)]
        return [value for m in batch if m.error() is None and (value := m.value())]

    seen = _collect(next_batch, expect)
    consumer.close()
    serde = Serde.from_settings(settings)
    copies = topic == RAW_OUT.name

    def cause(value: bytes) -> str:
        meta = serde.decode(value).meta
        return str(meta.event_id if copies else meta.causation_id)

    print(json.dumps({"seen": [(cause(value), ms) for value, ms in seen]}), flush=True)


@dataclass
class Stage:
    """One latency figure over the rounds: per round, the delays in ms."""

    label: str
    rounds: list[list[float]] = field(default_factory=list)


def print_latency(title: str, stages: Sequence[Stage]) -> None:
    print(f"\n{title}")
    print(f"  {'':<74}{'count':>8}{'p50 ms':>16}{'p99 ms':>18}{'max ms':>10}")
    for stage in stages:
        if not stage.rounds or not all(stage.rounds):
            print(f"  {stage.label:<74}{'-':>8}")
            continue
        p50 = [statistics.median(r) for r in stage.rounds]
        p99 = [measure.pct(r, 0.99) for r in stage.rounds]
        most = max(max(r) for r in stage.rounds)
        counts = statistics.median(len(r) for r in stage.rounds)

        def figure(values: list[float]) -> str:
            spread = measure.spread(values)
            return f"{statistics.median(values):.0f}" + (f" ({spread})" if spread else "")

        print(f"  {stage.label:<74}{counts:>8,.0f}{figure(p50):>16}{figure(p99):>18}{most:>10.0f}")


@dataclass
class Observed:
    """One contender's latency round: what its observers saw, and its costs."""

    settings: Settings
    seen: list[list[tuple[str, float]]]
    """Per observer, ``(event id of the message, wall-clock ms when seen)``."""
    took: float
    """Seconds the paced producer took."""
    worker_cpu_s: float
    observer_cpu_s: list[float]
    observer_memory: list[measure.Memory]


def observed_round(
    scratch: measure.Scratch, load: LatencyLoad, rate: int, group: str, start: Starter,
    observers_of: Callable[[Settings], list[Observer]],
) -> Observed:  # fmt: skip
    """Fresh topics, the contender, the warm-up drained, then its observers started and the paced load fed."""
    settings = fresh_topics(scratch, "blat")
    services = start(settings)
    observers: list[Observer] = []
    try:
        drain(settings, group, services, load.warm_up)  # assigned, deciding
        observers = observers_of(settings)
        for observer in observers:
            observer.wait_ready()
        spans: list[measure.Service | Observer] = [*services, *observers]
        for each in spans:
            each.start_span()
        took = measure.paced(settings, load.load, rate)
        client = measure.admin(settings)
        measure.wait_committed(client, settings.topic_prefix + group, input_partitions(settings), services)
        for each in spans:
            each.end_span()
        seen = [observer.finish() for observer in observers]
    finally:
        measure.stop_all(services)
        for observer in observers:
            observer.kill()
    return Observed(
        settings,
        seen,
        took,
        services[0].cpu_span_s,
        [o.cpu_span_s for o in observers],
        [o.sampler.memory() for o in observers],
    )


def latency(scratch: measure.Scratch, rate: int, seconds: int, rounds: int, cycles: int) -> None:
    print(f"\n[latency] {measure.load_average()}")
    load = latency_load(rate, seconds, cycles)
    copy_append = Stage("raw pass-through: message append → its copy's append")
    copy_seen = Stage("raw pass-through: message append → copy seen by a plain consumer")
    fact_append = Stage("bus: message append → its MessageAccepted's append (decision)")
    fact_seen = Stage("bus: message append → MessageAccepted seen by a plain consumer")
    in_inbox = Stage("bus: message append → in the recipient's SDK inbox (Inbox.get)")
    bus_rounds: list[Observed] = []
    notes: list[str] = []
    serde = Serde()

    def event_id(value: bytes) -> str:
        return str(serde.decode(value).meta.event_id)

    def sent_at(settings: Settings) -> dict[str, int]:
        return {k: v for k, v in append_times(settings, MESSAGES.name, event_id).items() if k in load.ids}

    def delays(seen: list[tuple[str, float]], sent: dict[str, int]) -> list[float]:
        return [ms - sent[cause] for cause, ms in seen if cause in sent]

    for _ in range(rounds):
        ceiling = observed_round(
            scratch, load, rate, RAW_GROUP, start_passthrough,
            lambda s: [Observer(s, "copy consumer", "tail", len(load.load), topic=RAW_OUT.name)],
        )  # fmt: skip
        sent = sent_at(ceiling.settings)
        copies = append_times(ceiling.settings, RAW_OUT.name, event_id)
        copy_append.rounds.append([float(copies[c] - ts) for c, ts in sent.items() if c in copies])
        copy_seen.rounds.append(delays(ceiling.seen[0], sent))
        bus = observed_round(
            scratch, load, rate, NAME, start_bus,
            lambda s: [
                Observer(s, "fact consumer", "tail", len(load.load), topic=MESSAGE_EVENTS.name),
                Observer(s, "SDK inbox", "inbox", load.deliveries, trees=load.trees),
            ],
        )  # fmt: skip
        bus_rounds.append(bus)
        sent = sent_at(bus.settings)
        facts = {
            str(serde.decode(r.value).meta.causation_id): r.timestamp_ms
            for r in read_topic(bus.settings, bus.settings.topic_prefix + MESSAGE_EVENTS.name)
            if r.value and serde.record_name(r.value) == ev.MessageAccepted.avro_name
        }
        fact_append.rounds.append([float(facts[c] - ts) for c, ts in sent.items() if c in facts])
        fact_seen.rounds.append(delays(bus.seen[0], sent))
        in_inbox.rounds.append(delays(bus.seen[1], sent))
        if len(fact_append.rounds[-1]) < len(sent) or len(in_inbox.rounds[-1]) < load.deliveries:
            notes.append(
                f"{len(fact_append.rounds[-1]):,} of {len(sent):,} messages accepted, {len(in_inbox.rounds[-1]):,}"
                f" of {load.deliveries:,} inbox entries seen"
            )
    print_latency(
        f"latency at {rate:,} messages/s for {seconds}s ({len(load.load):,} messages of {load.trees:,} trees, making"
        f" {load.deliveries:,} inbox entries), from each message's broker append time, {rounds} round(s);"
        " p50/p99: median of the rounds (spread)",
        [copy_append, copy_seen, fact_append, fact_seen, in_inbox],
    )
    worker_us = statistics.median(b.worker_cpu_s / len(load.load) * 1e6 for b in bus_rounds)
    inbox_us = statistics.median(b.observer_cpu_s[1] / max(len(b.seen[1]), 1) * 1e6 for b in bus_rounds)
    inbox_rss = max((b.observer_memory[1] for b in bus_rounds), key=lambda m: m.peak_total_mib)
    print(
        f"  paced at {statistics.median(len(load.load) / b.took for b in bus_rounds):,.0f} messages/s; the worker's"
        f" CPU {worker_us:.0f} µs per message ({worker_us * rate / 1e4:.0f} % of a core); the inbox process's"
        f" {inbox_us:.0f} µs per entry, peak RSS {inbox_rss}"
    )
    for note in notes:
        print(f"  NOTE: {note}")
    print("  goal: accepted → in the recipient's inbox p99 ≤ 100 ms")


# -- memory -------------------------------------------------------------------------------


def memory(scratch: measure.Scratch, questions: int, trees: int) -> None:
    print(f"\n[memory] {measure.load_average()}")
    roots = [f"acme/mem-{t}" for t in range(trees)]
    deadline = far_deadline()
    asked: list[ev.Event] = [
        ev.AgentQuestion(
            meta=_meta(roots[i % trees]),
            from_agent_id=f"{roots[i % trees]}/{WORKERS[(i // trees) % len(WORKERS)]}",
            question=f"Which of the two sources holds for figure {i}?",
            options=["the first", "the second"],
            decide_by=deadline,
        )
        for i in range(questions)
    ]
    facts = gate_facts(roots)  # the pure core is not asked here (100,000 decisions): the facts are counted instead
    records = [encode(facts), encode(asked)]
    settings = fresh_topics(scratch, "bmem")
    services = start_bus(settings)
    try:
        client = measure.admin(settings)
        tps = input_partitions(settings)
        measure.wait_assigned(client, settings.topic_prefix + NAME, len(tps), 1, services)
        time.sleep(1.0)
        at_start = rss_mib(services[0])
        started = time.monotonic()
        produce_in_order(settings, records)
        took = measure.wait_committed(client, settings.topic_prefix + NAME, tps, services) - started
        time.sleep(1.0)
        holding = rss_mib(services[0])
        peak = services[0].memory()
    finally:
        measure.stop_all(services)
    written, live = changelog_size(settings)
    accepted, rejected = answered(settings)
    # A fresh worker restores the state; a new message is decided only once it has.
    restarted = start_bus(settings)
    try:
        begun = time.monotonic()
        measure.wait_assigned(client, settings.topic_prefix + NAME, len(tps), 1, restarted)
        probe = ev.AgentAlert(meta=_meta(roots[0]), from_agent_id=roots[0], text="probe")
        produce(settings, encode([probe]))
        restored_s = measure.wait_committed(client, settings.topic_prefix + NAME, tps, restarted) - begun
        time.sleep(1.0)
        restored = rss_mib(restarted[0])
        restored_peak = restarted[0].memory()
    finally:
        measure.stop_all(restarted)
    refused = f", {rejected:,} rejected" if rejected else ""
    print(
        f"\nmemory: {accepted:,} open questions accepted (of {questions:,}{refused}; decide_by a day away) in"
        f" {trees:,} trees of {AGENTS_PER_TREE} agents, decided in {took:.1f}s"
        f" ({(len(facts) + len(asked)) / took:,.0f} inputs/s)"
    )
    print(f"  bus worker RSS when assigned, before any input   {at_start:>8,.0f} MiB")
    print(
        f"  holding them                                      {holding:>8,.0f} MiB   (+{holding - at_start:,.0f} MiB,"
        f" {(holding - at_start) * 2**20 / max(accepted, 1):,.0f} bytes a question; peak {peak})"
    )
    print(
        f"  state changelog, newest record per key            {live[1] / 2**20:>8,.1f} MiB   ({live[0]:,} keys, keys"
        f" and values; written: {written[0]:,} records, {written[1] / 2**20:,.1f} MiB)"
    )
    print(
        f"  a fresh worker restoring them                     {restored:>8,.0f} MiB   (peak {restored_peak}; decided a"
        f" new message {restored_s:.1f}s after it started)"
    )
    print("  goal: ≤ 500 MiB with 100,000 open questions")


# -- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", type=int, default=2_000, help="throughput: trees in the backlog")
    parser.add_argument("--cycles", type=int, default=1, help="throughput: rounds of 20 messages per tree")
    parser.add_argument("--rounds", type=int, default=3, help="throughput: rounds alternating the ceiling and worker")
    parser.add_argument("--core-trees", type=int, default=500, help="core: trees (of --cycles rounds) decided")
    parser.add_argument("--latency-rate", type=int, default=1_000, help="latency: messages/s from the paced producer")
    parser.add_argument("--latency-seconds", type=int, default=15)
    parser.add_argument("--latency-rounds", type=int, default=1)
    parser.add_argument("--latency-cycles", type=int, default=5, help="latency: rounds of 20 messages per tree")
    parser.add_argument("--questions", type=int, default=100_000, help="memory: open questions")
    parser.add_argument("--question-trees", type=int, default=2_000, help="memory: the trees they are asked in")
    parser.add_argument("--only", type=measure.parts_of(PARTS), default=list(PARTS), help=f"some of {','.join(PARTS)}")
    parser.add_argument("--keep", action="store_true", help="keep the topics and groups created")
    parser.add_argument("--child", choices=["passthrough", "inbox", "tail"], help=argparse.SUPPRESS)
    parser.add_argument("--child-args", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        given = json.loads(args.child_args)
        if args.child == "passthrough":
            passthrough_child(Settings(), (MESSAGES, POLICY_DECISIONS))
        elif args.child == "inbox":
            inbox_child(Settings(), given["trees"], given["expect"])
        else:
            tail_child(Settings(), given["topic"], given["expect"])
        return
    scratch = measure.Scratch(Settings(), keep=args.keep)
    print(f"bus benchmark on {scratch.base.bootstrap_servers}; {measure.load_average()}")
    began = time.monotonic()
    try:
        if "core" in args.only:
            core_costs(args.core_trees, args.cycles, args.rounds)
        if "throughput" in args.only:
            throughput(scratch, args.trees, args.cycles, args.rounds)
        if "latency" in args.only:
            latency(scratch, args.latency_rate, args.latency_seconds, args.latency_rounds, args.latency_cycles)
        if "memory" in args.only:
            memory(scratch, args.questions, args.question_trees)
    finally:
        scratch.clean()
    print(f"\n(whole run {time.monotonic() - began:.0f}s)")


if __name__ == "__main__":
    main()
