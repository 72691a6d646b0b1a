"""What the bus client hands out: the messages an inbox holds, replies, and the handles of requests and questions.

A :class:`RequestHandle` collects the replies to a request until it has all it takes or the
bus reports it expired; a :class:`QuestionHandle` records a question's escalations, then its
decision or its expiry. Both are fed on the follower's thread (:mod:`agentlog.bus_follower`).
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from agentlog import events as ev
from agentlog.bus_errors import BusTimeout, QuestionExpired, RequestExpired
from agentlog.messages import KINDS, MESSAGE_TYPES, Message, sender

if TYPE_CHECKING:
    from agentlog.bus_client import BusClient

__all__ = [
    "MESSAGE_TYPES",
    "PRIORITY_ORDER",
    "AgentRef",
    "AgentSpec",
    "Conversation",
    "InboxMessage",
    "Message",
    "QuestionHandle",
    "Reply",
    "RequestHandle",
]

_P = ev.Priority
PRIORITY_ORDER: dict[ev.Priority, int] = {_P.CRITICAL: 0, _P.HIGH: 1, _P.NORMAL: 2, _P.LOW: 3}
"""The rank of each priority in an inbox (lowest first)."""


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
        return KINDS[type(self.body)]

    @property
    def priority(self) -> ev.Priority:
        return self.body.priority

    @property
    def from_agent_id(self) -> str:
        return sender(self.body)

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


Conversation = RequestHandle | QuestionHandle
