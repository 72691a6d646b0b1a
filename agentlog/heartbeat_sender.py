"""The client's heartbeats: one thread that keeps every agent it runs visibly alive, in batches.

A handle whose start promised heartbeats (:meth:`agentlog.handles.AgentHandle.started`) is
answered by the gate with an interval (``AgentRunning.heartbeat_interval_ms``); from then on
this sender publishes an ``AgentHeartbeat`` for it every interval (or every half timeout,
if that is shorter) until the agent is over or its handle is released. All beats due
together go out as one batch through a producer of their own (signed like every other
record when the client has a key), so that 10,000 agents cost the client a few batches per
second, not 10,000 acknowledgements. A process that dies stops beating, and the gate times
its agents out (``AgentTimedOut``, cause ``HEARTBEAT_MISSED``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from agentlog import events as ev
from agentlog.errors import AgentlogError
from agentlog.producer import Producer

if TYPE_CHECKING:
    from agentlog.handles import AgentHandle

log = logging.getLogger(__name__)

FLUSH_S = 10.0
"""How long one batch of beats may wait for the broker (a beat older than a few intervals is worth nothing)."""


class HeartbeatSender:
    """Sends the heartbeats of the handles it is given, on one thread started with the first one."""

    def __init__(self, new_producer: Callable[[], Producer], meta: Callable[[str], ev.Meta]) -> None:
        self._new_producer = new_producer
        self._meta = meta
        self._producer: Producer | None = None
        self._due: list[tuple[float, int, AgentHandle]] = []
        """Heap of (next beat, monotonic s; tie breaker; handle)."""
        self._period: dict[AgentHandle, float] = {}
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        """Beats acknowledged by the broker."""
        self.failed = 0
        """Batches the broker did not take (the next beats try again)."""

    def watch(self, handle: AgentHandle, interval_ms: int, timeout_ms: int | None) -> None:
        """Beat for ``handle`` from now on, every ``interval_ms`` (at most half of ``timeout_ms``)."""
        period = min(interval_ms, (timeout_ms or 2 * interval_ms) / 2) / 1000
        with self._wake:
            if self._closed:
                return
            watched = handle in self._period
            self._period[handle] = period
            if watched:  # started again, or an old answer heard again: one schedule per handle
                return
            heapq.heappush(self._due, (time.monotonic() + period, next(self._order), handle))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="agentlog-heartbeats", daemon=True)
                self._thread.start()
            self._wake.notify()

    def drop(self, handle: AgentHandle) -> None:
        """Stop beating for ``handle`` (its heap entry is skipped when due)."""
        with self._wake:
            self._period.pop(handle, None)

    @property
    def beating(self) -> int:
        """Handles beaten for."""
        with self._wake:
            return len(self._period)

    def close(self) -> None:
        """Stop the thread (it closes its producer); the agents beat for stop beating. Never raises."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(FLUSH_S + 5)

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._closed and (not self._due or self._due[0][0] > time.monotonic()):
                        self._wake.wait(self._due[0][0] - time.monotonic() if self._due else None)
                    if self._closed:
                        return
                    due = self._take_due(time.monotonic())
                if due:
                    self._send(due)
        finally:
            self._close_producer()

    def _close_producer(self) -> None:
        if self._producer is None:
            return
        try:
            self._producer.close(FLUSH_S)
        except AgentlogError as e:  # beats that no longer matter: the agents are left to time out
            log.warning("closing the heartbeat producer: %s", e)

    def _take_due(self, now: float) -> list[AgentHandle]:
        """The handles due a beat by ``now``, each rescheduled; ended and dropped ones are forgotten."""
        due: list[AgentHandle] = []
        while self._due and self._due[0][0] <= now:
            at, _, handle = heapq.heappop(self._due)
            period = self._period.get(handle)
            if period is None:
                continue
            if handle.cancelled or handle.released:  # released: a late watch() may have raced the drop()
                del self._period[handle]
                continue
            due.append(handle)
            # The next beat a period after this one was due (not after it was sent): no drift; a sender that fell
            # behind by more than a period beats once now and then on time again.
            heapq.heappush(self._due, (max(at + period, now), next(self._order), handle))
        return due

    def _send(self, handles: list[AgentHandle]) -> None:
        beats = [ev.AgentHeartbeat(meta=self._meta(h.root_id), agent_id=h.agent_id) for h in handles]
        try:
            if self._producer is None:
                self._producer = self._new_producer()
            for beat in beats:
                self._producer.send(beat)
            self._producer.flush(FLUSH_S)
        except Exception as e:  # the broker is away (or worse): the next beats try again; this thread must go on
            self.failed += 1
            log.warning("%d heartbeats were not delivered: %s", len(beats), e)
            return
        self.sent += len(beats)
