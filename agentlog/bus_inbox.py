"""An inbox: what the bus accepted for a set of agents, pending in priority order, then in the order accepted.

:meth:`Inbox.ack` publishes ``MessageAcknowledged``, which a restarted inbox reads back from
``agentlog.messages`` and skips.
"""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from agentlog.bus_errors import BusTimeout
from agentlog.bus_handles import AgentRef, AgentSpec, InboxMessage

if TYPE_CHECKING:
    from agentlog.bus_client import BusClient
    from agentlog.bus_follower import BusFollower, InboxView

__all__ = ["Inbox"]


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
        self._views: list[InboxView] = []
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
