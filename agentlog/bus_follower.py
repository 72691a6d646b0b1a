"""The bus client's one consumer of ``agentlog.messages`` and ``agentlog.message.events``, and its views of a tree.

One consumer per client (:class:`BusFollower`) reads both topics' partitions of the trees it
serves; records of other trees are skipped by key without being decoded. An inbox reads its
trees from their first record (the topics keep everything) and is *ready* once it has read
to the ends they had when it started; waiters read from the end. Nothing is re-read per
message: each record is decoded once and handed to every view of its tree that needs it.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.bus_handles import MESSAGE_TYPES, Conversation, InboxMessage, Message
from agentlog.errors import AgentlogError
from agentlog.facts import next_reads, run_on_follower
from agentlog.partitioning import partition_of
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import MESSAGE_EVENTS, MESSAGES
from agentlog.watermarks import watermarks

if TYPE_CHECKING:
    from agentlog.bus_inbox import Inbox

__all__ = ["FETCH_WAIT_MS", "BusFollower", "InboxView"]

log = logging.getLogger(__name__)

_M, _E = 0, 1
"""Index of the messages topic and of the bus's facts topic."""
_K = ev.MessageKind
FETCH_WAIT_MS = 100
"""Longest wait of an idle fetch: how soon an inbox learns it read its history to the end (a tree's last facts are
followed by transaction markers, which only an empty fetch passes), and how soon a seek back takes effect."""


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
        self._conversations: dict[uuid.UUID, Conversation] = {}
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

    def open(self, conversation: Conversation) -> None:
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
        conversation: Conversation | None = None
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


class InboxView(_View):
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
        self._scanning: list[InboxView] = []
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

    def open_inbox(self, inbox: Inbox, root_id: str, agents: frozenset[str]) -> InboxView:
        """A view of tree ``root_id`` for ``agents`` of ``inbox``, reading the tree's history first."""
        partition = self.partition(root_id)
        start, end = self._bounds(partition)
        view = InboxView(inbox, root_id, agents, partition, start, end)
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
        if isinstance(view, InboxView):
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
        run_on_follower(self._commands, command, timeout, "the bus")

    def _run(self) -> None:
        while not self._stop.is_set():
            messages = next_reads(self._consumer, self._commands)
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
