"""The consultation bus's state for one partition: per agent tree, its agents and the open and closed messages.

A tree is known from the gate's ``RootAdmitted`` on; its agents are remembered with their
parent, their config and whether they are still active (the gate's facts say when one
ends), and with the sender's rate window. Requests and questions are remembered from the
moment they are accepted: open ones with their recipient and deadline, closed ones by how
they closed (answered, decided, expired), so that a late reply or a second decision is told
apart from one to a message that never existed. Everything of a tree is dropped when the
gate forgets it.

Changelog records are compact JSON, one per tree (its header, key ``root_id``), one per
agent (key ``root_id`` NUL ``a`` NUL ``agent_id``) and one per request or question (key
``root_id`` NUL ``m`` NUL ``message_id``), so a batch writes only what it changed and a tree
of any size stays within the broker's message limit.
"""

from __future__ import annotations

import heapq
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agentlog.processors.errors import SnapshotError

SEPARATOR = "\x00"
"""Between the parts of a changed key and a changelog key (no id holds it)."""
AGENT = "a"
MESSAGE = "m"

OPEN = "open"
ANSWERED = "answered"
"""A request that took all the replies it accepts."""
DECIDED = "decided"
EXPIRED = "expired"


@dataclass(slots=True)
class BusAgent:
    """One agent of a tree as the gate decided it, and its sending rate."""

    parent: str | None
    config: str
    active: bool = True
    window_start_us: int = 0
    """Start of its current rate window (record time)."""
    sent: int = 0
    """Messages counted in the current window."""

    def to_row(self) -> list[Any]:
        return [self.parent, self.config, self.active, self.window_start_us, self.sent]

    @classmethod
    def from_row(cls, row: list[Any]) -> BusAgent:
        parent, config, active, start, sent = row
        return cls(parent, sys.intern(str(config)), bool(active), int(start), int(sent))


@dataclass(slots=True)
class Conversation:
    """A request or a question, open or closed."""

    question: bool
    """A question (answered by one decision) or a request (answered by replies)."""
    sender: str
    recipient: str | None
    """Who must answer: a request's addressee, a question's decider (None: the tree's operators)."""
    status: str = OPEN
    deadline_us: int | None = None
    window_us: int = 0
    """For a question: its original window (``decide_by`` minus the time it was asked); each escalation adds it."""
    level: int = 0
    """For a question: escalations so far."""
    max_replies: int = 1
    """For a request: the replies it accepts (0: any number)."""
    replies: int = 0

    @property
    def open(self) -> bool:
        return self.status == OPEN

    def to_row(self) -> list[Any]:
        return [
            self.question,
            self.sender,
            self.recipient,
            self.status,
            self.deadline_us,
            self.window_us,
            self.level,
            self.max_replies,
            self.replies,
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> Conversation:
        question, sender, recipient, status, deadline, window, level, most, replies = row
        return cls(
            bool(question),
            str(sender),
            str(recipient) if recipient is not None else None,
            sys.intern(str(status)),
            int(deadline) if deadline is not None else None,
            int(window),
            int(level),
            int(most),
            int(replies),
        )


@dataclass(slots=True)
class BusTree:
    """The agents and conversations of one agent tree."""

    root_id: str
    tenant_id: str
    agents: dict[str, BusAgent] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)

    def active(self, agent_id: str) -> bool:
        """Whether ``agent_id`` is an active agent of the tree."""
        agent = self.agents.get(agent_id)
        return agent is not None and agent.active

    def line(self, agent_id: str) -> Iterator[str]:
        """The ancestors of ``agent_id``, nearest first (the root last)."""
        seen = 0
        agent = self.agents.get(agent_id)
        while agent is not None and agent.parent is not None and seen < len(self.agents):
            yield agent.parent
            agent = self.agents.get(agent.parent)
            seen += 1

    def nearest_active_ancestor(self, agent_id: str) -> str | None:
        return next((a for a in self.line(agent_id) if self.active(a)), None)

    def header(self) -> dict[str, Any]:
        return {"root": self.root_id, "tenant": self.tenant_id}


Deadline = tuple[int, str, str]
"""``(deadline_us, root_id, message_id)``: an entry of the deadline queue."""


@dataclass
class BusPartition:
    """Everything the bus knows about the trees of one partition."""

    partition: int = 0
    trees: dict[str, BusTree] = field(default_factory=dict)
    deadlines: list[Deadline] = field(default_factory=list)
    """A heap of the open conversations' deadlines. Entries of conversations that moved on since (answered,
    escalated, of a forgotten tree) are skipped when they come up; not kept in the changelog, rebuilt on restore."""
    _compacted: int = 0

    def due(self, root_id: str, message_id: str, conversation: Conversation) -> None:
        """Queue ``conversation``'s deadline, if it has one."""
        if conversation.deadline_us is None:
            return
        heapq.heappush(self.deadlines, (conversation.deadline_us, root_id, message_id))
        if len(self.deadlines) > 2 * self._compacted + 1024:
            self.rebuild_deadlines()

    def still_due(self, entry: Deadline) -> tuple[BusTree, Conversation] | None:
        """The tree and conversation an entry of :attr:`deadlines` names, if it is still open with that deadline."""
        deadline_us, root_id, message_id = entry
        tree = self.trees.get(root_id)
        conversation = tree.conversations.get(message_id) if tree is not None else None
        if tree is None or conversation is None or not conversation.open or conversation.deadline_us != deadline_us:
            return None
        return tree, conversation

    def rebuild_deadlines(self) -> None:
        """The deadline queue from the conversations themselves (on restore, and when stale entries pile up)."""
        self.deadlines = [
            (c.deadline_us, root_id, message_id)
            for root_id, tree in self.trees.items()
            for message_id, c in tree.conversations.items()
            if c.open and c.deadline_us is not None
        ]
        heapq.heapify(self.deadlines)
        self._compacted = len(self.deadlines)


def agent_key(root_id: str, agent_id: str) -> str:
    """The changed-state key (and changelog key) of one agent."""
    return f"{root_id}{SEPARATOR}{AGENT}{SEPARATOR}{agent_id}"


def message_key(root_id: str, message_id: str) -> str:
    """The changed-state key (and changelog key) of one request or question."""
    return f"{root_id}{SEPARATOR}{MESSAGE}{SEPARATOR}{message_id}"


def tree_keys(tree: BusTree) -> set[str]:
    """Every key a tree has in the changelog (its header, agents and conversations)."""
    keys = {tree.root_id}
    keys.update(agent_key(tree.root_id, a) for a in tree.agents)
    keys.update(message_key(tree.root_id, m) for m in tree.conversations)
    return keys


def records_of(state: BusPartition, changed: set[str]) -> list[tuple[bytes, bytes | None]]:
    """Changelog records for the ``changed`` keys (a tombstone for what is gone)."""
    records: list[tuple[bytes, bytes | None]] = []
    for key in sorted(changed):
        root_id, _, rest = key.partition(SEPARATOR)
        tree = state.trees.get(root_id)
        value: Any = None
        if not rest:
            value = tree.header() if tree is not None else None
        elif tree is not None:
            kind, _, item = rest.partition(SEPARATOR)
            found = tree.agents.get(item) if kind == AGENT else tree.conversations.get(item)
            value = found.to_row() if found is not None else None
        records.append((key.encode(), _json(value) if value is not None else None))
    return records


def restore(partition: int, records: Iterable[tuple[bytes, bytes | None]]) -> BusPartition:
    """The partition state changelog records (in offset order; the newest per key counts) describe."""
    state = BusPartition(partition=partition)
    latest = dict(records)
    items: list[tuple[str, str, str, list[Any]]] = []
    try:
        for key, value in latest.items():
            if value is None:
                continue
            root_id, _, rest = key.decode().partition(SEPARATOR)
            document = json.loads(value)
            if rest:
                kind, _, item = rest.partition(SEPARATOR)
                items.append((root_id, kind, item, document))
            else:
                state.trees[root_id] = BusTree(str(document["root"]), sys.intern(str(document["tenant"])))
        for root_id, kind, item, row in items:
            tree = state.trees.get(root_id)
            if tree is None:  # of a forgotten tree whose tombstone is still to come
                continue
            if kind == AGENT:
                tree.agents[item] = BusAgent.from_row(row)
            else:
                tree.conversations[item] = Conversation.from_row(row)
    except (KeyError, TypeError, ValueError) as e:
        raise SnapshotError(f"malformed bus changelog record: {e!r}") from e
    state.rebuild_deadlines()
    return state


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
