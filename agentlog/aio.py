"""The agent SDK for asyncio: ``async with``, ``await spawn``, ``async for signal in handle.signals()``.

A thin bridge over :class:`agentlog.client.AgentlogClient`, not a second client: the calls
that wait for the broker (publish, a decision) run in a worker thread
(:func:`asyncio.to_thread`), and signals cross from the client's one follower thread to
the event loop with ``call_soon_threadsafe``. ``confluent_kafka.aio`` was not used: its
``AIOConsumer`` wraps a consumer in a thread pool as well, and the client already follows
all of its trees with one consumer on one thread, which thousands of async handles share;
``AIOProducer`` would add a second buffering layer (1 s by default) in front of a producer
tuned for the decisions' latency.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Unpack

from agentlog import events as ev
from agentlog.client import AgentlogClient
from agentlog.handles import AgentHandle, Outcome, OutcomeTimeout, RootOptions, Signal, SpawnOptions
from agentlog.settings import Settings


async def _handle_in_thread(make: Callable[[], AgentHandle]) -> AgentHandle:
    """``make()`` in a worker thread; if the caller is cancelled meanwhile, the handle it makes is released."""
    running = asyncio.get_running_loop().run_in_executor(None, make)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        running.add_done_callback(lambda done: done.result().release() if done.exception() is None else None)
        raise


class AsyncAgentHandle:
    """An :class:`~agentlog.handles.AgentHandle` for coroutines: the same signals, awaited."""

    def __init__(self, handle: AgentHandle, loop: asyncio.AbstractEventLoop) -> None:
        self.handle = handle
        self._loop = loop
        self._signals: asyncio.Queue[Signal] = asyncio.Queue()
        self._over = asyncio.Event()
        handle.on_signal(self._from_follower, replay=True)

    def _from_follower(self, signal: Signal) -> None:
        self._loop.call_soon_threadsafe(self._arrived, signal)

    def _arrived(self, signal: Signal) -> None:
        self._signals.put_nowait(signal)
        if signal.final:
            self._over.set()

    @property
    def root_id(self) -> str:
        return self.handle.root_id

    @property
    def agent_id(self) -> str:
        return self.handle.agent_id

    @property
    def cancelled(self) -> bool:
        """True once the agent is over (terminated, timed out, or its end took effect)."""
        return self.handle.cancelled

    async def signals(self, timeout: float | None = None) -> AsyncIterator[Signal]:
        """Signals as they arrive; ends after the final one, or after ``timeout`` seconds without one."""
        while True:
            try:
                signal = await asyncio.wait_for(self._signals.get(), timeout)
            except TimeoutError:
                return
            yield signal
            if signal.final:
                return

    async def result(self, timeout: float | None = None) -> Outcome:
        """Wait for the agent's end; :class:`~agentlog.handles.OutcomeTimeout` if it does not end in time."""
        try:
            await asyncio.wait_for(self._over.wait(), timeout)
        except TimeoutError as e:
            raise OutcomeTimeout(f"agent {self.agent_id} of {self.root_id} did not end within {timeout}s") from e
        outcome = self.handle.outcome()
        assert outcome is not None  # the final signal was delivered before this event was set
        return outcome

    async def spawn(
        self,
        config: str,
        task: ev.TaskSpec | str,
        token_budget: int,
        spawn_budget: int = 0,
        **options: Unpack[SpawnOptions],
    ) -> AsyncAgentHandle:
        """Ask for a child; its handle, or :class:`~agentlog.handles.SpawnRefused` with the gate's sentence."""
        child = await _handle_in_thread(lambda: self.handle.spawn(config, task, token_budget, spawn_budget, **options))
        return AsyncAgentHandle(child, self._loop)

    async def started(self, runtime: str | None = None, *, heartbeat: bool = True) -> None:
        await asyncio.to_thread(self.handle.started, runtime, heartbeat=heartbeat)

    async def report_usage(self, tokens: int, model: str | None = None, partial_result: str | None = None) -> None:
        await asyncio.to_thread(self.handle.report_usage, tokens, model, partial_result)

    async def complete(
        self, result_summary: str = "", tokens_used: int = 0, quality_score: float | None = None
    ) -> None:
        await asyncio.to_thread(self.handle.complete, result_summary, tokens_used, quality_score)

    async def fail(self, error: str, *, retryable: bool = False, tokens_used: int = 0) -> None:
        await asyncio.to_thread(lambda: self.handle.fail(error, retryable=retryable, tokens_used=tokens_used))

    async def terminate(self, reason: str = "", requested_by: str | None = None) -> None:
        await asyncio.to_thread(self.handle.terminate, reason, requested_by)

    async def top_up(
        self, tokens: int, reason: str = "", requested_by: str | None = None, *, request_id: uuid.UUID | None = None
    ) -> ev.BudgetToppedUp | ev.TopUpDenied:
        return await asyncio.to_thread(lambda: self.handle.top_up(tokens, reason, requested_by, request_id=request_id))

    def release(self) -> None:
        """The runtime is done with the agent (see :meth:`AgentHandle.release`)."""
        self.handle.release()


class AsyncAgentlogClient:
    """:class:`~agentlog.client.AgentlogClient` for asyncio; use ``async with``."""

    def __init__(self, tenant_id: str, settings: Settings | None = None, **options: Any) -> None:
        self.tenant_id = tenant_id
        self._settings = settings
        self._options = options
        self._client: AgentlogClient | None = None

    @property
    def client(self) -> AgentlogClient:
        """The synchronous client underneath (after ``async with`` has opened it)."""
        if self._client is None:
            raise RuntimeError("use `async with AsyncAgentlogClient(...)` first")
        return self._client

    async def __aenter__(self) -> AsyncAgentlogClient:
        self._client = await asyncio.to_thread(AgentlogClient, self.tenant_id, self._settings, **self._options)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

    async def start_root(
        self,
        config: str,
        token_budget: int,
        spawn_budget: int,
        *,
        root_id: str | None = None,
        **options: Unpack[RootOptions],
    ) -> AsyncAgentHandle:
        """Register a new tree's root; its handle, or :class:`~agentlog.handles.RootRefused`."""
        handle = await _handle_in_thread(
            lambda: self.client.start_root(config, token_budget, spawn_budget, root_id=root_id, **options)
        )
        return AsyncAgentHandle(handle, asyncio.get_running_loop())

    async def attach(self, root_id: str, agent_id: str, since: int | None = None) -> AsyncAgentHandle:
        """A handle for an agent this runtime already runs (see :meth:`AgentlogClient.attach`)."""
        handle = await _handle_in_thread(lambda: self.client.attach(root_id, agent_id, since))
        return AsyncAgentHandle(handle, asyncio.get_running_loop())
