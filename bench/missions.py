"""Mission-processor benchmark: facts/s of one worker on a backlog, next to a raw pass-through on the same input.

The input is what the processor reads: per tree, the gate's facts (the root admitted and
four agents approved, on the decisions topic) and a mission plan (on the missions topic):
``--missions`` missions per tree in a chain of phases, each phase a parallel group that
hard-depends on the one before, every mission started under an agent and completed, and
one failed attempt per tree that is retried. Every completion of a phase makes the next
one READY, so the processor's automatic transitions are in the count too. The input is
pre-encoded and produced at once; the clock runs from the first record produced to the
consumer group's committed offsets reaching the end of both input topics (as in
``bench/gate.py``). The ceiling, in the same rounds, on fresh topics: a process that
consumes the same two topics and produces the same bytes in the same transactional
batches, with no decoding, no decision and no state.

Run: ``python bench/missions.py [--trees 500] [--missions 20] [--rounds 3]``. Goal: ≥ 5,000
transitions/s.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

sys.path.append(str(Path(__file__).resolve().parent))
import measure
from gate import RAW_GROUP, RAW_OUT, passthrough_child

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.processors.mission_core import decide
from agentlog.processors.mission_state import MissionPartition
from agentlog.processors.mission_worker import NAME, SOURCES
from agentlog.processors.testing import admitted_tree
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import ensure_topics
from agentlog.topics import MISSIONS, POLICY_DECISIONS, topic_of

_S = ev.MissionState
WORKERS = ("w0", "w1", "w2", "w3")


def tree_plan(root: str, missions: int) -> list[ev.Event]:
    """Phases of four parallel missions, each phase hard-depending on the one before; all run and completed,
    one failed attempt retried."""
    meta = ev.Meta(tenant_id="acme", root_id=root, producer="bench")
    names = [f"p{i // 4}-m{i % 4}" for i in range(missions)]
    phases = [names[i : i + 4] for i in range(0, missions, 4)]
    commands: list[ev.Event] = [ev.MissionCreated(meta=meta, mission_id=n, task=ev.TaskSpec(title=n)) for n in names]
    for before, after in itertools.pairwise(phases):
        commands += [ev.DependencyAdded(meta=meta, mission_id=n, depends_on=d) for n in after for d in before]

    def move(name: str, to: ev.MissionState, agent: str, **fields: Any) -> ev.Event:
        return ev.MissionTransitionRequested(
            meta=meta, mission_id=name, to_state=to, requested_by=root, agent_id=agent, **fields
        )

    for number, phase in enumerate(phases):
        for i, name in enumerate(phase):
            agent = f"{root}/{WORKERS[i % len(WORKERS)]}"
            commands.append(move(name, _S.RUNNING, agent))
            if number == 0 and i == 0:
                commands += [move(name, _S.FAILED, agent, reason="flaky"), move(name, _S.RUNNING, agent)]
            commands.append(move(name, _S.COMPLETED, agent, result_summary="done", quality_score=0.9))
    return commands


def plan(trees: int, missions: int) -> tuple[list[ev.Event], list[ev.Event]]:
    """The gate's facts and the mission commands of ``trees`` trees, the trees' commands interleaved step by step."""
    roots = [f"acme/plan-{t}" for t in range(trees)]
    facts = [fact for root in roots for fact in admitted_tree(root, [f"{root}/{w}" for w in WORKERS])]
    per_tree = [tree_plan(root, missions) for root in roots]
    interleaved = [c[i] for i in range(max(len(c) for c in per_tree)) for c in per_tree if i < len(c)]
    return facts, interleaved


def expected_facts(facts: list[ev.Event], commands: list[ev.Event]) -> int:
    """How many facts the pure core makes of the input (so that the rate counts transitions, not inputs)."""
    state = MissionPartition()
    return sum(len(decide(state, event, None)[0]) for event in (*facts, *commands))


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


def start_missions(settings: Settings) -> list[measure.Service]:
    command = measure.agentlog_command(
        "processors", "run", "--processor=missions", "--worker-id=bench", "--log-level=WARNING"
    )
    return [measure.Service(command, measure.child_env(settings), "mission worker")]


def start_passthrough(settings: Settings) -> list[measure.Service]:
    argv = [sys.executable, __file__, "--child", "passthrough"]
    return [measure.Service(argv, measure.child_env(settings), "pass-through")]


def drain(
    settings: Settings, group: str, services: list[measure.Service], records: list[tuple[str, bytes, bytes]]
) -> float:
    client = measure.admin(settings)
    tps = measure.partitions(client, [settings.topic_prefix + spec.name for spec in SOURCES])
    measure.wait_assigned(client, settings.topic_prefix + group, len(tps), 1, services)
    for service in services:
        service.start_span()
    started = time.monotonic()
    produce(settings, records)
    finished = measure.wait_committed(client, settings.topic_prefix + group, tps, services)
    for service in services:
        service.end_span()
    return finished - started


def throughput(scratch: measure.Scratch, trees: int, missions: int, rounds: int) -> None:
    facts, commands = plan(trees, missions)
    outputs = expected_facts(facts, commands)
    records = encode(facts) + encode(commands)
    ceiling = measure.Series("raw pass-through (consume → produce, tx)")
    worker = measure.Series("mission processor, 1 worker (facts/s)")
    for _ in range(rounds):
        for series, group, start in ((ceiling, RAW_GROUP, start_passthrough), (worker, NAME, start_missions)):
            settings = scratch.settings("missions")
            ensure_topics(settings, (RAW_OUT,))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", type=int, default=500)
    parser.add_argument("--missions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the topics and groups created")
    parser.add_argument("--child", choices=["passthrough"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "passthrough":
        passthrough_child(Settings(), (MISSIONS, POLICY_DECISIONS))
        return
    scratch = measure.Scratch(Settings(), keep=args.keep)
    print(f"missions benchmark on {scratch.base.bootstrap_servers}; {measure.load_average()}")
    try:
        throughput(scratch, args.trees, args.missions, args.rounds)
    finally:
        scratch.clean()


if __name__ == "__main__":
    main()
