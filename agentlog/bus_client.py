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

One consumer per client (:class:`BusFollower`) reads both topics' partitions of the trees it
serves; records of other trees are skipped by key without being decoded. An inbox reads its
trees from their first record (the topics keep everything) and is *ready* once it has read
to the ends they had when it started; waiters read from the end. Nothing is re-read per
message: each record is decoded once and handed to every view of its tree that needs it.
"""

from __future__ import annotations

import functools
import heapq
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.errors import AgentlogError
from agentlog.partitioning import partition_of
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import MESSAGE_EVENTS, MESSAGES
from agentlog.watermarks import watermarks

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

log = logging.getLogger(__name__)

Message = ev.AgentRequest | ev.AgentReply | ev.AgentQuestion | ev.DecisionRecorded | ev.AgentAlert | ev.Handoff
MESSAGE_TYPES: tuple[type[ev.Event], ...] = (
    ev.AgentRequest,
    ev.AgentReply,
    ev.AgentQuestion,
    ev.DecisionRecorded,
    ev.AgentAlert,
    ev.Handoff,
)
_P = ev.Priority
PRIORITY_ORDER: dict[ev.Priority, int] = {_P.CRITICAL: 0, _P.HIGH: 1, _P.NORMAL: 2, _P.LOW: 3}
"""The rank of each priority in an inbox (lowest first)."""
_M, _E = 0, 1
"""Index of the messages topic and of the bus's facts topic."""
_K = ev.MessageKind
FETCH_WAIT_MS = 100
"""Longest wait of an idle fetch: how soon an inbox learns it read its history to the end (a tree's last facts are
followed by transaction markers, which only an empty fetch passes), and how soon a seek back takes effect."""


# ---------------------------------------------------------------------------- errors


class MessageRefused(AgentlogError):
    """The bus rejected a message; ``rejection`` holds the reason code (``reason``) and the bus's sentence."""

    def __init__(self, rejection: ev.MessageRejected) -> None:
        self.rejection = rejection
        self.reason = rejection.reason
        what = rejection.kind.name.lower() if rejection.kind is not _K.UNKNOWN else "message"
        super().__init__(
            f"the bus rejected {what} {rejection.message_id} from {rejection.from_agent_id!r}"
            f" ({rejection.reason.name}): {rejection.message}"
        )


class RequestExpired(AgentlogError):
    """The bus reported a request past its ``reply_by``; ``expired`` holds the fact (with the replies it got)."""

    def __init__(self, expired: ev.MessageExpired) -> None:
        self.expired = expired
        super().__init__(f"request {expired.message_id} expired: {expired.message}")


class QuestionExpired(AgentlogError):
    """The bus reported a question undecided at the root (``expired`` holds the fact, with its escalations)."""

    def __init__(self, expired: ev.MessageExpired) -> None:
        self.expired = expired
        super().__init__(f"question {expired.message_id} expired undecided: {expired.message}")


class BusTimeout(AgentlogError):
    """No answer in time (is `agentlog processors run --processor bus` running?)."""


# ---------------------------------------------------------------------------- what is heard


class AgentRef(Protocol):
    """Anything that names an agent and its tree (an :class:`~agentlog.handles.AgentHandle`, say)."""

    @property
    def root_id(self) -> str: ...

    @property
    def agent_id(self) -> str: ...


AgentSpec = AgentRef | tuple[str, str] | str
"""An agent: a handle, a ``(root_id, agent_id)`` pair, or an agent id (of the tree ``root_id`` names, else a root)."""


@dataclass(frozen=True, eq=False)
class InboxMessage:
    """One message addressed to a served agent: the bus's fact and the message itself."""

    agent_id: str
    """The served agent it is for (a broadcast reaches each served agent of the tree but its sender)."""
    body: Message
    """The message as its sender published it."""
    fact: ev.MessageAccepted | ev.QuestionEscalated
    """Why it is here: the bus accepted it for this agent, or escalated a question to it."""
    partition: int
    offset: int
    """The fact's position on ``agentlog.message.events``."""
    appended_ms: int
    """When the broker appended the fact, in ms since the epoch."""

    @property
    def root_id(self) -> str:
        return self.body.meta.root_id

    @property
    def message_id(self) -> uuid.UUID:
        return self.body.message_id

    @property
    def kind(self) -> ev.MessageKind:
        return _KIND_OF[type(self.body)]

    @property
    def priority(self) -> ev.Priority:
        return self.body.priority

    @property
    def from_agent_id(self) -> str:
        return self.body.decided_by if isinstance(self.body, ev.DecisionRecorded) else self.body.from_agent_id

    @property
    def deadline(self) -> datetime | None:
        """By when it wants an answer (a question's current ``decide_by`` after an escalation)."""
        return self.fact.decide_by if isinstance(self.fact, ev.QuestionEscalated) else self.fact.deadline

    @property
    def escalation(self) -> int:
        """0, or the escalation level at which the question reached this agent."""
        return self.fact.level if isinstance(self.fact, ev.QuestionEscalated) else 0

    @property
    def key(self) -> tuple[str, uuid.UUID, str]:
        """``(root_id, message_id, agent_id)``: what an acknowledgement names."""
        return self.root_id, self.message_id, self.agent_id

    @property
    def order(self) -> tuple[int, int, int, int]:
        """Its place in an inbox: priority, then the fact's append time and position."""
        return PRIORITY_ORDER.get(self.priority, 2), self.appended_ms, self.partition, self.offset

    def __repr__(self) -> str:
        return f"InboxMessage({self.kind.name} {self.priority.name} {self.message_id} for {self.agent_id!r})"


@dataclass(frozen=True)
class Reply:
    """A reply the bus accepted for a request: the ``AgentReply`` and its acceptance."""

    body: ev.AgentReply
    fact: ev.MessageAccepted

    @property
    def from_agent_id(self) -> str:
        return self.body.from_agent_id

    @property
    def text(self) -> str:
        return self.body.body

    @property
    def details(self) -> dict[str, str]:
        return dict(self.body.details)


_KIND_OF: dict[type[ev.Event], ev.MessageKind] = {
    ev.AgentRequest: _K.REQUEST,
    ev.AgentReply: _K.REPLY,
    ev.AgentQuestion: _K.QUESTION,
    ev.DecisionRecorded: _K.DECISION,
    ev.AgentAlert: _K.ALERT,
    ev.Handoff: _K.HANDOFF,
}


# ---------------------------------------------------------------------------- handles


class RequestHandle:
    """A request the bus accepted, and the replies it gets (``max_replies``: how many it takes; 0: any number)."""

    def __init__(self, bus: BusClient, request: ev.AgentRequest) -> None:
        self.request = request
        self.accepted: ev.MessageAccepted | None = None
        """The bus's acceptance (set before the handle is returned)."""
        self.expired: ev.MessageExpired | None = None
        """The bus's report that ``reply_by`` passed, once it came."""
        self._bus = bus
        self._cond = threading.Condition()
        self._replies: list[Reply] = []
        self._closed = False

    @property
    def root_id(self) -> str:
        return self.request.meta.root_id

    @property
    def message_id(self) -> uuid.UUID:
        return self.request.message_id

    @property
    def done(self) -> bool:
        """No more replies will come: all it takes arrived, it expired, or the handle was closed."""
        most = self.request.max_replies
        return self._closed or self.expired is not None or (most > 0 and len(self._replies) >= most)

    def replies(self, timeout: float | None = None) -> Iterator[Reply]:
        """Every reply, as it arrives; ends when no more can come, or after ``timeout`` seconds without one."""
        seen = 0
        while True:
            with self._cond:
                if not self._cond.wait_for(functools.partial(self._beyond, seen), timeout):
                    return
                if len(self._replies) <= seen:
                    return
                reply = self._replies[seen]
            seen += 1
            yield reply

    def _beyond(self, seen: int) -> bool:
        return len(self._replies) > seen or self.done

    def reply(self, timeout: float | None = None) -> Reply:
        """The first reply; :class:`RequestExpired` if the request expired first, :class:`BusTimeout` if none came."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._replies) or self.done, timeout)
            if self._replies:
                return self._replies[0]
            if self.expired is not None:
                raise RequestExpired(self.expired)
        raise BusTimeout(f"no reply to request {self.message_id} within {timeout}s")

    def close(self) -> None:
        """Stop listening for replies."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._bus.forget(self.root_id, self.message_id)

    def __enter__(self) -> RequestHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answered(self, body: ev.AgentReply | ev.DecisionRecorded, fact: ev.MessageAccepted) -> bool:
        """A reply arrived (on the follower thread); whether the handle is done."""
        if not isinstance(body, ev.AgentReply):
            return False
        with self._cond:
            self._replies.append(Reply(body, fact))
            self._cond.notify_all()
            return self.done

    def _closed_by(self, fact: ev.MessageExpired | ev.QuestionEscalated) -> bool:
        if not isinstance(fact, ev.MessageExpired):
            return False
        with self._cond:
            self.expired = fact
            self._cond.notify_all()
        return True


class QuestionHandle:
    """A question the bus accepted: its escalations as they happen, then its decision or its expiry."""

    def __init__(self, bus: BusClient, question: ev.AgentQuestion) -> None:
        self.question = question
        self.accepted: ev.MessageAccepted | None = None
        """The bus's acceptance: ``recipients`` names who must decide (empty: the tree's operators)."""
        self.escalations: list[ev.QuestionEscalated] = []
        self.decided: ev.MessageAccepted | None = None
        """The acceptance of the decision, once one was accepted."""
        self.expired: ev.MessageExpired | None = None
        self._decision: ev.DecisionRecorded | None = None
        self._bus = bus
        self._cond = threading.Condition()

    @property
    def root_id(self) -> str:
        return self.question.meta.root_id

    @property
    def message_id(self) -> uuid.UUID:
        return self.question.message_id

    def decision(self, timeout: float | None = None) -> ev.DecisionRecorded:
        """Wait for the accepted decision; :class:`QuestionExpired` when the bus reports the question expired,
        :class:`BusTimeout` after ``timeout`` seconds (None: as long as it takes)."""
        with self._cond:
            self._cond.wait_for(lambda: self._decision is not None or self.expired is not None, timeout)
            if self._decision is not None:
                return self._decision
            if self.expired is not None:
                raise QuestionExpired(self.expired)
        raise BusTimeout(f"question {self.message_id} was not decided within {timeout}s")

    def close(self) -> None:
        """Stop listening for the decision."""
        self._bus.forget(self.root_id, self.message_id)

    def __enter__(self) -> QuestionHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answered(self, body: ev.AgentReply | ev.DecisionRecorded, fact: ev.MessageAccepted) -> bool:
        if not isinstance(body, ev.DecisionRecorded):
            return False
        with self._cond:
            self._decision, self.decided = body, fact
            self._cond.notify_all()
        return True

    def _closed_by(self, fact: ev.MessageExpired | ev.QuestionEscalated) -> bool:
        with self._cond:
            if isinstance(fact, ev.QuestionEscalated):
                self.escalations.append(fact)
                return False
            self.expired = fact
            self._cond.notify_all()
        return True


_Conversation = RequestHandle | QuestionHandle


# ---------------------------------------------------------------------------- views of a tree


class _View:
    """What one reader of a tree needs from its records (called on the follower thread, in offset order per topic)."""

    def __init__(self, root_id: str, partition: int, start: tuple[int, int]) -> None:
        self.root_id = root_id
        self.partition = partition
        self.next = list(start)
        """Per topic, the offset after the last record handed to this view (records below it are skipped)."""

    def body(self, event: ev.Event) -> None:
        """A record of ``agentlog.messages``."""

    def fact(self, event: ev.Event, offset: int, appended_ms: int) -> None:
        """A record of ``agentlog.message.events``."""


@dataclass
class _Answer:
    done: threading.Event
    fact: ev.Event | None = None


class _Waiters(_View):
    """The sends of one tree waiting for the bus's answer, and the requests and questions waiting for theirs."""

    def __init__(self, root_id: str, partition: int, start: tuple[int, int]) -> None:
        super().__init__(root_id, partition, start)
        self._lock = threading.Lock()
        self._answers: dict[uuid.UUID, _Answer] = {}
        self._conversations: dict[uuid.UUID, _Conversation] = {}
        self._bodies: dict[uuid.UUID, tuple[uuid.UUID, ev.AgentReply | ev.DecisionRecorded]] = {}
        """Replies and decisions to open conversations whose fact has not been read yet, by event id."""
        self._parked: dict[uuid.UUID, tuple[uuid.UUID, ev.MessageAccepted]] = {}
        """Accepted replies and decisions whose body has not been read yet, by the body's event id."""

    def expect(self, event_id: uuid.UUID) -> _Answer:
        answer = _Answer(threading.Event())
        with self._lock:
            self._answers[event_id] = answer
        return answer

    def unexpect(self, event_id: uuid.UUID) -> None:
        with self._lock:
            self._answers.pop(event_id, None)

    def open(self, conversation: _Conversation) -> None:
        with self._lock:
            self._conversations[conversation.message_id] = conversation

    def close(self, message_id: uuid.UUID) -> None:
        with self._lock:
            if self._conversations.pop(message_id, None) is None:
                return
            self._bodies = {k: v for k, v in self._bodies.items() if v[0] != message_id}
            self._parked = {k: v for k, v in self._parked.items() if v[0] != message_id}

    def body(self, event: ev.Event) -> None:
        if isinstance(event, ev.AgentReply):
            about = event.request_id
        elif isinstance(event, ev.DecisionRecorded):
            about = event.question_id
        else:
            return
        with self._lock:
            conversation = self._conversations.get(about)
            if conversation is None:
                return
            parked = self._parked.pop(event.meta.event_id, None)
            if parked is None:
                self._bodies[event.meta.event_id] = (about, event)
                return
        if conversation._answered(event, parked[1]):
            self.close(about)

    def fact(self, event: ev.Event, offset: int, appended_ms: int) -> None:
        cause = event.meta.causation_id
        conversation: _Conversation | None = None
        body: ev.AgentReply | ev.DecisionRecorded | None = None
        with self._lock:
            answer = self._answers.get(cause) if cause is not None else None
            if isinstance(event, ev.MessageAccepted) and event.in_reply_to is not None and cause is not None:
                conversation = self._conversations.get(event.in_reply_to)
                if conversation is not None:
                    found = self._bodies.pop(cause, None)
                    if found is None:
                        self._parked[cause] = (event.in_reply_to, event)
                        conversation = None
                    else:
                        body = found[1]
            elif isinstance(event, ev.MessageRejected) and cause is not None:
                self._bodies.pop(cause, None)
            elif isinstance(event, ev.MessageExpired):
                conversation = self._conversations.get(event.message_id)
            elif isinstance(event, ev.QuestionEscalated):
                conversation = self._conversations.get(event.question_id)
        if answer is not None and not answer.done.is_set():
            answer.fact = event
            answer.done.set()
        if conversation is None:
            return
        if isinstance(event, ev.MessageAccepted):
            assert body is not None
            finished = conversation._answered(body, event)
        else:
            assert isinstance(event, ev.MessageExpired | ev.QuestionEscalated)
            finished = conversation._closed_by(event)
        if finished:
            self.close(conversation.message_id)


class _InboxView(_View):
    """An inbox's reading of one tree for some of its agents: bodies joined to their facts, acknowledgements."""

    def __init__(
        self, inbox: Inbox, root_id: str, agents: frozenset[str], partition: int, start: tuple[int, int],
        end: tuple[int, int],
    ) -> None:  # fmt: skip
        super().__init__(root_id, partition, start)
        self.inbox = inbox
        self.agents = agents
        self.end = end
        """Per topic, where the history ends that must be read before the inbox is ready."""
        self.ready = False
        self._bodies: dict[uuid.UUID, Message] = {}
        """Messages whose fact has not been read yet, by event id."""
        self._parked: dict[uuid.UUID, tuple[ev.MessageAccepted, int, int]] = {}
        """Accepted messages whose body has not been read yet, by the body's event id."""
        self._questions: dict[uuid.UUID, ev.AgentQuestion] = {}
        """Open questions of the tree (an escalation may bring one to a served agent)."""
        self._escalations: dict[uuid.UUID, list[tuple[ev.QuestionEscalated, int, int]]] = {}
        """Escalations of questions whose body has not been read yet."""
        self._acked: set[tuple[uuid.UUID, str]] = set()
        self._settled: set[uuid.UUID] = set()
        """Event ids of messages whose fact came first and concerns no served agent (their body is dropped)."""

    def body(self, event: ev.Event) -> None:
        if isinstance(event, ev.MessageAcknowledged):
            if event.agent_id in self.agents:
                self._acked.add((event.message_id, event.agent_id))
                self.inbox._acked((self.root_id, event.message_id, event.agent_id))
            return
        if not isinstance(event, MESSAGE_TYPES):
            return
        if event.meta.event_id in self._settled:
            self._settled.discard(event.meta.event_id)
            return
        parked = self._parked.pop(event.meta.event_id, None)
        if parked is None:
            self._bodies[event.meta.event_id] = event  # type: ignore[assignment]
        else:
            self._accepted(event, *parked)  # type: ignore[arg-type]

    def fact(self, event: ev.Event, offset: int, appended_ms: int) -> None:
        cause = event.meta.causation_id
        if isinstance(event, ev.MessageAccepted) and cause is not None:
            if event.kind is _K.DECISION and event.in_reply_to is not None:
                self._questions.pop(event.in_reply_to, None)
                self._escalations.pop(event.in_reply_to, None)
            body = self._bodies.pop(cause, None)
            if body is not None:
                self._accepted(body, event, offset, appended_ms)
            elif event.kind is _K.QUESTION or self._targets(event):
                self._parked[cause] = (event, offset, appended_ms)
            else:
                self._settled.add(cause)
        elif isinstance(event, ev.MessageRejected) and cause is not None:
            if self._bodies.pop(cause, None) is None:
                self._settled.add(cause)
        elif isinstance(event, ev.QuestionEscalated):
            if event.to_agent_id not in self.agents:
                return
            question = self._questions.get(event.question_id)
            if question is None:
                self._escalations.setdefault(event.question_id, []).append((event, offset, appended_ms))
            else:
                self._deliver(question, event, event.to_agent_id, offset, appended_ms)
        elif isinstance(event, ev.MessageExpired) and event.kind is _K.QUESTION:
            self._questions.pop(event.message_id, None)
            self._escalations.pop(event.message_id, None)

    def _targets(self, fact: ev.MessageAccepted) -> list[str]:
        if fact.broadcast:
            return sorted(a for a in self.agents if a != fact.from_agent_id)
        return [r for r in fact.recipients if r in self.agents]

    def _accepted(self, body: Message, fact: ev.MessageAccepted, offset: int, appended_ms: int) -> None:
        if isinstance(body, ev.AgentQuestion):
            self._questions[body.message_id] = body
            for escalated, at, ms in self._escalations.pop(body.message_id, []):
                self._deliver(body, escalated, escalated.to_agent_id, at, ms)
        for agent in self._targets(fact):
            self._deliver(body, fact, agent, offset, appended_ms)

    def _deliver(
        self, body: Message, fact: ev.MessageAccepted | ev.QuestionEscalated, agent: str, offset: int, ms: int
    ) -> None:
        if (body.message_id, agent) not in self._acked:
            self.inbox._arrived(InboxMessage(agent, body, fact, self.partition, offset, ms))


@dataclass
class _Tree:
    root_id: str
    partition: int
    views: list[_View]


# ---------------------------------------------------------------------------- the consumer


class BusFollower:
    """One consumer, on one thread, of the messages and the bus's facts of the trees a client serves.

    Views are attached on the follower thread: it assigns a tree's partition of both topics
    from the view's start, or seeks back to it when it reads further already (views that had
    those records skip them, by offset). Records are routed by key, decoded once, and handed
    to the views of their tree in offset order.
    """

    def __init__(self, settings: Settings, serde: Serde) -> None:
        self.topics = (settings.topic_prefix + MESSAGES.name, settings.topic_prefix + MESSAGE_EVENTS.name)
        self._serde = serde
        self._consumer = Consumer(
            {
                **kafka_config.reader(settings),
                "enable.partition.eof": True,  # an inbox is ready at its partitions' ends ...
                "fetch.wait.max.ms": FETCH_WAIT_MS,  # ... which an idle fetch reports after this long
            }
        )
        self._lookup = Consumer(kafka_config.reader(settings))
        """Asks for watermarks (a consumer busy in consume() on the follower thread answers no other thread)."""
        self._lookup_lock = threading.Lock()
        counts = []
        for topic in self.topics:
            metadata = self._lookup.list_topics(topic, timeout=10).topics[topic]
            if metadata.error is not None:
                raise AgentlogError(f"topic {topic} is not available: {metadata.error.str()}")
            counts.append(len(metadata.partitions))
        if counts[0] != counts[1]:
            raise AgentlogError(f"{self.topics[0]} has {counts[0]} partitions but {self.topics[1]} has {counts[1]}")
        self.partitions = counts[0]
        self._lock = threading.Lock()
        self._waiters: dict[str, _Waiters] = {}
        self._attaching = threading.Lock()
        # the follower thread's own state
        self._trees: dict[bytes, _Tree] = {}
        self._live: set[int] = set()
        self._pos: dict[tuple[int, int], int] = {}
        """Per (topic index, partition) the offset the consumer reads from next."""
        self._scanning: list[_InboxView] = []
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentlog-bus", daemon=True)
        self._thread.start()

    def partition(self, root_id: str) -> int:
        return partition_of(root_id, self.partitions)

    def waiters(self, root_id: str) -> _Waiters:
        """The waiters of tree ``root_id``, reading it from now on (attached at the first call)."""
        with self._lock:
            found = self._waiters.get(root_id)
        if found is not None:
            return found
        with self._attaching:
            with self._lock:
                found = self._waiters.get(root_id)
            if found is not None:
                return found
            partition = self.partition(root_id)
            view = _Waiters(root_id, partition, self._bounds(partition)[1])
            self._on_follower(lambda: self._attach(view, from_now=True))
            with self._lock:
                self._waiters[root_id] = view
            return view

    def open_inbox(self, inbox: Inbox, root_id: str, agents: frozenset[str]) -> _InboxView:
        """A view of tree ``root_id`` for ``agents`` of ``inbox``, reading the tree's history first."""
        partition = self.partition(root_id)
        start, end = self._bounds(partition)
        view = _InboxView(inbox, root_id, agents, partition, start, end)
        self._on_follower(lambda: self._attach(view))
        return view

    def close_view(self, view: _View) -> None:
        def detach() -> None:
            tree = self._trees.get(view.root_id.encode())
            if tree is not None and view in tree.views:
                tree.views.remove(view)
                if not tree.views:
                    del self._trees[view.root_id.encode()]
            if view in self._scanning:
                self._scanning.remove(view)

        if not self._stop.is_set():
            self._on_follower(detach)

    def _bounds(self, partition: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Low and high watermarks of the partition on both topics; the facts' first, so that every fact below its
        end has its message below the messages' end."""
        with self._lookup_lock:
            facts = watermarks(self._lookup, self.topics[_E], partition)
            messages = watermarks(self._lookup, self.topics[_M], partition)
        return (messages[0], facts[0]), (messages[1], facts[1])

    # ------------------------------------------------------------------ the follower thread

    def _attach(self, view: _View, *, from_now: bool = False) -> None:
        key = view.root_id.encode()
        tree = self._trees.setdefault(key, _Tree(view.root_id, view.partition, []))
        partition = view.partition
        if partition not in self._live:
            self._consumer.incremental_assign(
                [TopicPartition(self.topics[t], partition, view.next[t]) for t in (_M, _E)]
            )
            self._live.add(partition)
            for t in (_M, _E):
                self._pos[(t, partition)] = view.next[t]
        elif from_now:
            view.next = [self._pos[(t, partition)] for t in (_M, _E)]
        else:
            for t in (_M, _E):
                if view.next[t] < self._pos[(t, partition)]:
                    self._seek(t, partition, view.next[t])
        tree.views.append(view)
        if isinstance(view, _InboxView):
            self._scanning.append(view)
            self._check_ready()

    def _seek(self, t: int, partition: int, offset: int) -> None:
        tp = TopicPartition(self.topics[t], partition, offset)
        try:
            self._consumer.seek(tp)
        except KafkaException:  # a partition assigned a moment ago cannot seek yet: assign it again
            self._consumer.incremental_unassign([TopicPartition(self.topics[t], partition)])
            self._consumer.incremental_assign([tp])
        self._pos[(t, partition)] = offset

    def _check_ready(self) -> None:
        for view in list(self._scanning):
            p = view.partition
            if self._pos[(_M, p)] >= view.end[_M] and self._pos[(_E, p)] >= view.end[_E]:
                self._scanning.remove(view)
                view.ready = True
                view.inbox._view_ready()

    def _on_follower(self, command: Callable[[], None], timeout: float = 30.0) -> None:
        """Run ``command`` on the follower thread between two reads (the consumer is not shared across threads)."""
        done = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                command()
            except BaseException as e:  # re-raised in the caller's thread
                failure.append(e)
            finally:
                done.set()

        self._commands.put(run)
        if not done.wait(timeout):
            raise AgentlogError(f"the client's follower of the bus did not answer within {timeout:g}s")
        if failure:
            raise AgentlogError(f"following the bus: {failure[0]}") from failure[0]

    def _run(self) -> None:
        while not self._stop.is_set():
            while not self._commands.empty():
                self._commands.get()()
            try:
                first = self._consumer.poll(0.02)
                messages = [] if first is None else [first, *self._consumer.consume(999, 0)]
            except KafkaException as e:  # a closing consumer, or a broker problem it retries itself
                log.debug("consume: %s", e)
                continue
            for msg in messages:
                t = _M if msg.topic() == self.topics[_M] else _E
                partition, offset = msg.partition() or 0, msg.offset() or 0
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        self._pos[(t, partition)] = offset
                    else:
                        log.debug("bus: %s", error.str())
                    continue
                self._pos[(t, partition)] = offset + 1
                self._route(t, msg.key(), msg.value(), offset, msg.timestamp()[1])
            if self._scanning and messages:
                self._check_ready()

    def _route(self, t: int, key: bytes | None, value: bytes | None, offset: int, appended_ms: int) -> None:
        tree = self._trees.get(key) if key is not None else None
        if tree is None:
            return
        views = [v for v in tree.views if offset >= v.next[t]]
        if not views:
            return
        for view in views:
            view.next[t] = offset + 1
        try:
            event = self._serde.decode(value or b"")
        except Exception:  # a record this client cannot read is nobody's message: keep following
            return
        for view in views:
            try:
                if t == _M:
                    view.body(event)
                else:
                    view.fact(event, offset, appended_ms)
            except Exception:  # one view's failure must not stop the others
                log.exception("bus view of %s failed", tree.root_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
        self._lookup.close()


# ---------------------------------------------------------------------------- the inbox


class Inbox:
    """What is addressed to some agents: pending messages in priority order, then in the order accepted.

    Made by :meth:`BusClient.inbox`. It reads the history of its agents' trees first (acknowledged
    messages are skipped) and is :attr:`ready` once it reached the ends they had; :meth:`get` and
    :meth:`pending` wait for that. Each message is handed out by :meth:`get` once per inbox; one
    not acknowledged is shown again by the next inbox (a restarted runtime's).
    """

    def __init__(self, bus: BusClient) -> None:
        self._bus = bus
        self._cond = threading.Condition()
        self._pending: dict[tuple[str, uuid.UUID, str], InboxMessage] = {}
        self._heap: list[tuple[tuple[int, int, int, int], tuple[str, uuid.UUID, str]]] = []
        self._given: set[tuple[str, uuid.UUID, str]] = set()
        self._views: list[_InboxView] = []
        self._served: dict[str, set[str]] = {}
        self._follower: BusFollower | None = None
        self._closed = False

    @property
    def agents(self) -> list[tuple[str, str]]:
        """The served agents, as ``(root_id, agent_id)``."""
        return sorted((root, agent) for root, agents in self._served.items() for agent in agents)

    def add(self, agents: Iterable[AgentSpec] | AgentRef | str, *, root_id: str | None = None) -> None:
        """Serve more agents too (their trees' history is read; the inbox is not ready until it is)."""
        wanted: dict[str, set[str]] = {}
        for root, agent in _agents(agents, root_id):
            if agent not in self._served.get(root, set()):
                wanted.setdefault(root, set()).add(agent)
        follower = self._follower = self._follower or self._bus.follower()
        for root, new in wanted.items():
            view = follower.open_inbox(self, root, frozenset(new))
            with self._cond:
                self._views.append(view)
                self._served.setdefault(root, set()).update(new)
                self._cond.notify_all()

    @property
    def ready(self) -> bool:
        """Whether the history of every served tree has been read."""
        return all(view.ready for view in self._views)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until :attr:`ready` (True) or ``timeout`` passes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.ready, timeout)

    def pending(self, agent_id: str | None = None, *, timeout: float | None = 60.0) -> list[InboxMessage]:
        """Every message not acknowledged (of ``agent_id`` only, if given), in inbox order; waits up to ``timeout``
        for the history to be read (:class:`BusTimeout` if it is not)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.ready, timeout):
                raise BusTimeout(f"the inbox did not finish reading its history within {timeout}s")
            found = [m for m in self._pending.values() if agent_id is None or m.agent_id == agent_id]
        return sorted(found, key=lambda m: m.order)

    def get(self, timeout: float | None = None) -> InboxMessage | None:
        """The first pending message not handed out yet, waiting up to ``timeout`` seconds (None: none came)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                if self.ready:
                    while self._heap:
                        _, key = heapq.heappop(self._heap)
                        message = self._pending.get(key)
                        if message is not None and key not in self._given:
                            self._given.add(key)
                            return message
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
        return None

    def messages(self, timeout: float | None = None) -> Iterator[InboxMessage]:
        """Messages as :meth:`get` hands them out; ends after ``timeout`` seconds without one."""
        while (message := self.get(timeout)) is not None:
            yield message

    def __iter__(self) -> Iterator[InboxMessage]:
        return self.messages()

    def ack(self, *messages: InboxMessage) -> None:
        """Acknowledge messages (one batch): they leave this inbox, and every later one skips them."""
        with self._cond:
            for message in messages:
                self._pending.pop(message.key, None)
        self._bus.ack(*messages)

    def close(self) -> None:
        """Stop reading for these agents."""
        with self._cond:
            self._closed = True
            views, self._views = self._views, []
            self._cond.notify_all()
        if self._follower is not None:
            for view in views:
                self._follower.close_view(view)

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # called on the follower thread

    def _arrived(self, message: InboxMessage) -> None:
        with self._cond:
            key = message.key
            if key in self._pending or key in self._given:
                return
            self._pending[key] = message
            heapq.heappush(self._heap, (message.order, key))
            self._cond.notify_all()

    def _acked(self, key: tuple[str, uuid.UUID, str]) -> None:
        with self._cond:
            self._pending.pop(key, None)

    def _view_ready(self) -> None:
        with self._cond:
            self._cond.notify_all()


def _agents(agents: Iterable[AgentSpec] | AgentRef | str, root_id: str | None) -> list[tuple[str, str]]:
    """``(root_id, agent_id)`` of each agent named."""
    many: list[AgentSpec]
    if isinstance(agents, str):
        many = [agents]
    elif isinstance(agents, Iterable):
        many = list(agents)
    else:
        many = [agents]
    out: list[tuple[str, str]] = []
    for agent in many:
        if isinstance(agent, str):
            out.append((root_id or agent, agent))
        elif isinstance(agent, tuple):
            out.append((agent[0], agent[1]))
        else:
            out.append((agent.root_id, agent.agent_id))
    return out


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

    def _converse(self, handle: _Conversation, message: Message, timeout: float | None) -> ev.MessageAccepted:
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
