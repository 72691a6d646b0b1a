"""The consultation bus against the real broker: messages answered, ticks expiring and escalating, dead letters,
and SIGKILL during thousands of messages (exactly one fact per message, as the pure core decides them).

The gate's facts a tree needs are written to the decisions topic by the tests themselves, as input data: the bus
reads facts, not the gate.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer as KafkaProducer

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.dead_letters import STAGE
from agentlog.messages import MESSAGE_TYPES
from agentlog.processors.policy import load_default_policy, to_event
from agentlog.processors.testing import admitted_tree
from agentlog.producer import Producer
from agentlog.replay.runs import decisions_report
from agentlog.replay.topic_reader import read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.tail import TailOptions, tail
from agentlog.topics import AGENT_LIFECYCLE, DLQ, MESSAGE_EVENTS, MESSAGES, MISSIONS

from .gate_harness import Worker

_K = ev.MessageKind
_R = ev.MessageRejection


@pytest.fixture
def bus_worker(settings: Settings) -> Iterator[Worker]:
    worker = Worker(settings, "bus-1", args=("--processor", "bus"))
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def _meta(root: str) -> ev.Meta:
    return ev.Meta(tenant_id="acme", root_id=root, producer="test")


def _facts(settings: Settings) -> list[ev.Event]:
    serde = Serde()
    return [serde.decode(r.value or b"") for r in read_topic(settings, settings.topic_prefix + MESSAGE_EVENTS.name)]


def _wait_for(settings: Settings, causes: set[str], ticks: int = 0, timeout_s: float = 120) -> list[ev.Event]:
    """The bus's facts once every one of ``causes`` (event ids) is answered and ``ticks`` tick facts exist."""
    deadline = time.monotonic() + timeout_s
    while True:
        facts = _facts(settings)
        answered = {str(f.meta.causation_id) for f in facts} & causes
        ticked = sum(f.meta.causation_id is None for f in facts)
        if (len(answered) == len(causes) and ticked >= ticks) or time.monotonic() > deadline:
            return facts
        time.sleep(0.5)


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``condition`` every 0.5 s until it holds or ``timeout_s`` passed (the assertions then say what is wrong)."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.5)


@pytest.mark.timeout(300)
def test_messages_are_answered_expired_and_escalated(settings: Settings, bus_worker: Worker) -> None:
    root = "acme/bus-worker"
    soon = datetime.now(UTC) + timedelta(seconds=2)
    request = ev.AgentRequest(meta=_meta(root), message_id=uuid.uuid4(), from_agent_id=f"{root}/w1",
                              to_agent_id=f"{root}/w2", subject="review", reply_by=soon)  # fmt: skip
    question = ev.AgentQuestion(meta=_meta(root), message_id=uuid.uuid4(), from_agent_id=f"{root}/w1",
                                question="ship it?", decide_by=soon)  # fmt: skip
    stranger = ev.AgentAlert(meta=_meta(root), message_id=uuid.uuid4(), from_agent_id="stranger", text="hi")
    alert = ev.AgentAlert(meta=_meta(root), message_id=uuid.uuid4(), from_agent_id=root, text="stop",
                          priority=ev.Priority.CRITICAL)  # fmt: skip
    messages = [request, question, stranger, alert]
    with Producer(settings) as producer:
        for fact in admitted_tree(root, [f"{root}/w1", f"{root}/w2"]):
            producer.send(fact)
        producer.flush(30)
        for message in messages:
            producer.send(message)
        producer.flush(30)
    facts = _wait_for(settings, {str(m.meta.event_id) for m in messages}, ticks=3)
    by_cause = {f.meta.causation_id: f for f in facts if f.meta.causation_id is not None}
    answer = by_cause[request.meta.event_id]
    assert isinstance(answer, ev.MessageAccepted) and answer.recipients == [f"{root}/w2"]
    asked = by_cause[question.meta.event_id]
    assert isinstance(asked, ev.MessageAccepted) and asked.recipients == [root]  # the asker's parent
    refused = by_cause[stranger.meta.event_id]
    assert isinstance(refused, ev.MessageRejected) and refused.reason is _R.NOT_AN_ACTIVE_AGENT
    broadcast = by_cause[alert.meta.event_id]
    assert isinstance(broadcast, ev.MessageAccepted) and broadcast.broadcast
    ticks = [f for f in facts if f.meta.causation_id is None]
    expired = {(f.message_id, f.kind) for f in ticks if isinstance(f, ev.MessageExpired)}
    assert expired == {(request.message_id, _K.REQUEST), (question.message_id, _K.QUESTION)}
    assert not [f for f in ticks if isinstance(f, ev.QuestionEscalated)]  # the root was the recipient: no level up
    report = decisions_report(settings, root_id=root, processor="bus")
    assert report.outcomes == [] and report.reproduced == report.recorded == len(facts)


def _records(settings: Settings, base: str) -> list[ev.Event]:
    serde = Serde()
    return [serde.decode(r.value or b"") for r in read_topic(settings, settings.topic_prefix + base)]


@pytest.mark.timeout(300)
def test_a_freeze_and_a_mission_handoff_are_handed_over_in_the_buss_transaction(settings: Settings) -> None:
    """A CRITICAL alert (under a policy that freezes on one) and a handoff naming a mission: the bus writes a
    TreeFreezeRequested to the gate's lifecycle topic and a MissionHandoffRequested to the missions topic, once each,
    and replay reproduces them byte for byte beside the bus's facts."""
    policy = load_default_policy()
    policy = policy.model_copy(update={"limits": policy.limits.model_copy(update={"freeze_on_critical_alert": True})})
    root = "acme/bus-handover"
    alert = ev.AgentAlert(meta=_meta(root), message_id=uuid.uuid4(), from_agent_id=f"{root}/w1", text="leak",
                          priority=ev.Priority.CRITICAL)  # fmt: skip
    handoff = ev.Handoff(meta=_meta(root), message_id=uuid.uuid4(), from_agent_id=f"{root}/w1",
                         to_agent_id=f"{root}/w2", task=ev.TaskSpec(title="the rest"), mission_id="build")  # fmt: skip
    with Producer(settings) as producer:
        producer.publish(to_event(policy, published_by="test"))
        for fact in admitted_tree(root, [f"{root}/w1", f"{root}/w2"]):
            producer.send(fact)
        producer.flush(30)
    worker = Worker(settings, "bus-1", args=("--processor", "bus"))
    worker.start()
    try:
        with Producer(settings) as producer:
            producer.publish_many([alert, handoff])
        facts = _wait_for(settings, {str(alert.meta.event_id), str(handoff.meta.event_id)})
    finally:
        worker.stop()
    assert all(isinstance(f, ev.MessageAccepted) for f in facts), facts
    (freeze,) = [e for e in _records(settings, AGENT_LIFECYCLE.name) if isinstance(e, ev.TreeFreezeRequested)]
    assert (freeze.alert_id, freeze.meta.causation_id) == (alert.message_id, alert.meta.event_id)
    assert freeze.meta.producer == "agentlog.bus"
    (move,) = [e for e in _records(settings, MISSIONS.name) if isinstance(e, ev.MissionHandoffRequested)]
    assert (move.mission_id, move.to_agent_id, move.handoff_id) == ("build", f"{root}/w2", handoff.message_id)
    report = decisions_report(settings, processor="bus")
    assert report.outcomes == [] and report.reproduced == report.recorded == len(facts) + 2


@pytest.mark.timeout(300)
def test_undecodable_messages_go_to_the_dead_letter_topic(settings: Settings, bus_worker: Worker) -> None:
    producer = KafkaProducer(kafka_config.producer(settings))
    producer.produce(settings.topic_prefix + MESSAGES.name, b"not avro", b"acme/some-tree")
    producer.flush(30)
    alert = ev.AgentAlert(meta=_meta("acme/unknown"), message_id=uuid.uuid4(), from_agent_id="a", text="x")
    with Producer(settings) as sdk:
        sdk.publish(alert)
    (fact,) = [f for f in _wait_for(settings, {str(alert.meta.event_id)}) if f.meta.causation_id is not None]
    assert isinstance(fact, ev.MessageRejected) and fact.reason is _R.UNKNOWN_TREE  # the bus went on
    letters = list(tail(settings, TailOptions(topics=[settings.topic_prefix + DLQ.name], from_beginning=True)))
    assert "processors.bus" in [dict(r.headers).get(STAGE) for r in letters], [r.headers for r in letters]


def _workload(trees: int, per_tree: int, seed: int) -> tuple[list[list[ev.Event]], set[str]]:
    """Batches of input (the gate's facts first, then each tree's messages, interleaved), and the messages' ids."""
    rng = random.Random(seed)
    facts: list[ev.Event] = []
    per_tree_messages: list[list[ev.Event]] = []
    start = datetime.now(UTC)
    for t in range(trees):
        root = f"acme/bus-{t}"
        w1, w2 = f"{root}/w1", f"{root}/w2"
        facts += admitted_tree(root, [w1, w2])
        messages: list[ev.Event] = []
        requests: list[uuid.UUID] = []
        questions: list[uuid.UUID] = []
        for _ in range(per_tree):
            roll = rng.random()
            sender, to = rng.sample([root, w1, w2, "stranger"] if rng.random() < 0.1 else [root, w1, w2], 2)
            soon = start + timedelta(seconds=rng.uniform(2, 30)) if rng.random() < 0.5 else None
            message: ev.Event
            if roll < 0.25:
                requests.append(uuid.uuid4())
                message = ev.AgentRequest(meta=_meta(root), message_id=requests[-1], from_agent_id=sender,
                                          to_agent_id=to, subject="do", reply_by=soon,
                                          max_replies=rng.choice([0, 1, 2]))  # fmt: skip
            elif roll < 0.4 and requests:
                message = ev.AgentReply(meta=_meta(root), message_id=uuid.uuid4(), request_id=rng.choice(requests),
                                        from_agent_id=to)  # fmt: skip
            elif roll < 0.6:
                questions.append(uuid.uuid4())
                recipient = to if rng.random() < 0.3 else None
                message = ev.AgentQuestion(meta=_meta(root), message_id=questions[-1], from_agent_id=sender,
                                           to_agent_id=recipient, question="?", decide_by=soon)  # fmt: skip
            elif roll < 0.75 and questions:
                message = ev.DecisionRecorded(meta=_meta(root), message_id=uuid.uuid4(),
                                              question_id=rng.choice(questions), decided_by=rng.choice([root, w1, w2]),
                                              choice="yes")  # fmt: skip
            elif roll < 0.85:
                message = ev.Handoff(meta=_meta(root), message_id=uuid.uuid4(), from_agent_id=sender, to_agent_id=to,
                                     task=ev.TaskSpec(title="t"))  # fmt: skip
            else:
                message = ev.AgentAlert(meta=_meta(root), message_id=uuid.uuid4(), from_agent_id=sender, text="!")
            messages.append(message)
        if t % 10 == 0:  # an agent ends mid-conversation
            ended = ev.AgentTerminated(meta=_meta(root), agent_id=w2, reason=ev.TerminationReason.REQUESTED,
                                       policy_version=1, message="")  # fmt: skip
            messages.insert(per_tree // 2, ended)
        per_tree_messages.append(messages)
    batches = [facts]
    for step in range(per_tree + 1):
        batches.append([messages[step] for messages in per_tree_messages if step < len(messages)])
    ids = {str(m.meta.event_id) for ms in per_tree_messages for m in ms if isinstance(m, MESSAGE_TYPES)}
    return batches, ids


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


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_random_moments(settings: Settings) -> None:
    """20+ SIGKILLs during 5,000 messages: each answered by exactly one fact, and every fact the pure core's."""
    batches, ids = _workload(trees=250, per_tree=21, seed=5)
    assert len(ids) >= 5_000
    worker = Worker(settings, "bus-1", args=("--processor", "bus"))
    worker.start()
    rng = random.Random(11)
    kills = 0
    try:
        feeder = _feed(settings, batches, 1.0)  # about 22 s of input, so the kills land mid-stream
        while kills < 20 or feeder.is_alive():
            time.sleep(rng.uniform(0.5, 1.5))
            worker.kill()
            kills += 1
            worker.start()
        _wait_for(settings, ids, timeout_s=300)
        # Deadlines run to 30 s after the workload was made, and the timer sees them pass only while the worker
        # is caught up, which 20 kills under load can postpone past the last answer: wait for an expiry too.
        _wait_until(lambda: any(isinstance(f, ev.MessageExpired) for f in _facts(settings)), timeout_s=120)
    finally:
        worker.stop()
    facts = _facts(settings)  # read again once stopped: the worker's ticks may have added facts since the wait
    causes = Counter(str(f.meta.causation_id) for f in facts if f.meta.causation_id is not None)
    assert set(causes) == ids, f"{len(ids - set(causes))} messages never answered"
    assert max(causes.values()) == 1, "a message was answered twice"
    outputs = [f.meta.event_id for f in facts]
    assert len(outputs) == len(set(outputs)), "a fact was committed twice"
    report = decisions_report(settings, processor="bus")  # every fact, ticks included, as the pure core decides
    assert report.outcomes == [], report.outcomes[:3]
    assert report.reproduced == report.recorded == len(facts)
    kinds = Counter(type(f).__name__ for f in facts)
    assert {"MessageAccepted", "MessageRejected", "MessageExpired"} <= set(kinds), kinds
