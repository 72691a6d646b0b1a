"""The mission processor under SIGKILL: every command answered once, the facts those of one uninterrupted run.

The gate's facts a tree needs (its root admitted, two agents approved, one of them later
terminated) are written to the decisions topic by the test itself, as input data; the
commands go to the missions topic. The reference re-runs the pure core over both inputs in
the order the processor's outputs record (their decision points).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from agentlog import events as ev
from agentlog.errors import DecodeError
from agentlog.processors.gate_input import decode_record
from agentlog.processors.input_merge import DecisionPoint, InputRecord
from agentlog.processors.mission_core import decide
from agentlog.processors.mission_input import MISSION_ORDER, SOURCES
from agentlog.processors.mission_state import MissionPartition
from agentlog.processors.testing import admitted_tree
from agentlog.producer import Producer
from agentlog.replay.input_order import RecordedOrder
from agentlog.replay.topic_reader import read_partition, read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import tree_partition_count
from agentlog.topics import MISSION_EVENTS

from .gate_harness import Worker

_S = ev.MissionState
COMMANDS = (ev.MissionCreated, ev.DependencyAdded, ev.MissionTransitionRequested)


def _workload(trees: int, commands_per_tree: int, seed: int) -> tuple[list[list[ev.Event]], int]:
    """Batches of input (facts first, then each tree's commands, interleaved), and how many commands."""
    rng = random.Random(seed)
    facts: list[ev.Event] = []
    per_tree: list[list[ev.Event]] = []
    for t in range(trees):
        root = f"acme/tree-{t}"

        def meta(root: str = root) -> ev.Meta:
            return ev.Meta(tenant_id="acme", root_id=root, producer="test")

        facts += admitted_tree(root, [f"{root}/w1", f"{root}/w2"])
        commands: list[ev.Event] = []
        missions: list[str] = []
        for i in range(commands_per_tree):
            roll = rng.random()
            if roll < 0.3 or len(missions) < 2:
                name = f"m{len(missions)}"
                parent = rng.choice(missions) if missions and rng.random() < 0.3 else None
                task = ev.TaskSpec(title=name)
                attempts = rng.choice([1, 2, 3])
                commands.append(
                    ev.MissionCreated(
                        meta=meta(), mission_id=name, parent_mission_id=parent, task=task, max_attempts=attempts
                    )
                )
                missions.append(name)
            elif roll < 0.5:
                a, b = rng.sample(missions, 2)
                kind = ev.DependencyKind.SOFT if rng.random() < 0.2 else ev.DependencyKind.HARD
                commands.append(ev.DependencyAdded(meta=meta(), mission_id=a, depends_on=b, kind=kind))
            elif i == commands_per_tree // 2:
                reason = ev.TerminationReason.REQUESTED
                commands.append(
                    ev.AgentTerminated(meta=meta(), agent_id=f"{root}/w1", reason=reason, policy_version=1, message="")
                )
            else:
                to = rng.choice([_S.RUNNING, _S.RUNNING, _S.COMPLETED, _S.FAILED, _S.CANCELLED, _S.ARCHIVED])
                agent = rng.choice([root, f"{root}/w1", f"{root}/w2"])
                request = ev.MissionTransitionRequested(
                    meta=meta(),
                    mission_id=rng.choice(missions),
                    to_state=to,
                    requested_by=root,
                    agent_id=agent,
                    retryable=rng.random() < 0.7,
                )
                commands.append(request)
        per_tree.append(commands)
    batches = [facts]
    for step in range(commands_per_tree):
        batches.append([commands[step] for commands in per_tree if step < len(commands)])
    count = sum(isinstance(e, COMMANDS) for commands in per_tree for e in commands)
    return batches, count


def _feed(settings: Settings, batches: list[list[ev.Event]], pause_s: float) -> threading.Thread:
    def run() -> None:
        with Producer(settings) as producer:
            for batch in batches:
                for event in batch:
                    producer.send(event)
                producer.flush(60)
                time.sleep(pause_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _facts(settings: Settings) -> dict[int, list[tuple[ev.Event, DecisionPoint | None]]]:
    serde = Serde()
    out: dict[int, list[tuple[ev.Event, DecisionPoint | None]]] = {}
    for record in read_topic(settings, settings.topic_prefix + MISSION_EVENTS.name):
        fact = serde.decode(record.value or b"")
        out.setdefault(record.partition, []).append((fact, DecisionPoint.of(record.headers)))
    return out


def _answered(facts: dict[int, list[tuple[ev.Event, DecisionPoint | None]]]) -> Counter[str]:
    """Per cause (a command's event id), how many facts it caused."""
    return Counter(str(f.meta.causation_id) for fs in facts.values() for f, _ in fs)


Recorded = dict[int, list[tuple[ev.Event, DecisionPoint | None]]]


def _reference(settings: Settings, facts: Recorded) -> dict[int, list[ev.Event]]:
    """The pure core re-run over each partition's inputs, in the order the outputs' decision points record."""
    serde = Serde()
    topics = [settings.topic_prefix + spec.name for spec in SOURCES]
    reference: dict[int, list[ev.Event]] = {}
    for partition in range(tree_partition_count(settings)):
        streams = [_stream(settings, source, topic, partition) for source, topic in enumerate(topics)]
        order = RecordedOrder(streams, MISSION_ORDER)
        records: list[InputRecord] = []
        last = None
        for _, point in facts.get(partition, []):
            assert point is not None
            if point != last:
                records += order.through(point)
                last = point
        records += order.until(2**63 - 1)
        state = MissionPartition(partition=partition)
        outputs: list[ev.Event] = []
        for record in records:
            try:
                event = decode_record(serde, record, SOURCES[record.source])
            except DecodeError:
                continue
            outputs += decide(state, event, None)[0]
        if outputs:
            reference[partition] = outputs
    return reference


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_at_random_moments(settings: Settings) -> None:
    """20+ SIGKILLs during 5,000 commands: each answered once, and the facts of one uninterrupted run."""
    batches, commands = _workload(trees=250, commands_per_tree=21, seed=4)
    assert commands >= 5_000
    worker = Worker(settings, "missions-1", args=("--processor", "missions"))
    worker.start()
    rng = random.Random(9)
    kills = 0
    try:
        feeder = _feed(settings, batches, 1.2)  # about 25 s of input, so the kills land mid-stream
        while kills < 20 or feeder.is_alive():
            time.sleep(rng.uniform(0.5, 1.5))
            worker.kill()
            kills += 1
            worker.start()
        ids = _command_ids(batches)
        deadline = time.monotonic() + 300
        while True:
            facts = _facts(settings)
            answered = [cause for cause in _answered(facts) if cause in ids]
            if len(answered) >= commands or time.monotonic() > deadline:
                break
            time.sleep(2)
    finally:
        worker.stop()
    assert len(answered) == commands, f"{commands - len(answered)} commands never answered"
    outputs = [f.meta.event_id for fs in facts.values() for f, _ in fs]
    assert len(outputs) == len(set(outputs)), "a fact was committed twice"
    reference = _reference(settings, facts)
    for partition in sorted(set(facts) | set(reference)):
        got = [f.model_dump() for f, _ in facts.get(partition, [])]
        want = [f.model_dump() for f in reference.get(partition, [])]
        assert got == want, f"partition {partition}: {len(got)} facts committed, {len(want)} in the reference"
    kinds = {type(f).__name__ for fs in facts.values() for f, _ in fs}
    assert {"MissionTransitioned", "MissionTransitionRejected", "DependencyAccepted", "DependencyRejected"} <= kinds


def _stream(settings: Settings, source: int, topic: str, partition: int) -> Iterator[InputRecord]:
    for record in read_partition(settings, topic, partition):
        yield InputRecord.of(source, record)


def _command_ids(batches: list[list[ev.Event]]) -> set[str]:
    return {str(e.meta.event_id) for batch in batches for e in batch if isinstance(e, COMMANDS)}
