"""The consultation bus from an agent runtime: messages sent and answered, questions decided, and inboxes.

``client.bus`` publishes agents' messages on ``agentlog.messages`` and hears the bus
processor's facts on ``agentlog.message.events``. Every send waits for the bus's answer
(its ``causation_id`` names the message's event): the ``MessageAccepted``, with the
resolved recipients, is returned; a ``MessageRejected`` is raised as
:class:`MessageRefused`, which names the reason code and carries the bus's sentence.

- :meth:`BusClient.request` returns a :class:`RequestHandle` that waits for the replies
  (:class:`RequestExpired` once the bus reports the request past its ``reply_by``);
- :meth:`BusClient.ask` blocks until the question is decided and returns the accepted
  ``DecisionRecorded``, or raises :class:`QuestionExpired` when the bus reports it expired
  at the root (after its escalations); :meth:`BusClient.question` gives the handle instead;
- :meth:`BusClient.reply`, :meth:`~BusClient.decide`, :meth:`~BusClient.alert` and
  :meth:`~BusClient.handoff` return the acceptance;
- :meth:`BusClient.inbox` reads what is addressed to a set of agents: the accepted facts
  whose recipients name one of them (or that are broadcast in its tree, or escalate a
  question to it), joined with the message bodies by the fact's ``causation_id``. Pending
  messages come in priority order (CRITICAL, HIGH, NORMAL, LOW), then in the order the bus
  accepted them; :meth:`Inbox.ack` publishes ``MessageAcknowledged``, which a restarted
  inbox reads back from ``agentlog.messages`` and skips.

The pieces live beside it, and are re-exported here: :mod:`agentlog.bus_errors`,
:mod:`agentlog.bus_handles` (messages, replies, handles), :mod:`agentlog.bus_follower`
(the client's one consumer) and :mod:`agentlog.bus_inbox`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from agentlog import events as ev
from agentlog.bus_errors import BusTimeout, MessageRefused, QuestionExpired, RequestExpired
from agentlog.bus_follower import BusFollower
from agentlog.bus_handles import (
    PRIORITY_ORDER,
    AgentRef,
    AgentSpec,
    Conversation,
    InboxMessage,
    Message,
    QuestionHandle,
    Reply,
    RequestHandle,
)
from agentlog.bus_inbox import Inbox
from agentlog.errors import AgentlogError

if TYPE_CHECKING:
    from agentlog.client import AgentlogClient

__all__ = [
    "PRIORITY_ORDER",
    "AgentBus",
    "AgentRef",
    "BusClient",
    "BusFollower",
    "BusTimeout",
    "Inbox",
    "InboxMessage",
    "MessageRefused",
    "QuestionExpired",
    "QuestionHandle",
    "Reply",
    "RequestExpired",
    "RequestHandle",
]

_P = ev.Priority


def _deadline(value: datetime | timedelta | None) -> datetime | None:
    if isinstance(value, timedelta):
        return datetime.now(UTC) + value
    return value


# ---------------------------------------------------------------------------- the client


class BusClient:
    """The consultation bus for one client's tenant (``client.bus``).

    Sends wait up to ``timeout`` (default: the client's) for the bus's answer and raise
    :class:`BusTimeout` without one; a send is never repeated (a message id is accepted once).
    """

    def __init__(self, client: AgentlogClient) -> None:
        self._client = client
        self._follower: BusFollower | None = None
        self._lock = threading.Lock()
        self._batch_lock = threading.Lock()

    def follower(self) -> BusFollower:
        """The client's one consumer of the bus (made at the first need)."""
        with self._lock:
            if self._follower is None:
                self._follower = BusFollower(self._client.settings, self._client._serde)
            return self._follower

    def agent(self, agent: AgentRef | str, agent_id: str | None = None) -> AgentBus:
        """The bus as one agent uses it: ``agent`` is its handle, or its tree's root id with ``agent_id``."""
        if isinstance(agent, str):
            return AgentBus(self, agent, agent_id or agent)
        return AgentBus(self, agent.root_id, agent.agent_id)

    # ------------------------------------------------------------------ sending

    def request(
        self,
        root_id: str,
        from_agent_id: str,
        to_agent_id: str,
        subject: str,
        body: str = "",
        *,
        priority: ev.Priority = _P.NORMAL,
        reply_by: datetime | timedelta | None = None,
        max_replies: int = 1,
        timeout: float | None = None,
    ) -> RequestHandle:
        """Ask ``to_agent_id`` for something; a handle that waits for its replies (:class:`MessageRefused` if the
        bus rejects it). ``reply_by`` (a time, or from now) makes the bus report it expired after that."""
        request = ev.AgentRequest(
            meta=self._client.meta(root_id),
            message_id=uuid.uuid4(),
            from_agent_id=from_agent_id,
            to_agent_id=to_agent_id,
            priority=priority,
            subject=subject,
            body=body,
            reply_by=_deadline(reply_by),
            max_replies=max_replies,
        )
        handle = RequestHandle(self, request)
        handle.accepted = self._converse(handle, request, timeout)
        return handle

    def reply(
        self,
        request: InboxMessage | ev.AgentRequest,
        body: str = "",
        details: Mapping[str, str] | None = None,
        *,
        from_agent_id: str | None = None,
        priority: ev.Priority = _P.NORMAL,
        timeout: float | None = None,
    ) -> ev.MessageAccepted:
        """Answer a request (from its recipient, unless ``from_agent_id`` says otherwise)."""
        message = request.body if isinstance(request, InboxMessage) else request
        if not isinstance(message, ev.AgentRequest):
            raise AgentlogError(f"only a request can be replied to, not a {type(message).__name__}")
        sender = from_agent_id or (request.agent_id if isinstance(request, InboxMessage) else message.to_agent_id)
        return self.send(
            ev.AgentReply(
                meta=self._client.meta(message.meta.root_id),
                message_id=uuid.uuid4(),
                request_id=message.message_id,
                from_agent_id=sender,
                priority=priority,
                body=body,
                details=dict(details or {}),
            ),
            timeout,
        )

    def question(
        self,
        root_id: str,
        from_agent_id: str,
        question: str,
        options: Iterable[str] = (),
        decide_by: datetime | timedelta | None = None,
        to: str | None = None,
        *,
        priority: ev.Priority = _P.NORMAL,
        timeout: float | None = None,
    ) -> QuestionHandle:
        """Ask a question that needs a decision (of ``to``, else the asker's parent); its handle."""
        message = ev.AgentQuestion(
            meta=self._client.meta(root_id),
            message_id=uuid.uuid4(),
            from_agent_id=from_agent_id,
            to_agent_id=to,
            priority=priority,
            question=question,
            options=list(options),
            decide_by=_deadline(decide_by),
        )
        handle = QuestionHandle(self, message)
        handle.accepted = self._converse(handle, message, timeout)
        return handle

    def ask(
        self,
        root_id: str,
        from_agent_id: str,
        question: str,
        options: Iterable[str] = (),
        decide_by: datetime | timedelta | None = None,
        to: str | None = None,
        *,
        priority: ev.Priority = _P.NORMAL,
        timeout: float | None = None,
    ) -> ev.DecisionRecorded:
        """Ask a question and block until it is decided: the accepted ``DecisionRecorded``.

        Raises :class:`MessageRefused` if the bus rejects the question, :class:`QuestionExpired`
        when it reports it expired at the root (past ``decide_by`` at every level), and
        :class:`BusTimeout` after ``timeout`` seconds (None: as long as that takes).
        """
        with self.question(root_id, from_agent_id, question, options, decide_by, to, priority=priority) as handle:
            return handle.decision(timeout)

    def decide(
        self,
        question: InboxMessage | ev.AgentQuestion | uuid.UUID,
        decided_by: str,
        choice: str,
        rationale: str = "",
        impact: str = "",
        impact_details: Mapping[str, str] | None = None,
        *,
        root_id: str | None = None,
        priority: ev.Priority = _P.NORMAL,
        timeout: float | None = None,
    ) -> ev.MessageAccepted:
        """Record the decision of a question (a question id needs its ``root_id``); :class:`MessageRefused` with
        ``ALREADY_ANSWERED`` when another decision was accepted first, ``NOT_ALLOWED`` when ``decided_by`` may not."""
        if isinstance(question, uuid.UUID):
            if root_id is None:
                raise AgentlogError("decide() by question id needs the question's root_id")
            question_id, root = question, root_id
        else:
            body = question.body if isinstance(question, InboxMessage) else question
            question_id, root = body.message_id, body.meta.root_id
        return self.send(
            ev.DecisionRecorded(
                meta=self._client.meta(root),
                message_id=uuid.uuid4(),
                question_id=question_id,
                decided_by=decided_by,
                priority=priority,
                choice=choice,
                rationale=rationale,
                impact=impact,
                impact_details=dict(impact_details or {}),
            ),
            timeout,
        )

    def alert(
        self,
        root_id: str,
        from_agent_id: str,
        text: str,
        *,
        priority: ev.Priority = _P.HIGH,
        timeout: float | None = None,
    ) -> ev.MessageAccepted:
        """Broadcast an alert to the tree's active agents."""
        return self.send(
            ev.AgentAlert(
                meta=self._client.meta(root_id),
                message_id=uuid.uuid4(),
                from_agent_id=from_agent_id,
                priority=priority,
                text=text,
            ),
            timeout,
        )

    def handoff(
        self,
        root_id: str,
        from_agent_id: str,
        to_agent_id: str,
        task: ev.TaskSpec | str,
        context: Mapping[str, str] | None = None,
        *,
        priority: ev.Priority = _P.NORMAL,
        timeout: float | None = None,
    ) -> ev.MessageAccepted:
        """Hand a task, with its context, to another active agent of the tree."""
        return self.send(
            ev.Handoff(
                meta=self._client.meta(root_id),
                message_id=uuid.uuid4(),
                from_agent_id=from_agent_id,
                to_agent_id=to_agent_id,
                priority=priority,
                task=ev.TaskSpec(title=task) if isinstance(task, str) else task,
                context=dict(context or {}),
            ),
            timeout,
        )

    def send(self, message: Message, timeout: float | None = None) -> ev.MessageAccepted:
        """Publish any message and return the bus's acceptance (:class:`MessageRefused` on a rejection)."""
        waiters = self.follower().waiters(message.meta.root_id)
        answer = waiters.expect(message.meta.event_id)
        try:
            self._client._producer.publish(message)
            wait = self._client.timeout if timeout is None else timeout
            if not answer.done.wait(wait):
                raise BusTimeout(
                    f"no answer from the bus to {type(message).__name__} {message.message_id} within {wait:g}s;"
                    " is `agentlog processors run --processor bus` running?"
                )
        finally:
            waiters.unexpect(message.meta.event_id)
        if isinstance(answer.fact, ev.MessageRejected):
            raise MessageRefused(answer.fact)
        assert isinstance(answer.fact, ev.MessageAccepted), answer.fact
        return answer.fact

    def _converse(self, handle: Conversation, message: Message, timeout: float | None) -> ev.MessageAccepted:
        """Send a request or a question whose answers ``handle`` hears (listening before it is published)."""
        waiters = self.follower().waiters(message.meta.root_id)
        waiters.open(handle)
        try:
            return self.send(message, timeout)
        except BaseException:
            waiters.close(message.message_id)
            raise

    def forget(self, root_id: str, message_id: uuid.UUID) -> None:
        """Stop listening for the answers to a request or a question."""
        with self._lock:
            follower = self._follower
        if follower is not None:
            follower.waiters(root_id).close(message_id)

    # ------------------------------------------------------------------ reading

    def inbox(self, agents: Iterable[AgentSpec] | AgentRef | str, *, root_id: str | None = None) -> Inbox:
        """An inbox of ``agents`` (handles, ``(root_id, agent_id)`` pairs, or agent ids of tree ``root_id``, else
        roots), read with the client's one consumer; use ``with``, or :meth:`Inbox.close`."""
        inbox = Inbox(self)
        inbox.add(agents, root_id=root_id)
        return inbox

    def ack(self, *messages: InboxMessage) -> None:
        """Publish a ``MessageAcknowledged`` for each message, in one batch: a restarted inbox skips them."""
        if not messages:
            return
        acks = [
            ev.MessageAcknowledged(meta=self._client.meta(m.root_id), message_id=m.message_id, agent_id=m.agent_id)
            for m in messages
        ]
        with self._batch_lock:  # the producer's batches are for one thread at a time
            self._client._producer.publish_many(acks)

    def close(self) -> None:
        """Stop following the bus (the client's ``close`` does it)."""
        with self._lock:
            follower, self._follower = self._follower, None
        if follower is not None:
            follower.close()


class AgentBus:
    """The bus as one agent uses it (``client.bus.agent(handle)``): its tree and its id filled in."""

    def __init__(self, bus: BusClient, root_id: str, agent_id: str) -> None:
        self.bus = bus
        self.root_id = root_id
        self.agent_id = agent_id

    def request(
        self,
        to: str,
        subject: str,
        body: str = "",
        *,
        priority: ev.Priority = _P.NORMAL,
        reply_by: datetime | timedelta | None = None,
        max_replies: int = 1,
        timeout: float | None = None,
    ) -> RequestHandle:
        """See :meth:`BusClient.request`."""
        return self.bus.request(self.root_id, self.agent_id, to, subject, body, priority=priority,
                                reply_by=reply_by, max_replies=max_replies, timeout=timeout)  # fmt: skip

    def ask(
        self,
        question: str,
        options: Iterable[str] = (),
        decide_by: datetime | timedelta | None = None,
        to: str | None = None,
        *,
        priority: ev.Priority = _P.NORMAL,
        timeout: float | None = None,
    ) -> ev.DecisionRecorded:
        """See :meth:`BusClient.ask`."""
        return self.bus.ask(self.root_id, self.agent_id, question, options, decide_by, to, priority=priority,
                            timeout=timeout)  # fmt: skip

    def question(
        self,
        question: str,
        options: Iterable[str] = (),
        decide_by: datetime | timedelta | None = None,
        to: str | None = None,
        *,
        priority: ev.Priority = _P.NORMAL,
    ) -> QuestionHandle:
        """See :meth:`BusClient.question`."""
        return self.bus.question(self.root_id, self.agent_id, question, options, decide_by, to, priority=priority)

    def reply(
        self, request: InboxMessage | ev.AgentRequest, body: str = "", details: Mapping[str, str] | None = None
    ) -> ev.MessageAccepted:
        """See :meth:`BusClient.reply`."""
        return self.bus.reply(request, body, details, from_agent_id=self.agent_id)

    def decide(
        self,
        question: InboxMessage | ev.AgentQuestion | uuid.UUID,
        choice: str,
        rationale: str = "",
        impact: str = "",
        impact_details: Mapping[str, str] | None = None,
    ) -> ev.MessageAccepted:
        """See :meth:`BusClient.decide`."""
        return self.bus.decide(question, self.agent_id, choice, rationale, impact, impact_details,
                               root_id=self.root_id)  # fmt: skip

    def alert(self, text: str, *, priority: ev.Priority = _P.HIGH) -> ev.MessageAccepted:
        """See :meth:`BusClient.alert`."""
        return self.bus.alert(self.root_id, self.agent_id, text, priority=priority)

    def handoff(self, to: str, task: ev.TaskSpec | str, context: Mapping[str, str] | None = None) -> ev.MessageAccepted:
        """See :meth:`BusClient.handoff`."""
        return self.bus.handoff(self.root_id, self.agent_id, to, task, context)

    def inbox(self) -> Inbox:
        """This agent's inbox."""
        return self.bus.inbox([(self.root_id, self.agent_id)])
