"""Mission-processor benchmark: facts/s on a backlog, dependency-resolution latency at a fixed rate, the cycle check.

Three parts (``--only`` picks some of them):

- **throughput**: the input is what the processor reads: per tree, the gate's facts (the
  root admitted and four agents approved, on the decisions topic) and a mission plan (on
  the missions topic): ``--missions`` missions per tree in a chain of phases, each phase a
  parallel group that hard-depends on the one before, every mission started under an agent
  and completed, and one failed attempt per tree that is retried. Every completion of a
  phase makes the next one READY, so the processor's automatic transitions are in the
  count too. The input is pre-encoded and produced at once; the clock runs from the first
  record produced to the consumer group's committed offsets reaching the end of both input
  topics (as in ``bench/gate.py``). The ceiling, in the same rounds, on fresh topics: a
  process that consumes the same two topics and produces the same bytes in the same
  transactional batches, with no decoding, no decision and no state.
- **latency**: one worker, after a warm-up (the gate's facts of every tree and a few
  trees' plans, drained), is fed ``--latency-rate`` commands/s for ``--latency-seconds``
  by a paced producer: trees of ``--missions`` missions in a ladder, each mission
  hard-depending on the two before it, run and completed in order, so that every
  completion is the *last* hard dependency of the next mission (PENDING → READY) and the
  first of two for the one after; the trees overlap, so every kind of command is in the
  stream all along. The figure is, for each dependent made READY, the broker append time
  (every topic uses ``LogAppendTime``: one clock) of the request that completed its last
  dependency to that of its ``MissionTransitioned`` PENDING → READY on
  ``agentlog.mission.events`` (written in the same transaction as the dependency's
  COMPLETED). The topics are read once, after the load. The ceiling, in the same rounds:
  the raw pass-through of the same stream, from the same requests to their copies.
- **cycles**: no broker, one core, in this process: a random DAG (``--cycle-seed``) of
  ``--cycle-missions`` missions grows to ``--cycle-edges`` accepted hard dependencies, most
  of them in the order the missions were created (nothing to reorder), some against it
  (Pearce-Kelly reorders the region between the two), and one candidate in ten closing a
  cycle (rejected). Each added edge is timed twice, on the same sequence: the raw
  ``mission_graph.cycle_if_added`` on a bare tree, and ``mission_core.decide`` on a
  ``DependencyAdded`` (the events built beforehand), which is what a worker pays.

Run: ``python bench/missions.py [--trees 500] [--missions 20] [--rounds 3] [--latency-rate 500]
[--latency-seconds 15] [--latency-rounds 1] [--cycle-missions 10000] [--cycle-edges 30000]
[--only throughput,latency,cycles]``. Goals: ≥ 5,000 transitions/s; dependency resolution
p99 ≤ 100 ms at 500 transitions/s; ≤ 1 ms per added edge on 10,000 missions / 30,000 edges.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Producer, TopicPartition

sys.path.append(str(Path(__file__).resolve().parent))
import measure
from gate import RAW_GROUP, RAW_OUT, append_times, passthrough_child

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.processors.mission_core import MAX_EDGES, decide
from agentlog.processors.mission_graph import cycle_if_added
from agentlog.processors.mission_state import Mission, MissionPartition, MissionTree
from agentlog.processors.mission_worker import NAME, SOURCES
from agentlog.processors.testing import admitted_tree
from agentlog.replay import read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import ensure_topics
from agentlog.topics import MISSION_EVENTS, MISSIONS, POLICY_DECISIONS, topic_of

_S = ev.MissionState
WORKERS = ("w0", "w1", "w2", "w3")
PARTS = ("throughput", "latency", "cycles")


# -- workloads ----------------------------------------------------------------------------


def _meta(root: str) -> ev.Meta:
    """A command's envelope: every command has an event id of its own (the facts' ids derive from it)."""
    return ev.Meta(tenant_id="acme", root_id=root, producer="bench")


def _move(root: str, name: str, to: ev.MissionState, agent: str, **fields: Any) -> ev.Event:
    return ev.MissionTransitionRequested(
        meta=_meta(root), mission_id=name, to_state=to, requested_by=root, agent_id=agent, **fields
    )


def _done(root: str, name: str, agent: str) -> ev.Event:
    return _move(root, name, _S.COMPLETED, agent, result_summary="done", quality_score=0.9)


def tree_plan(root: str, missions: int) -> list[ev.Event]:
    """Phases of four parallel missions, each phase hard-depending on the one before; all run and completed,
    one failed attempt retried."""
    names = [f"p{i // 4}-m{i % 4}" for i in range(missions)]
    phases = [names[i : i + 4] for i in range(0, missions, 4)]
    commands: list[ev.Event] = [
        ev.MissionCreated(meta=_meta(root), mission_id=n, task=ev.TaskSpec(title=n)) for n in names
    ]
    for before, after in itertools.pairwise(phases):
        commands += [ev.DependencyAdded(meta=_meta(root), mission_id=n, depends_on=d) for n in after for d in before]
    for number, phase in enumerate(phases):
        for i, name in enumerate(phase):
            agent = f"{root}/{WORKERS[i % len(WORKERS)]}"
            commands.append(_move(root, name, _S.RUNNING, agent))
            if number == 0 and i == 0:
                commands += [_move(root, name, _S.FAILED, agent, reason="flaky"), _move(root, name, _S.RUNNING, agent)]
            commands.append(_done(root, name, agent))
    return commands


def ladder_plan(root: str, missions: int) -> list[ev.Event]:
    """Missions each hard-depending on the two before it, run and completed in order: every completion is the last
    hard dependency of the next mission (which becomes READY) and the first of two for the one after."""
    names = [f"l{i}" for i in range(missions)]
    commands: list[ev.Event] = [
        ev.MissionCreated(meta=_meta(root), mission_id=n, task=ev.TaskSpec(title=n)) for n in names
    ]
    commands += [
        ev.DependencyAdded(meta=_meta(root), mission_id=n, depends_on=d)
        for i, n in enumerate(names)
        for d in names[max(i - 2, 0) : i]
    ]
    for i, name in enumerate(names):
        agent = f"{root}/{WORKERS[i % len(WORKERS)]}"
        commands += [_move(root, name, _S.RUNNING, agent), _done(root, name, agent)]
    return commands


def plan(trees: int, missions: int) -> tuple[list[ev.Event], list[ev.Event]]:
    """The gate's facts and the mission commands of ``trees`` trees, the trees' commands interleaved step by step."""
    roots = [f"acme/plan-{t}" for t in range(trees)]
    per_tree = [tree_plan(root, missions) for root in roots]
    interleaved = [c[i] for i in range(max(len(c) for c in per_tree)) for c in per_tree if i < len(c)]
    return gate_facts(roots), interleaved


def gate_facts(roots: Sequence[str]) -> list[ev.Event]:
    return [fact for root in roots for fact in admitted_tree(root, [f"{root}/{w}" for w in WORKERS])]


def staggered(per_tree: Sequence[Sequence[ev.Event]], concurrent: int) -> list[ev.Event]:
    """The trees' commands as a stream in which a new tree begins every ``1/concurrent`` of a tree's length:
    about ``concurrent`` trees at a time, each at another stage (each tree's commands in order)."""
    length = max(len(c) for c in per_tree)
    keyed = [(t * length // concurrent + k, t, k) for t, c in enumerate(per_tree) for k in range(len(c))]
    return [per_tree[t][k] for _, t, k in sorted(keyed)]


def core_answers(events: Sequence[ev.Event]) -> list[list[ev.Event]]:
    """What the pure core answers to each input, in order (one partition holds every tree: the answers are
    the same)."""
    state = MissionPartition()
    return [decide(state, event, None)[0] for event in events]


def expected_facts(facts: list[ev.Event], commands: list[ev.Event]) -> int:
    """How many facts the pure core makes of the input (so that the rate counts transitions, not inputs)."""
    return sum(len(answer) for answer in core_answers([*facts, *commands]))


def released(fact: ev.Event) -> bool:
    """Whether ``fact`` is an automatic PENDING → READY (a dependent whose last hard dependency completed)."""
    return isinstance(fact, ev.MissionTransitioned) and fact.from_state is _S.PENDING and fact.to_state is _S.READY


Encoded = list[tuple[str, bytes, bytes]]
"""(topic base name, key, value) of each input, encoded once for every round."""


def encode(events: list[ev.Event]) -> Encoded:
    serde = Serde()
    return [(topic_of(type(e)).name, e.meta.root_id.encode(), serde.encode(e, topic_of(type(e)).name)) for e in events]


def produce(settings: Settings, records: Encoded) -> None:
    producer = Producer({**kafka_config.producer(settings), "linger.ms": 20})
    for name, key, value in records:
        while True:
            try:
                producer.produce(settings.topic_prefix + name, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise SystemExit("could not produce the workload")


# -- the contenders -----------------------------------------------------------------------


def start_missions(settings: Settings) -> list[measure.Service]:
    command = measure.agentlog_command(
        "processors", "run", "--processor=missions", "--worker-id=bench", "--log-level=WARNING"
    )
    return [measure.Service(command, measure.child_env(settings), "mission worker")]


def start_passthrough(settings: Settings) -> list[measure.Service]:
    argv = [sys.executable, __file__, "--child", "passthrough"]
    return [measure.Service(argv, measure.child_env(settings), "pass-through")]


Starter = Callable[[Settings], list[measure.Service]]
CONTENDERS: tuple[tuple[str, str, Starter], ...] = (
    ("raw pass-through (consume → produce, tx)", RAW_GROUP, start_passthrough),
    ("mission processor, 1 worker", NAME, start_missions),
)
"""(label, group suffix, starter): the ceiling and the worker."""


def fresh_topics(scratch: measure.Scratch, label: str) -> Settings:
    settings = scratch.settings(label)
    ensure_topics(settings, (RAW_OUT,))
    return settings


def input_partitions(settings: Settings) -> list[TopicPartition]:
    return measure.partitions(measure.admin(settings), [settings.topic_prefix + spec.name for spec in SOURCES])


def drain(settings: Settings, group: str, services: list[measure.Service], records: Encoded) -> float:
    """Wait until the worker holds every partition, then produce ``records`` and time the group's committed
    offsets reaching their end; returns seconds."""
    client = measure.admin(settings)
    tps = input_partitions(settings)
    measure.wait_assigned(client, settings.topic_prefix + group, len(tps), 1, services)
    for service in services:
        service.start_span()
    started = time.monotonic()
    produce(settings, records)
    finished = measure.wait_committed(client, settings.topic_prefix + group, tps, services)
    for service in services:
        service.end_span()
    return finished - started


# -- throughput ---------------------------------------------------------------------------


def throughput(scratch: measure.Scratch, trees: int, missions: int, rounds: int) -> None:
    facts, commands = plan(trees, missions)
    outputs = expected_facts(facts, commands)
    records = encode(facts) + encode(commands)
    ceiling = measure.Series("raw pass-through (consume → produce, tx)")
    worker = measure.Series("mission processor, 1 worker (facts/s)")
    for _ in range(rounds):
        for series, (_label, group, start) in zip((ceiling, worker), CONTENDERS, strict=True):
            settings = fresh_topics(scratch, "missions")
            services = start(settings)
            try:
                seconds = drain(settings, group, services, records)
            finally:
                measure.stop_all(services)
            count = len(records) if series is ceiling else outputs
            cpu = sum(s.cpu_span_s for s in services)
            series.add(
                count / seconds, cpu / count * 1e6, max((s.memory() for s in services), key=lambda m: m.peak_total_mib)
            )
    measure.print_table(
        f"throughput: {trees:,} trees of {missions} missions: {len(records):,} inputs ({len(commands):,} commands),"
        f" {outputs:,} facts, produced at once, {rounds} rounds (the ceiling copies inputs: its figure is inputs/s)",
        [ceiling, worker],
        ceiling=ceiling,
    )
    print("  goal: ≥ 5,000 transitions/s")


# -- dependency-resolution latency --------------------------------------------------------


@dataclass(frozen=True)
class LatencyLoad:
    """The latency run's input, encoded, and what the pure core says of it."""

    warm_up: Encoded
    """The gate's facts of every tree and the warm-up trees' plans: drained before the clock."""
    load: Encoded
    """The paced commands."""
    releasing: dict[str, int]
    """event id of each paced request that completes a last hard dependency → the dependents it makes READY."""
    transitions: int
    """MissionTransitioned facts the paced commands make."""


def latency_load(rate: int, seconds: int, missions: int) -> LatencyLoad:
    total = rate * seconds
    per_tree = 5 * missions - 3
    roots = [f"acme/lat-{t}" for t in range(math.ceil(total / per_tree))]
    warm_roots = [f"acme/warm-{t}" for t in range(4)]
    facts = gate_facts([*warm_roots, *roots])
    warm = staggered([ladder_plan(r, missions) for r in warm_roots], 4)
    # About ten trees at a time, whatever the size, so that the stream mixes every kind of command all along.
    load = staggered([ladder_plan(r, missions) for r in roots], max(min(len(roots), 10), 1))[:total]
    answers = core_answers([*facts, *warm, *load])[len(facts) + len(warm) :]
    releasing = {
        str(command.meta.event_id): n
        for command, answer in zip(load, answers, strict=True)
        if (n := sum(1 for fact in answer if released(fact)))
    }
    transitions = sum(1 for answer in answers for fact in answer if isinstance(fact, ev.MissionTransitioned))
    return LatencyLoad(encode(facts) + encode(warm), encode(load), releasing, transitions)


def release_delays(settings: Settings, worker: bool, load: LatencyLoad) -> list[float]:
    """Append → append delay of each dependent's READY (worker) or of each releasing request's copy (ceiling)."""
    serde = Serde()

    def event_id(value: bytes) -> str:
        return str(serde.decode(value).meta.event_id)

    requests = append_times(settings, MISSIONS.name, event_id)
    if not worker:
        copies = append_times(settings, RAW_OUT.name, event_id)
        return [float(copies[cause] - requests[cause]) for cause in load.releasing if cause in copies]
    completed: set[str] = set()
    readies: list[tuple[str, int]] = []
    for record in read_topic(settings, settings.topic_prefix + MISSION_EVENTS.name):
        if not record.value or serde.record_name(record.value) != ev.MissionTransitioned.avro_name:
            continue
        fact = serde.decode(record.value)
        cause = str(fact.meta.causation_id)
        if cause not in load.releasing:
            continue
        if isinstance(fact, ev.MissionTransitioned) and fact.to_state is _S.COMPLETED:
            completed.add(cause)
        elif released(fact):
            readies.append((cause, record.timestamp_ms))
    expected = sum(load.releasing.values())
    if len(readies) != expected or any(cause not in completed for cause, _ in readies):
        raise SystemExit(
            f"the worker made {len(readies)} dependents READY ({len(completed)} last dependencies COMPLETED)"
            f" where the pure core makes {expected}"
        )
    return [float(ts - requests[cause]) for cause, ts in readies]


def latency(scratch: measure.Scratch, rate: int, seconds: int, rounds: int, missions: int) -> None:
    load = latency_load(rate, seconds, missions)
    rows = [
        (
            group,
            start,
            measure.Series(f"{label}: p50", " ms"),
            measure.Series(f"{label}: p99", " ms"),
            measure.Series(f"{label}: max", " ms"),
        )
        for label, group, start in CONTENDERS
    ]
    achieved: list[float] = []
    cpu_us: list[float] = []
    for _ in range(rounds):
        for group, start, p50, p99, most in rows:
            settings = fresh_topics(scratch, "mlat")
            services = start(settings)
            try:
                drain(settings, group, services, load.warm_up)  # assigned, policy read, deciding
                services[0].start_span()
                took = measure.paced(settings, load.load, rate)
                client = measure.admin(settings)
                measure.wait_committed(client, settings.topic_prefix + group, input_partitions(settings), services)
                services[0].end_span()
            finally:
                measure.stop_all(services)
            delays = release_delays(settings, group == NAME, load)
            if group == NAME:
                achieved.append(len(load.load) / took)
                cpu_us.append(services[0].cpu_span_s / len(load.load) * 1e6)
            memory = services[0].memory()
            p50.add(statistics.median(delays), memory=memory)
            p99.add(measure.pct(delays, 0.99), memory=memory)
            most.add(max(delays), memory=memory)
    measure.print_table(
        f"dependency resolution at {rate:,} commands/s for {seconds}s ({len(load.load):,} commands making"
        f" {load.transitions:,} transitions; {sum(load.releasing.values()):,} dependents made READY): broker append"
        f" of the request completing the last hard dependency → append of the dependent's READY (the ceiling:"
        f" of the request's copy), {rounds} round(s)",
        [s for row in rows for s in row[2:]],
    )
    print(
        f"  paced at {statistics.median(achieved):,.0f} commands/s; the worker's CPU"
        f" {statistics.median(cpu_us):.0f} µs per command ({statistics.median(cpu_us) * rate / 1e4:.0f} % of a core)"
    )
    print("  goal: p99 ≤ 100 ms end to end through the broker")


# -- the cycle check ----------------------------------------------------------------------

CYCLE_ROOT = "acme/cycles"
IN_ORDER, REORDERED, CYCLE = "accepted, already in order", "accepted, reordered (Pearce-Kelly)", "rejected, a cycle"
KINDS = (IN_ORDER, REORDERED, CYCLE)
CYCLE_SHARE, BACKWARD_SHARE, LOCAL_SHARE = 0.1, 0.1, 0.5
"""Of the candidates: closing a cycle; against the creation order, a few missions apart; the rest in the creation
order, half of those a few missions apart (a plan's next steps) and half anywhere before."""
NEAR = 20.0
"""The mean distance, in creation order, of a near dependency."""


@dataclass
class EdgeSample:
    """One added edge: its kind, its cost, and (raw check only) the missions it moved or the cycle's length."""

    kind: str
    ns: int
    size: int = 0


def _candidate(rng: random.Random, tree: MissionTree, ids: list[str]) -> tuple[str, str] | None:
    """A (dependent, dependency) pair, or None when the draw is unusable (out of range, a duplicate, crowded)."""
    count = len(ids)
    roll = rng.random()
    if roll < CYCLE_SHARE:  # walk down the dependencies, then make the last one reached depend on the first
        start = current = ids[rng.randrange(count)]
        for _ in range(1 + int(rng.expovariate(1 / 8))):
            needs = tree.missions[current].needs
            if not needs:
                break
            current = rng.choice(list(needs))
        pair = (current, start)
    else:
        i = rng.randrange(count)
        near = 1 + int(rng.expovariate(1 / NEAR))
        if roll < CYCLE_SHARE + BACKWARD_SHARE:
            j = i + near
        elif rng.random() < LOCAL_SHARE:
            j = i - near
        else:
            j = rng.randrange(i) if i else -1
        if not 0 <= j < count:
            return None
        pair = (ids[i], ids[j])
    dependent, dependency = tree.missions[pair[0]], tree.missions[pair[1]]
    if (
        dependent is dependency
        or dependency.mission_id in dependent.needs
        or len(dependent.needs) >= MAX_EDGES
        or len(dependency.needed_by) >= MAX_EDGES
    ):
        return None
    return pair


def raw_cycle_check(missions: int, edges: int, seed: int) -> tuple[list[tuple[str, str]], list[EdgeSample]]:
    """Grow the DAG to ``edges`` accepted dependencies with ``cycle_if_added`` alone, timing each call; returns the
    sequence of candidates (for :func:`decided_cycle_check`) and the samples."""
    rng = random.Random(seed)
    ids = [f"m{i}" for i in range(missions)]
    tree = MissionTree(CYCLE_ROOT, "acme", next_order=missions)
    for i, mission_id in enumerate(ids):
        tree.add(Mission(mission_id=mission_id, parent=None, state=_S.READY, attempt=1, max_attempts=3, order=i))
    sequence: list[tuple[str, str]] = []
    samples: list[EdgeSample] = []
    accepted = 0
    gc.collect()
    while accepted < edges:
        pair = _candidate(rng, tree, ids)
        if pair is None:
            continue
        dependent, dependency = tree.missions[pair[0]], tree.missions[pair[1]]
        in_order = dependency.order < dependent.order
        started = time.perf_counter_ns()
        check = cycle_if_added(tree, *pair)
        took = time.perf_counter_ns() - started
        sequence.append(pair)
        if check.cycle is not None:
            samples.append(EdgeSample(CYCLE, took, len(check.cycle)))
            continue
        dependent.needs[dependency.mission_id] = ev.DependencyKind.HARD  # the caller adds the edge, as decide does
        dependency.needed_by.append(dependent.mission_id)
        accepted += 1
        samples.append(EdgeSample(IN_ORDER if in_order else REORDERED, took, len(check.moved)))
    return sequence, samples


def decided_cycle_check(missions: int, sequence: list[tuple[str, str]], raw: list[EdgeSample]) -> list[EdgeSample]:
    """The same sequence as ``DependencyAdded`` commands through ``decide``, each timed; checks the answers
    agree with the raw check's."""
    state = MissionPartition()
    for fact in admitted_tree(CYCLE_ROOT, []):
        decide(state, fact, None)
    for i in range(missions):
        decide(state, ev.MissionCreated(meta=_meta(CYCLE_ROOT), mission_id=f"m{i}", task=ev.TaskSpec(title="m")), None)
    commands = [ev.DependencyAdded(meta=_meta(CYCLE_ROOT), mission_id=a, depends_on=b) for a, b in sequence]
    found = state.trees[CYCLE_ROOT].missions
    samples: list[EdgeSample] = []
    gc.collect()
    for command, expected in zip(commands, raw, strict=True):
        in_order = found[command.depends_on].order < found[command.mission_id].order
        started = time.perf_counter_ns()
        outputs, _ = decide(state, command, None)
        took = time.perf_counter_ns() - started
        answer = outputs[0]
        if isinstance(answer, ev.DependencyAccepted):
            kind = IN_ORDER if in_order else REORDERED
        elif isinstance(answer, ev.DependencyRejected) and answer.reason_code is ev.MissionRejection.DEPENDENCY_CYCLE:
            kind = CYCLE
        else:
            raise SystemExit(f"decide answered {answer!r} to {command.mission_id} → {command.depends_on}")
        if kind != expected.kind:
            raise SystemExit(f"decide said {kind!r} where the raw check said {expected.kind!r}")
        samples.append(EdgeSample(kind, took))
    return samples


def print_edge_costs(title: str, samples: Sequence[EdgeSample], sizes: bool) -> None:
    print(f"\n{title}")
    size = f"{'mean moved / cycle':>20}" if sizes else ""
    print(f"  {'':<40}{'edges':>8}{'mean':>10}{'p50':>10}{'p99':>10}{'max':>10}{size}   (µs per edge)")
    for kind in KINDS:
        chosen = [s for s in samples if s.kind == kind]
        if not chosen:
            continue
        us = [s.ns / 1e3 for s in chosen]
        size = f"{statistics.fmean(s.size for s in chosen):>20.1f}" if sizes else ""
        print(
            f"  {kind:<40}{len(us):>8,}{statistics.fmean(us):>10.1f}{measure.pct(us, 0.5):>10.1f}"
            f"{measure.pct(us, 0.99):>10.1f}{max(us):>10.1f}{size}"
        )


def cycles(missions: int, edges: int, seed: int) -> None:
    sequence, raw = raw_cycle_check(missions, edges, seed)
    decided = decided_cycle_check(missions, sequence, raw)
    held = itertools.accumulate(s.kind != CYCLE for s in raw)  # accepted edges after each candidate
    first = next(i for i, n in enumerate(held) if n > 0.9 * edges)
    what = f"{missions:,} missions growing to {edges:,} hard dependencies ({len(raw):,} candidates, seed {seed})"
    print_edge_costs(f"cycle check, raw cycle_if_added: {what}", raw, sizes=True)
    print_edge_costs(f"cycle check, decide on a DependencyAdded: {what}", decided, sizes=False)
    print_edge_costs(
        f"the same, the last {len(raw) - first:,} candidates only (the tree holding more than {0.9 * edges:,.0f}"
        " edges)",
        decided[first:],
        sizes=False,
    )
    print("  goal: ≤ 1 ms (1,000 µs) per added edge on 10,000 missions and 30,000 edges")


# -- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", type=int, default=500, help="throughput: trees in the backlog")
    parser.add_argument("--missions", type=int, default=20, help="missions per tree (throughput and latency)")
    parser.add_argument("--rounds", type=int, default=3, help="throughput: rounds alternating the ceiling and worker")
    parser.add_argument("--latency-rate", type=int, default=500, help="latency: commands/s from the paced producer")
    parser.add_argument("--latency-seconds", type=int, default=15)
    parser.add_argument("--latency-rounds", type=int, default=1)
    parser.add_argument("--cycle-missions", type=int, default=10_000)
    parser.add_argument("--cycle-edges", type=int, default=30_000, help="cycles: accepted dependencies to reach")
    parser.add_argument("--cycle-seed", type=int, default=7)
    parser.add_argument("--only", type=measure.parts_of(PARTS), default=list(PARTS), help=f"some of {','.join(PARTS)}")
    parser.add_argument("--keep", action="store_true", help="keep the topics and groups created")
    parser.add_argument("--child", choices=["passthrough"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "passthrough":
        passthrough_child(Settings(), (MISSIONS, POLICY_DECISIONS))
        return
    scratch = measure.Scratch(Settings(), keep=args.keep)
    print(f"missions benchmark on {scratch.base.bootstrap_servers}; {measure.load_average()}")
    try:
        if "cycles" in args.only:
            cycles(args.cycle_missions, args.cycle_edges, args.cycle_seed)
        if "throughput" in args.only:
            throughput(scratch, args.trees, args.missions, args.rounds)
        if "latency" in args.only:
            latency(scratch, args.latency_rate, args.latency_seconds, args.latency_rounds, args.missions)
    finally:
        scratch.clean()


if __name__ == "__main__":
    main()
