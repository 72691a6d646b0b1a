"""The SDK's side of the consultation bus against the real broker, a real spawn gate and a real bus worker:
requests and replies, questions decided, expired at the root and decided twice at once, rejections, and the
inbox (priority order, acknowledgements that outlive the client, one client for many agents)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from agentlog import events as ev
from agentlog.bus_client import BusTimeout, InboxMessage, MessageRefused, QuestionExpired
from agentlog.client import AgentlogClient
from agentlog.settings import Settings
from tests.processors.gate_harness import Worker

_K = ev.MessageKind
_P = ev.Priority
_R = ev.MessageRejection


@pytest.fixture
def bus(settings: Settings, gate: Worker) -> Iterator[Worker]:
    """A bus worker beside the test's spawn gate."""
    worker = Worker(settings, "bus-1", args=("--processor", "bus"))
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def _client(settings: Settings) -> AgentlogClient:
    return AgentlogClient("acme", settings, timeout=60)


def _ids(messages: list[InboxMessage]) -> list[tuple[_K, str]]:
    return [(m.kind, m.priority.name) for m in messages]


@pytest.mark.timeout(240)
def test_a_request_reaches_the_recipients_inbox_and_its_reply_the_requester(settings: Settings, bus: Worker) -> None:
    with _client(settings) as client:
        root = client.start_root("orchestrator", 400_000, 20)
        child = root.spawn("researcher", "find sources", 20_000)
        with client.bus.inbox([child]) as inbox:
            assert inbox.wait_ready(60) and inbox.pending() == []
            handle = client.bus.agent(root).request(
                child.agent_id, "summarise", "the three sources", reply_by=timedelta(minutes=5)
            )
            assert handle.accepted is not None and handle.accepted.recipients == [child.agent_id]
            message = inbox.get(timeout=30)
            assert message is not None and message.kind is _K.REQUEST and message.agent_id == child.agent_id
            assert isinstance(message.body, ev.AgentRequest) and message.body.subject == "summarise"
            assert message.from_agent_id == root.agent_id and message.deadline == handle.request.reply_by

            client.bus.reply(message, "three sources agree", {"sources": "3"})
            reply = handle.reply(timeout=30)
            assert (reply.text, reply.details, reply.from_agent_id) == (
                "three sources agree",
                {"sources": "3"},
                child.agent_id,
            )
            assert handle.done and list(handle.replies(timeout=0)) == [reply]
            with pytest.raises(MessageRefused, match="ALREADY_ANSWERED") as again:
                client.bus.reply(message, "and once more")
            assert again.value.reason is _R.ALREADY_ANSWERED
            inbox.ack(message)
            assert inbox.pending() == [] and inbox.get(timeout=0.5) is None


@pytest.mark.timeout(240)
def test_ask_returns_the_orchestrators_decision(settings: Settings, bus: Worker) -> None:
    with _client(settings) as client, ThreadPoolExecutor(1) as pool:
        root = client.start_root("orchestrator", 400_000, 20)
        child = root.spawn("coder", "build", 20_000)
        with client.bus.inbox([root]) as inbox:
            asked = pool.submit(
                client.bus.agent(child).ask, "ship or wait?", ["ship", "wait"], timedelta(minutes=5), timeout=60
            )
            question = inbox.get(timeout=60)
            assert question is not None and question.kind is _K.QUESTION, question
            assert isinstance(question.body, ev.AgentQuestion) and question.body.options == ["ship", "wait"]
            accepted = client.bus.decide(
                question, root.agent_id, "ship", "tests pass", "release today", {"risk": "low", "eta": "today"}
            )
            assert accepted.recipients == [child.agent_id] and accepted.in_reply_to == question.message_id
            decision = asked.result(60)
            assert isinstance(decision, ev.DecisionRecorded)
            assert (decision.decided_by, decision.choice, decision.rationale, decision.impact) == (
                root.agent_id,
                "ship",
                "tests pass",
                "release today",
            )
            assert decision.impact_details == {"risk": "low", "eta": "today"}


@pytest.mark.timeout(240)
def test_ask_raises_when_the_question_expires_at_the_root(settings: Settings, bus: Worker) -> None:
    with _client(settings) as client:
        root = client.start_root("orchestrator", 400_000, 20)
        child = root.spawn("researcher", "find", 40_000, 2)
        grandchild = child.spawn("researcher", "deeper", 5_000)
        with client.bus.inbox([root, child]) as inbox:
            with pytest.raises(QuestionExpired, match="expired undecided") as expired:
                client.bus.agent(grandchild).ask(
                    "which source?", ["a", "b"], decide_by=timedelta(seconds=2), timeout=90
                )
            fact = expired.value.expired
            assert fact.kind is _K.QUESTION and fact.escalations == 1 and fact.from_agent_id == grandchild.agent_id
            # the question reached the asker's parent, then the root one window later
            seen = {(m.agent_id, m.escalation) for m in inbox.pending() if m.message_id == fact.message_id}
            assert seen == {(child.agent_id, 0), (root.agent_id, 1)}
            with pytest.raises(MessageRefused, match="EXPIRED"):
                client.bus.decide(fact.message_id, root.agent_id, "a", root_id=root.root_id)


@pytest.mark.timeout(240)
def test_a_rejection_is_raised_with_its_reason(settings: Settings, bus: Worker) -> None:
    with _client(settings) as client:
        root = client.start_root("orchestrator", 400_000, 20)
        agent = client.bus.agent(root)
        with pytest.raises(MessageRefused, match=r"UNKNOWN_RECIPIENT.*'nobody' is not an agent") as refused:
            agent.request("nobody", "hello")
        assert refused.value.reason is _R.UNKNOWN_RECIPIENT and refused.value.rejection.kind is _K.REQUEST
        with pytest.raises(MessageRefused, match="UNKNOWN_MESSAGE"):
            agent.decide(ev.AgentQuestion(meta=client.meta(root.root_id), message_id=uuid.uuid4(), from_agent_id="x",
                                          question="?"), "yes")  # fmt: skip
        with pytest.raises(MessageRefused, match="NOT_AN_ACTIVE_AGENT"):
            client.bus.agent(root.root_id, "stranger").ask("may I?", decide_by=timedelta(minutes=1))
        assert agent.alert("all fine").broadcast  # the root itself is heard


@pytest.mark.timeout(240)
def test_the_inbox_is_in_priority_order_and_acknowledgements_outlive_the_client(
    settings: Settings, bus: Worker
) -> None:
    with _client(settings) as client:
        root = client.start_root("orchestrator", 400_000, 20)
        child = root.spawn("researcher", "find", 20_000)
        sender = client.bus.agent(root)
        sender.request(child.agent_id, "low", priority=_P.LOW)
        sender.request(child.agent_id, "normal 1")
        sender.alert("stop spending", priority=_P.CRITICAL)
        sender.request(child.agent_id, "high", priority=_P.HIGH)
        sender.handoff(child.agent_id, "normal 2: take over the review", {"branch": "main"})
        expected = [
            (_K.ALERT, "CRITICAL"),
            (_K.REQUEST, "HIGH"),
            (_K.REQUEST, "NORMAL"),
            (_K.HANDOFF, "NORMAL"),
            (_K.REQUEST, "LOW"),
        ]
        with client.bus.inbox([child]) as inbox:
            assert _ids(inbox.pending()) == expected
            given = list(inbox.messages(timeout=1))
            assert _ids(given) == expected
            assert isinstance(given[3].body, ev.Handoff) and given[3].body.context == {"branch": "main"}
            inbox.ack(*given[:2])
            assert _ids(inbox.pending()) == expected[2:]
        root_id, child_id = root.root_id, child.agent_id

    with _client(settings) as restarted, restarted.bus.inbox([(root_id, child_id)]) as inbox:
        left = inbox.pending()
        assert _ids(left) == expected[2:]
        assert [m.message_id for m in left] == [m.message_id for m in given[2:]]
        inbox.ack(left[0])
    with _client(settings) as again, again.bus.inbox([(root_id, child_id)]) as inbox:
        assert _ids(inbox.pending()) == expected[3:]


@pytest.mark.timeout(240)
def test_one_client_serves_agents_of_two_trees(settings: Settings, bus: Worker) -> None:
    with _client(settings) as client:
        one = client.start_root("orchestrator", 400_000, 20)
        a, a2 = one.spawn("researcher", "find", 20_000), one.spawn("coder", "build", 20_000)
        other = client.start_root("orchestrator", 400_000, 20)
        b = other.spawn("researcher", "find", 20_000)
        with client.bus.inbox([a, a2, b]) as inbox:
            assert inbox.wait_ready(60)
            request = client.bus.agent(one).request(a.agent_id, "for a")
            client.bus.agent(other).request(b.agent_id, "for b")
            client.bus.agent(one).alert("tree one only")
            heard = [inbox.get(timeout=30) for _ in range(4)]
            assert inbox.get(timeout=1) is None
            got = {(m.agent_id, m.kind) for m in heard if m is not None}
            assert got == {
                (a.agent_id, _K.ALERT),
                (a2.agent_id, _K.ALERT),
                (a.agent_id, _K.REQUEST),
                (b.agent_id, _K.REQUEST),
            }
            client.bus.agent(a).reply(next(m for m in heard if m is not None and m.agent_id == a.agent_id
                                           and m.kind is _K.REQUEST), "done")  # fmt: skip
            assert request.reply(timeout=30).text == "done"
            # a second inbox on the same consumer reads the tree's history again, for its own agents only
            with client.bus.inbox([one]) as late:
                assert [(m.kind, m.body.body) for m in late.pending()] == [(_K.REPLY, "done")]  # type: ignore[union-attr]
            assert inbox.get(timeout=1) is None  # nothing the first inbox had came twice


@pytest.mark.timeout(240)
def test_of_concurrent_decisions_only_one_is_accepted(settings: Settings, bus: Worker) -> None:
    with _client(settings) as client:
        root = client.start_root("orchestrator", 400_000, 20)
        child = root.spawn("researcher", "find", 40_000, 2)
        grandchild = child.spawn("researcher", "deeper", 5_000)
        for round_ in range(3):
            handle = client.bus.agent(grandchild).question(f"round {round_}: a or b?", ["a", "b"])
            assert handle.accepted is not None and handle.accepted.recipients == [child.agent_id]
            start = threading.Barrier(2)

            def decide(
                decider: str,
                choice: str,
                question: ev.AgentQuestion = handle.question,
                start: threading.Barrier = start,
            ) -> str:
                start.wait()
                try:
                    client.bus.decide(question, decider, choice)
                except MessageRefused as e:
                    assert e.reason is _R.ALREADY_ANSWERED, e
                    return "refused"
                return choice

            with ThreadPoolExecutor(2) as pool:
                outcomes = list(pool.map(decide, [child.agent_id, root.agent_id], ["a", "b"]))
            assert outcomes.count("refused") == 1, outcomes
            (winner,) = [o for o in outcomes if o != "refused"]
            decision = handle.decision(timeout=30)
            assert decision.choice == winner
            handle.close()


@pytest.mark.timeout(60)
def test_without_a_bus_worker_a_send_says_what_is_missing(settings: Settings) -> None:
    with AgentlogClient("acme", settings, timeout=2) as client:
        with pytest.raises(BusTimeout, match=r"--processor bus"):
            client.bus.alert("acme/nobody", "acme/nobody", "anyone there?")
        with client.bus.inbox(["acme/nobody"]) as inbox:  # an empty tree is read to its end at once
            assert inbox.pending(timeout=10) == []
