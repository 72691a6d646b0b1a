"""The consultation bus's pure core: every acceptance and rejection rule, replies, decisions, escalation, restore."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentlog import events as ev
from agentlog.processors.bus_core import MAX_DUE_PER_TICK, PRODUCER, message_chars
from agentlog.processors.bus_state import OPEN
from tests.bus_scenarios import ROOT, Bus, accepted, bus_policy, rejected

_R = ev.MessageRejection
_K = ev.MessageKind
MINUTE = timedelta(minutes=1)


@pytest.fixture
def bus() -> Bus:
    """root → lead → dev; root → qa; root → audit (a config that may override decisions)."""
    bus = Bus()
    bus.spawn("lead")
    bus.spawn("dev", parent="lead")
    bus.spawn("qa")
    bus.spawn("audit", config="auditor")
    return bus


def test_a_request_is_for_its_recipient_and_a_reply_for_its_sender(bus: Bus) -> None:
    request_id, outputs = bus.request("dev", "qa", priority=ev.Priority.HIGH)
    fact = accepted(outputs)
    assert (fact.kind, fact.recipients, fact.priority, fact.policy_version) == (_K.REQUEST, ["qa"], ev.Priority.HIGH, 1)
    assert fact.meta.causation_id == bus.inputs[-1][0].meta.event_id
    assert fact.meta.occurred_at == bus.now  # the record's time, not the producer's
    reply = accepted(bus.reply("qa", request_id))
    assert (reply.kind, reply.recipients, reply.in_reply_to) == (_K.REPLY, ["dev"], request_id)
    assert rejected(bus.reply("qa", request_id)) is _R.ALREADY_ANSWERED


def test_a_request_may_accept_several_replies(bus: Bus) -> None:
    request_id, _ = bus.request("lead", "qa", max_replies=2)
    accepted(bus.reply("qa", request_id))
    accepted(bus.reply("qa", request_id))
    assert rejected(bus.reply("qa", request_id)) is _R.ALREADY_ANSWERED
    any_id, _ = bus.request("lead", "dev", max_replies=0)
    for _ in range(3):
        accepted(bus.reply("dev", any_id))
    assert rejected(bus.request("lead", "dev", max_replies=-1)[1]) is _R.INVALID_MESSAGE


def test_replies_must_answer_a_request_addressed_to_the_replier(bus: Bus) -> None:
    request_id, _ = bus.request("dev", "qa")
    assert rejected(bus.reply("lead", request_id)) is _R.NOT_ADDRESSED
    assert rejected(bus.reply("qa", bus.message_id())) is _R.UNKNOWN_MESSAGE
    question_id, _ = bus.ask("dev")
    assert rejected(bus.reply("lead", question_id)) is _R.UNKNOWN_MESSAGE  # a question is answered by a decision


def test_senders_and_recipients_must_be_active_agents_of_the_tree(bus: Bus) -> None:
    assert rejected(bus.request("stranger", "qa")[1]) is _R.NOT_AN_ACTIVE_AGENT
    assert rejected(bus.request("dev", "nobody")[1]) is _R.UNKNOWN_RECIPIENT
    request_id, _ = bus.request("qa", "dev")
    bus.end("dev")
    assert rejected(bus.request("qa", "dev")[1]) is _R.RECIPIENT_ENDED
    assert rejected(bus.request("dev", "qa")[1]) is _R.NOT_AN_ACTIVE_AGENT
    assert rejected(bus.reply("dev", request_id)) is _R.NOT_AN_ACTIVE_AGENT
    assert rejected(bus.handoff("qa", "dev")) is _R.RECIPIENT_ENDED
    assert rejected(bus.handoff("qa", "nobody")) is _R.UNKNOWN_RECIPIENT


def test_messages_of_an_unknown_tree_or_another_tenant_are_rejected_naming_nothing_of_it(bus: Bus) -> None:
    other = Bus(root="acme/other")
    other.state = bus.state  # the same partition, a tree the gate never admitted
    other.state.trees.pop("acme/other", None)
    assert rejected(other.request("dev", "qa")[1]) is _R.UNKNOWN_TREE
    _, outputs = bus.request("dev", "qa", tenant="globex")
    assert rejected(outputs) is _R.TENANT_MISMATCH
    assert isinstance(outputs[0], ev.MessageRejected)
    assert "qa" not in outputs[0].message and "acme" not in outputs[0].message
    assert outputs[0].meta.tenant_id == "acme"  # the fact is the tree's


def test_a_duplicate_message_id_is_rejected(bus: Bus) -> None:
    request_id, _ = bus.request("dev", "qa")
    assert rejected(bus.request("dev", "qa", message_id=request_id)[1]) is _R.DUPLICATE_MESSAGE


def test_a_message_over_the_size_limit_is_rejected(bus: Bus) -> None:
    assert rejected(bus.request("dev", "qa", body="x" * 2_000)[1]) is _R.TOO_LARGE
    accepted(bus.request("dev", "qa", body="x" * 1_000)[1])
    handoff = ev.Handoff(meta=bus.meta(), message_id=bus.message_id(), from_agent_id="dev", to_agent_id="qa",
                         task=ev.TaskSpec(title="t", description="d" * 10), context={"k": "v" * 5})  # fmt: skip
    assert message_chars(handoff) == 1 + 10 + 1 + 5


def test_a_flooding_agent_is_rate_limited_in_record_time(bus: Bus) -> None:
    for _ in range(5):
        accepted(bus.alert("dev"))
    assert rejected(bus.alert("dev")) is _R.RATE_LIMITED
    assert rejected(bus.request("dev", "qa")[1]) is _R.RATE_LIMITED
    accepted(bus.alert("qa"))  # per agent
    bus.now += MINUTE
    accepted(bus.alert("dev"))  # a new window


def test_no_rate_limit_when_the_policy_sets_none() -> None:
    bus = Bus(policy=bus_policy(bus_rate_per_agent=0))
    bus.spawn("dev")
    for _ in range(50):
        accepted(bus.alert("dev"))


def test_an_alert_is_broadcast(bus: Bus) -> None:
    fact = accepted(bus.alert("dev", priority=ev.Priority.CRITICAL))
    assert (fact.kind, fact.broadcast, fact.recipients, fact.priority) == (_K.ALERT, True, [], ev.Priority.CRITICAL)


def test_a_handoff_goes_to_another_active_agent(bus: Bus) -> None:
    fact = accepted(bus.handoff("dev", "qa"))
    assert (fact.kind, fact.recipients) == (_K.HANDOFF, ["qa"])
    assert rejected(bus.handoff("dev", "dev")) is _R.INVALID_MESSAGE


def test_a_question_without_recipient_goes_to_the_askers_parent(bus: Bus) -> None:
    _, outputs = bus.ask("dev")
    assert accepted(outputs).recipients == ["lead"]
    bus.end("lead")
    _, outputs = bus.ask("dev")
    assert accepted(outputs).recipients == [ROOT]  # the nearest active ancestor
    _, outputs = bus.ask(ROOT)
    assert accepted(outputs).recipients == []  # the root's: the tree's operators
    assert rejected(bus.ask("dev", to="nobody")[1]) is _R.UNKNOWN_RECIPIENT


def test_a_decision_is_accepted_once_for_an_open_question(bus: Bus) -> None:
    question_id, _ = bus.ask("dev", options=["left", "right"])
    fact = accepted(bus.decide("lead", question_id, rationale="shorter", impact_details={"scope": "-15%"}))
    assert (fact.kind, fact.recipients, fact.in_reply_to) == (_K.DECISION, ["dev"], question_id)
    assert fact.from_agent_id == "lead"
    assert rejected(bus.decide(ROOT, question_id, "right")) is _R.ALREADY_ANSWERED
    assert rejected(bus.decide("lead", bus.message_id())) is _R.UNKNOWN_MESSAGE


@pytest.mark.parametrize(
    ("decider", "allowed"),
    [("lead", True), (ROOT, True), ("audit", True), ("operator", True), ("qa", False), ("dev", False), ("x", False)],
)
def test_who_may_decide_a_question(bus: Bus, decider: str, allowed: bool) -> None:
    """The recipient, an ancestor of the asker, a config that may override decisions, an operator; no one else."""
    question_id, _ = bus.ask("dev")
    outputs = bus.decide(decider, question_id)
    if allowed:
        accepted(outputs)
    else:
        assert rejected(outputs) in (_R.NOT_ALLOWED, _R.NOT_AN_ACTIVE_AGENT)


def test_a_recipient_outside_the_askers_line_may_decide(bus: Bus) -> None:
    question_id, _ = bus.ask("dev", to="qa")
    accepted(bus.decide("qa", question_id))


def test_an_expired_request_is_reported_to_its_sender(bus: Bus) -> None:
    due = bus.now + MINUTE
    request_id, _ = bus.request("dev", "qa", reply_by=due)
    assert bus.tick(due - timedelta(microseconds=1)) == []
    (fact,) = bus.tick(due)
    assert isinstance(fact, ev.MessageExpired)
    assert (fact.message_id, fact.kind, fact.from_agent_id, fact.replies) == (request_id, _K.REQUEST, "dev", 0)
    assert fact.meta.causation_id is None
    assert rejected(bus.reply("qa", request_id)) is _R.EXPIRED
    assert bus.tick(bus.now + 10 * MINUTE) == []


def test_an_undecided_question_escalates_up_the_line_then_expires_at_the_root(bus: Bus) -> None:
    asked = bus.now + timedelta(seconds=1)  # the record time ``ask`` gives it
    question_id, _ = bus.ask("dev", decide_by=asked + MINUTE)
    (first,) = bus.tick(asked + MINUTE)
    assert isinstance(first, ev.QuestionEscalated)
    assert (first.previous_recipient, first.to_agent_id, first.level) == ("lead", ROOT, 1)
    assert first.decide_by == asked + 2 * MINUTE  # one original window later
    assert rejected(bus.decide("qa", question_id)) is _R.NOT_ALLOWED
    (expired,) = bus.tick(asked + 2 * MINUTE)
    assert isinstance(expired, ev.MessageExpired)
    assert (expired.kind, expired.from_agent_id, expired.escalations) == (_K.QUESTION, "dev", 1)
    assert rejected(bus.decide(ROOT, question_id)) is _R.EXPIRED


def test_an_escalated_question_may_be_decided_by_its_new_recipient(bus: Bus) -> None:
    asked = bus.now + timedelta(seconds=1)
    question_id, _ = bus.ask("dev", to="qa", decide_by=asked + MINUTE)
    (first,) = bus.tick(asked + MINUTE)
    assert isinstance(first, ev.QuestionEscalated) and first.to_agent_id == ROOT
    accepted(bus.decide(ROOT, question_id))
    assert bus.tick(asked + 10 * MINUTE) == []


def test_a_tick_handles_a_bounded_number_of_deadlines() -> None:
    bus = Bus(policy=bus_policy(bus_rate_per_agent=0))
    bus.spawn("dev")
    due = bus.now + timedelta(days=1)
    for _ in range(MAX_DUE_PER_TICK + 5):
        bus.request(ROOT, "dev", reply_by=due, step=timedelta(0))
    assert len(bus.tick(due)) == MAX_DUE_PER_TICK
    assert len(bus.tick(due)) == 5


def test_a_forgotten_tree_is_dropped_with_every_record(bus: Bus) -> None:
    bus.request("dev", "qa", reply_by=bus.now + MINUTE)
    bus.fact(ev.TreeForgotten, ended_at=bus.now)
    assert ROOT not in bus.state.trees
    assert bus.restored().trees == {}
    assert bus.tick(bus.now + 10 * MINUTE) == []


def test_the_restored_state_decides_like_the_live_one(bus: Bus) -> None:
    asked = bus.now + timedelta(seconds=1)
    question_id, _ = bus.ask("dev", decide_by=asked + MINUTE)
    request_id, _ = bus.request("lead", "qa", max_replies=2)
    bus.reply("qa", request_id)
    for _ in range(3):
        bus.alert("dev")
    restored = bus.restored()
    assert restored.trees == bus.state.trees
    assert sorted(restored.deadlines) == sorted(e for e in bus.state.deadlines if bus.state.still_due(e))
    conversation = restored.trees[ROOT].conversations[str(question_id)]
    assert (conversation.status, conversation.recipient, conversation.window_us) == (OPEN, "lead", 60_000_000)


# -- what the bus hands over to the gate and the mission processor (core 2) ------------------------


def test_a_critical_alert_asks_the_gate_to_freeze_the_tree_when_the_policy_says_so() -> None:
    bus = Bus(policy=bus_policy(freeze_on_critical_alert=True))
    bus.spawn("dev")
    fact, freeze = bus.alert("dev", text="credentials leaked", priority=ev.Priority.CRITICAL)
    assert isinstance(fact, ev.MessageAccepted) and fact.broadcast
    assert isinstance(freeze, ev.TreeFreezeRequested)
    assert (freeze.requested_by, freeze.alert_id, freeze.alerted_by) == (PRODUCER, fact.message_id, "dev")
    assert freeze.reason == "credentials leaked" and freeze.meta.causation_id == fact.meta.causation_id
    assert freeze.meta.producer == PRODUCER and freeze.meta.root_id == ROOT
    accepted(bus.alert("dev", priority=ev.Priority.HIGH))  # only CRITICAL alerts freeze
    bus.core = 1
    accepted(bus.alert("dev", priority=ev.Priority.CRITICAL))  # core 1 handed nothing over


def test_a_critical_alert_freezes_nothing_by_default(bus: Bus) -> None:
    accepted(bus.alert("dev", priority=ev.Priority.CRITICAL))


def test_a_handoff_naming_a_mission_asks_the_mission_processor_to_move_it(bus: Bus) -> None:
    fact, move = bus.handoff("dev", "qa", mission_id="build")
    assert isinstance(fact, ev.MessageAccepted) and isinstance(move, ev.MissionHandoffRequested)
    assert (move.mission_id, move.from_agent_id, move.to_agent_id, move.handoff_id) == ("build", "dev", "qa",
                                                                                         fact.message_id)  # fmt: skip
    assert rejected(bus.handoff("dev", "nobody", mission_id="build")) is _R.UNKNOWN_RECIPIENT  # nothing handed over
    bus.core = 1
    accepted(bus.handoff("dev", "qa", mission_id="build"))
