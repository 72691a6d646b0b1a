"""The consultation bus's pure core: ``decide(state, event, policy, at_us)`` over one partition's messages.

The bus reads two kinds of input: agents' messages (``agentlog.messages``) and the spawn
gate's facts (``agentlog.policy.decisions``: which agents a tree has, their parents and
configs, and when each ends). Every message gets exactly one answer, a ``MessageAccepted``
naming whom it is for, or a ``MessageRejected`` with a
:class:`~agentlog.events.MessageRejection` code and a sentence. In order, a message is
rejected when:

1. its tree is unknown (``UNKNOWN_TREE``) or of another tenant (``TENANT_MISMATCH``);
2. its sender is not an active agent of the tree (``NOT_AN_ACTIVE_AGENT``; a decision may
   also come from an operator the policy names);
3. its text is longer than the policy's ``bus_max_message_chars`` (``TOO_LARGE``);
4. its sender already sent ``bus_rate_per_agent`` messages in the current window of
   ``bus_rate_window_ms`` (``RATE_LIMITED``), counted in record time;
5. the rules of its kind refuse it:

=========  ==================================================================================
kind       accepted when, and for whom
=========  ==================================================================================
request    its recipient is an active agent of the tree and its id is new; for the recipient
reply      it answers an open request addressed to its sender, within the replies the request
           accepts (``max_replies``, 0: any number); for the request's sender
question   its recipient, if it names one, is an active agent; for the recipient, else the
           asker's nearest active ancestor (a root's question: the tree's operators)
decision   it decides an open question, once, from the question's recipient, an ancestor of
           the asker, an agent whose config may override decisions, or an operator; for the
           asker
alert      always (the sender is active); broadcast to the tree's active agents
handoff    its recipient is another active agent of the tree; for the recipient
=========  ==================================================================================

Since core version 2 the bus hands two things over, in the same transaction, as input records
of the processor that decides them: a CRITICAL alert under a policy with
``limits.freeze_on_critical_alert`` is followed by a ``TreeFreezeRequested`` on the gate's
lifecycle topic (the gate freezes the tree's spawning, :mod:`.freeze`), and a handoff naming a
mission by a ``MissionHandoffRequested`` on the missions topic (the mission processor moves it).

Timer ticks (:func:`expire`) close what passed its deadline: a request past its
``reply_by`` is reported expired to its sender (``MessageExpired``); a question past its
deadline is escalated to the current recipient's nearest active ancestor with a new
deadline one original window later (``QuestionEscalated``), and at the root it is reported
expired to its asker.

Deterministic like the other cores: "now" is the input record's append time (``at_us``;
a producer's ``occurred_at`` is never trusted for rates or deadlines), output ids derive
from the input's event id, and ticks take the due conversations in (deadline, tree, id)
order.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from agentlog import events as ev
from agentlog.limits import MAX_CHARS, quote
from agentlog.messages import KINDS, Message
from agentlog.messages import sender as message_sender
from agentlog.processors.bus_state import (
    ANSWERED,
    DECIDED,
    EXPIRED,
    SEPARATOR,
    BusAgent,
    BusPartition,
    BusTree,
    Conversation,
    agent_key,
    message_key,
    tree_keys,
)
from agentlog.processors.clock import to_micros
from agentlog.processors.emitter import Emitter
from agentlog.processors.policy import Policy

__all__ = [
    "CORE_VERSION",
    "HANDED_OVER",
    "HANDLED",
    "MAX_DUE_PER_TICK",
    "PRODUCER",
    "decide",
    "expire",
    "message_chars",
]

CORE_VERSION = 2
"""1 decides messages; 2 also hands a CRITICAL alert's freeze to the gate (``limits.freeze_on_critical_alert``)
and a handoff's mission to the mission processor, as input records on their topics (:data:`HANDED_OVER`)."""
PRODUCER = "agentlog.bus"
MAX_DUE_PER_TICK = 1_000
"""Deadlines one timer tick handles at most (one fact and one changelog record each); the rest wait for the next."""

_K = ev.MessageKind
_R = ev.MessageRejection
_DEFAULT_LIMITS = ev.Limits()


class _Run:
    """What deciding one message needs: its emitter, tree, limits, policy version and the changed keys."""

    def __init__(self, state: BusPartition, event: ev.Event, policy: Policy | None, at_us: int, core: int) -> None:
        self.state = state
        self.core = core
        self.event = event
        self.policy = policy
        self.limits = policy.limits if policy is not None else _DEFAULT_LIMITS
        self.version = policy.version if policy is not None else 0
        self.at_us = at_us
        self.tree = state.trees.get(event.meta.root_id)
        tenant = self.tree.tenant_id if self.tree is not None else event.meta.tenant_id
        meta = event.meta
        at = datetime.fromtimestamp(at_us / 1_000_000, UTC)
        self.out = Emitter(
            str(meta.event_id), at, tenant, meta.root_id, meta.event_id, meta.correlation_id, producer=PRODUCER
        )
        self.changed: set[str] = set()

    def accept(self, message: Message, kind: ev.MessageKind, sender: str, recipients: list[str], **fields: Any) -> None:
        self.out.emit(
            ev.MessageAccepted,
            message_id=message.message_id,
            kind=kind,
            from_agent_id=sender,
            recipients=recipients,
            priority=message.priority,
            policy_version=self.version,
            **fields,
        )

    def reject(
        self, message: Message, kind: ev.MessageKind, sender: str, reason: ev.MessageRejection, why: str
    ) -> None:
        self.out.emit(
            ev.MessageRejected,
            message_id=message.message_id,
            kind=kind,
            from_agent_id=quote(sender, MAX_CHARS["id"]),
            reason=reason,
            message=clip(why),
            policy_version=self.version,
        )


def decide(
    state: BusPartition, event: ev.Event, policy: Policy | None, at_us: int, core: int = CORE_VERSION
) -> tuple[list[ev.Event], set[str]]:
    """The facts ``event`` causes under ``policy`` at record time ``at_us`` (µs) and the state keys it changed;
    mutates ``state``. ``core``: the version of the core to decide as (:data:`CORE_VERSION`)."""
    fact = _FACTS.get(type(event))
    if fact is not None:
        return [], fact(state, event)
    handler = _MESSAGES.get(type(event))
    if handler is None:
        return [], set()
    run = _Run(state, event, policy, at_us, core)
    kind, sender = KINDS[type(event)], message_sender(event)  # type: ignore[arg-type]
    tree = _admit(run, event, kind, sender)  # type: ignore[arg-type]
    if tree is not None:
        handler(run, tree, event)
    return run.out.events, run.changed


def expire(state: BusPartition, now: datetime, policy: Policy | None) -> tuple[list[ev.Event], set[str]]:
    """A timer tick at ``now``: every request and question whose deadline passed, earliest first, is reported
    expired or escalated one level up; returns the facts and the changed keys. Mutates ``state``."""
    version = policy.version if policy is not None else 0
    now_us = to_micros(now)
    events: list[ev.Event] = []
    changed: set[str] = set()
    while state.deadlines and state.deadlines[0][0] <= now_us and len(events) < MAX_DUE_PER_TICK:
        entry = heapq.heappop(state.deadlines)
        found = state.still_due(entry)
        if found is None:
            continue
        tree, conversation = found
        deadline_us, root_id, message_id = entry
        out = Emitter(f"due:{root_id}{SEPARATOR}{message_id}@{deadline_us}", now, tree.tenant_id, root_id,
                      producer=PRODUCER)  # fmt: skip
        upper = (
            tree.nearest_active_ancestor(conversation.recipient)
            if conversation.question and conversation.recipient is not None
            else None
        )
        if upper is not None and conversation.recipient is not None:
            conversation.level += 1
            conversation.deadline_us = deadline_us + max(conversation.window_us, 1)
            out.emit(
                ev.QuestionEscalated,
                question_id=uuid.UUID(message_id),
                from_agent_id=conversation.sender,
                previous_recipient=conversation.recipient,
                to_agent_id=upper,
                level=conversation.level,
                decide_by=_time(conversation.deadline_us),
                message=clip(
                    f"Undecided by {_time(deadline_us).isoformat()}: escalated from {conversation.recipient!r} to"
                    f" {upper!r} (level {conversation.level})."
                ),
                policy_version=version,
            )
            conversation.recipient = upper
            state.due(root_id, message_id, conversation)
        else:
            conversation.status = EXPIRED
            what = "question" if conversation.question else "request"
            answered = "decided" if conversation.question else "answered"
            out.emit(
                ev.MessageExpired,
                message_id=uuid.UUID(message_id),
                kind=_K.QUESTION if conversation.question else _K.REQUEST,
                from_agent_id=conversation.sender,
                deadline=_time(deadline_us),
                escalations=conversation.level,
                replies=conversation.replies,
                message=clip(
                    f"The {what} was not {answered} by {_time(deadline_us).isoformat()}"
                    + (f" after {conversation.level} escalation(s)" if conversation.level else "")
                    + "."
                ),
                policy_version=version,
            )
        changed.add(message_key(root_id, message_id))
        events += out.events
    return events, changed


def message_chars(message: ev.Event) -> int:
    """The characters of text a message holds (what ``bus_max_message_chars`` bounds): every string of its payload
    but the envelope and the ids."""
    return sum(_chars(getattr(message, name)) for name in _TEXT_FIELDS.get(type(message), ()))


def clip(text: str) -> str:
    """A generated sentence within the contract's limit for text (it quotes inputs that may be that long)."""
    return quote(text, MAX_CHARS["text"])


# -- the gate's facts ---------------------------------------------------------------------


def _root_admitted(state: BusPartition, fact: ev.RootAdmitted) -> set[str]:
    root_id = fact.meta.root_id
    if root_id in state.trees:  # the answer to a retried registration
        return set()
    tree = BusTree(root_id, fact.meta.tenant_id)
    tree.agents[fact.agent_id] = BusAgent(None, fact.config)
    state.trees[root_id] = tree
    return {root_id, agent_key(root_id, fact.agent_id)}


def _spawn_approved(state: BusPartition, fact: ev.SpawnApproved) -> set[str]:
    tree = state.trees.get(fact.meta.root_id)
    if tree is None or fact.child_agent_id in tree.agents:
        return set()
    tree.agents[fact.child_agent_id] = BusAgent(fact.parent_agent_id, fact.child_config)
    return {agent_key(tree.root_id, fact.child_agent_id)}


def _agent_ended(state: BusPartition, fact: ev.AgentEnded | ev.AgentTerminated | ev.AgentTimedOut) -> set[str]:
    tree = state.trees.get(fact.meta.root_id)
    agent = tree.agents.get(fact.agent_id) if tree is not None else None
    if tree is None or agent is None or not agent.active:
        return set()
    agent.active = False
    return {agent_key(tree.root_id, fact.agent_id)}


def _tree_forgotten(state: BusPartition, fact: ev.TreeForgotten) -> set[str]:
    tree = state.trees.pop(fact.meta.root_id, None)
    return tree_keys(tree) if tree is not None else set()


# -- messages -----------------------------------------------------------------------------


def _admit(run: _Run, message: Message, kind: ev.MessageKind, sender: str) -> BusTree | None:
    """The message's tree if the rules every message follows let it through (else it is rejected)."""
    tree = run.tree
    if tree is None:
        run.reject(message, kind, sender, _R.UNKNOWN_TREE, f"No agent tree {message.meta.root_id!r} is known.")
        return None
    if message.meta.tenant_id != tree.tenant_id:
        run.reject(
            message,
            kind,
            sender,
            _R.TENANT_MISMATCH,
            f"The tree belongs to another tenant than {message.meta.tenant_id!r}.",
        )
        return None
    operator = kind is _K.DECISION and run.policy is not None and sender in run.policy.limits.operators
    agent = tree.agents.get(sender)
    if not operator and (agent is None or not agent.active):
        said = "has ended" if agent is not None else "is not an agent of the tree"
        run.reject(message, kind, sender, _R.NOT_AN_ACTIVE_AGENT, f"The sender {sender!r} {said}.")
        return None
    most = run.limits.bus_max_message_chars
    chars = message_chars(message)
    if 0 < most < chars:
        run.reject(
            message,
            kind,
            sender,
            _R.TOO_LARGE,
            f"The message holds {chars} characters of text; the policy allows {most}.",
        )
        return None
    if agent is not None and not _counted(run, tree, sender, agent):
        rate, window = run.limits.bus_rate_per_agent, run.limits.bus_rate_window_ms
        run.reject(
            message, kind, sender, _R.RATE_LIMITED, f"{sender!r} already sent {rate} messages within {window} ms."
        )
        return None
    return tree


def _counted(run: _Run, tree: BusTree, sender: str, agent: BusAgent) -> bool:
    """Count one message of ``sender`` in its rate window; False when the window is full."""
    rate = run.limits.bus_rate_per_agent
    if rate <= 0:
        return True
    if run.at_us >= agent.window_start_us + run.limits.bus_rate_window_ms * 1000:
        agent.window_start_us, agent.sent = run.at_us, 0
    if agent.sent >= rate:
        return False
    agent.sent += 1
    run.changed.add(agent_key(tree.root_id, sender))
    return True


def _recipient_problem(tree: BusTree, recipient: str) -> tuple[ev.MessageRejection, str] | None:
    agent = tree.agents.get(recipient)
    if agent is None:
        return _R.UNKNOWN_RECIPIENT, f"{recipient!r} is not an agent of the tree."
    if not agent.active:
        return _R.RECIPIENT_ENDED, f"{recipient!r} has ended."
    return None


def _new_conversation(run: _Run, tree: BusTree, message: Message, kind: ev.MessageKind, sender: str) -> bool:
    if str(message.message_id) in tree.conversations:
        run.reject(message, kind, sender, _R.DUPLICATE_MESSAGE, f"A message {message.message_id} was already accepted.")
        return False
    return True


def _open(run: _Run, tree: BusTree, message_id: uuid.UUID, conversation: Conversation) -> None:
    tree.conversations[str(message_id)] = conversation
    run.state.due(tree.root_id, str(message_id), conversation)
    run.changed.add(message_key(tree.root_id, str(message_id)))


def _request(run: _Run, tree: BusTree, request: ev.AgentRequest) -> None:
    sender = request.from_agent_id
    problem = _recipient_problem(tree, request.to_agent_id)
    if problem is not None:
        run.reject(request, _K.REQUEST, sender, *problem)
        return
    if request.max_replies < 0:
        run.reject(request, _K.REQUEST, sender, _R.INVALID_MESSAGE, f"max_replies is {request.max_replies}, below 0.")
        return
    if not _new_conversation(run, tree, request, _K.REQUEST, sender):
        return
    deadline = to_micros(request.reply_by) if request.reply_by is not None else None
    conversation = Conversation(
        False, sender, request.to_agent_id, deadline_us=deadline, max_replies=request.max_replies
    )
    _open(run, tree, request.message_id, conversation)
    run.accept(request, _K.REQUEST, sender, [request.to_agent_id], deadline=request.reply_by)


def _reply(run: _Run, tree: BusTree, reply: ev.AgentReply) -> None:
    sender = reply.from_agent_id
    request = _answered(run, tree, reply, reply.request_id, _K.REPLY, sender, question=False)
    if request is None:
        return
    if request.recipient != sender:
        run.reject(
            reply,
            _K.REPLY,
            sender,
            _R.NOT_ADDRESSED,
            f"The request {reply.request_id} was not addressed to {sender!r}.",
        )
        return
    problem = _recipient_problem(tree, request.sender)
    if problem is not None:
        run.reject(reply, _K.REPLY, sender, *problem)
        return
    request.replies += 1
    if request.max_replies and request.replies >= request.max_replies:
        request.status = ANSWERED
    run.changed.add(message_key(tree.root_id, str(reply.request_id)))
    run.accept(reply, _K.REPLY, sender, [request.sender], in_reply_to=reply.request_id)


def _question(run: _Run, tree: BusTree, question: ev.AgentQuestion) -> None:
    sender = question.from_agent_id
    recipient = question.to_agent_id
    if recipient is not None:
        problem = _recipient_problem(tree, recipient)
        if problem is not None:
            run.reject(question, _K.QUESTION, sender, *problem)
            return
    else:
        recipient = tree.nearest_active_ancestor(sender)
    if not _new_conversation(run, tree, question, _K.QUESTION, sender):
        return
    deadline = to_micros(question.decide_by) if question.decide_by is not None else None
    window = max(deadline - run.at_us, 0) if deadline is not None else 0
    _open(run, tree, question.message_id, Conversation(True, sender, recipient, deadline_us=deadline, window_us=window))
    recipients = [recipient] if recipient is not None else []
    run.accept(question, _K.QUESTION, sender, recipients, deadline=question.decide_by)


def _decision(run: _Run, tree: BusTree, decision: ev.DecisionRecorded) -> None:
    sender = decision.decided_by
    question = _answered(run, tree, decision, decision.question_id, _K.DECISION, sender, question=True)
    if question is None:
        return
    if not _may_decide(run, tree, question, sender):
        run.reject(
            decision,
            _K.DECISION,
            sender,
            _R.NOT_ALLOWED,
            f"{sender!r} may not decide the question {decision.question_id}: it is for"
            f" {question.recipient or 'the operators'!r}, and {sender!r} is neither an ancestor of the asker"
            f" {question.sender!r}, nor of a config that may override decisions, nor an operator.",
        )
        return
    question.status = DECIDED
    run.changed.add(message_key(tree.root_id, str(decision.question_id)))
    recipients = [question.sender] if tree.active(question.sender) else []
    run.accept(decision, _K.DECISION, sender, recipients, in_reply_to=decision.question_id)


def _alert(run: _Run, tree: BusTree, alert: ev.AgentAlert) -> None:
    run.accept(alert, _K.ALERT, alert.from_agent_id, [], broadcast=True)
    if run.core >= 2 and alert.priority is ev.Priority.CRITICAL and run.limits.freeze_on_critical_alert:
        run.out.emit(
            ev.TreeFreezeRequested,
            requested_by=PRODUCER,
            alert_id=alert.message_id,
            alerted_by=alert.from_agent_id,
            reason=clip(alert.text),
        )


def _handoff(run: _Run, tree: BusTree, handoff: ev.Handoff) -> None:
    sender = handoff.from_agent_id
    if handoff.to_agent_id == sender:
        run.reject(handoff, _K.HANDOFF, sender, _R.INVALID_MESSAGE, "An agent cannot hand a task off to itself.")
        return
    problem = _recipient_problem(tree, handoff.to_agent_id)
    if problem is not None:
        run.reject(handoff, _K.HANDOFF, sender, *problem)
        return
    run.accept(handoff, _K.HANDOFF, sender, [handoff.to_agent_id])
    if run.core >= 2 and handoff.mission_id is not None:
        run.out.emit(
            ev.MissionHandoffRequested,
            mission_id=handoff.mission_id,
            from_agent_id=sender,
            to_agent_id=handoff.to_agent_id,
            handoff_id=handoff.message_id,
        )


def _answered(
    run: _Run, tree: BusTree, answer: Message, to: uuid.UUID, kind: ev.MessageKind, sender: str, question: bool
) -> Conversation | None:
    """The open request or question ``answer`` answers (else it is rejected)."""
    what = "question" if question else "request"
    conversation = tree.conversations.get(str(to))
    if conversation is None or conversation.question is not question:
        run.reject(answer, kind, sender, _R.UNKNOWN_MESSAGE, f"No {what} {to} was accepted in this tree.")
        return None
    if conversation.status == EXPIRED:
        run.reject(answer, kind, sender, _R.EXPIRED, f"The {what} {to} has expired.")
        return None
    if not conversation.open:
        said = "decided" if question else "given all the replies it accepts"
        run.reject(answer, kind, sender, _R.ALREADY_ANSWERED, f"The {what} {to} was already {said}.")
        return None
    return conversation


def _may_decide(run: _Run, tree: BusTree, question: Conversation, sender: str) -> bool:
    if sender == question.recipient and tree.active(sender):
        return True
    if run.policy is not None and sender in run.policy.limits.operators:
        return True
    if not tree.active(sender):
        return False
    if sender in tree.line(question.sender):
        return True
    agent = tree.agents[sender]
    rule = run.policy.rule(agent.config) if run.policy is not None else None
    return rule is not None and rule.can_override_decisions


def _chars(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(k) + len(v) for k, v in value.items())
    if isinstance(value, ev.TaskSpec):
        return len(value.title) + len(value.description) + sum(len(c) for c in value.acceptance_criteria)
    if isinstance(value, Iterable):
        return sum(_chars(v) for v in value)
    return 0


def _time(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


_TEXT_FIELDS: dict[type[ev.Event], tuple[str, ...]] = {
    ev.AgentRequest: ("subject", "body"),
    ev.AgentReply: ("body", "details"),
    ev.AgentQuestion: ("question", "options"),
    ev.DecisionRecorded: ("choice", "rationale", "impact", "impact_details"),
    ev.AgentAlert: ("text",),
    ev.Handoff: ("task", "context"),
}
_MESSAGES: dict[type[ev.Event], Callable[[_Run, BusTree, Any], None]] = {
    ev.AgentRequest: _request,
    ev.AgentReply: _reply,
    ev.AgentQuestion: _question,
    ev.DecisionRecorded: _decision,
    ev.AgentAlert: _alert,
    ev.Handoff: _handoff,
}
_FACTS: dict[type[ev.Event], Callable[[BusPartition, Any], set[str]]] = {
    ev.RootAdmitted: _root_admitted,
    ev.SpawnApproved: _spawn_approved,
    ev.AgentEnded: _agent_ended,
    ev.AgentTerminated: _agent_ended,
    ev.AgentTimedOut: _agent_ended,
    ev.TreeForgotten: _tree_forgotten,
}
HANDLED: frozenset[type[ev.Event]] = frozenset(_MESSAGES) | frozenset(_FACTS)
HANDED_OVER: tuple[type[ev.Event], ...] = (ev.TreeFreezeRequested, ev.MissionHandoffRequested)
"""Outputs that are another processor's input, written to its topic in the bus's transaction (core 2)."""
