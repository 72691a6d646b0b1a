"""Agent handles: what a runtime holds for each agent it runs, and hears the control plane's decisions through.

A handle receives the gate's facts that concern its agent as :class:`Signal` values — the
fact itself (``AgentTerminated``, ``AgentTimedOut``, ``BudgetExhausted``,
``BudgetToppedUp``, ``AgentEnded``, and the tree's ``CircuitOpened``/``CircuitClosed``)
with its position on the decisions topic — three ways: callbacks
(:meth:`AgentHandle.on_signal`, called on the client's follower thread), an iterator
(:meth:`AgentHandle.signals`), and a flag a loop polls (:attr:`AgentHandle.cancelled`).
:meth:`AgentHandle.result` waits for the agent's end and returns its :class:`Outcome`.

Handles are made by :class:`agentlog.client.AgentlogClient` (``start_root``, ``attach``)
and by :meth:`AgentHandle.spawn`; one client follows the facts of all of them with one
consumer (:mod:`agentlog.facts`).
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, TypedDict, Unpack

from agentlog import events as ev
from agentlog.errors import AgentlogError

if TYPE_CHECKING:
    from agentlog.client import AgentlogClient

log = logging.getLogger(__name__)

SignalFact = (
    ev.AgentTerminated
    | ev.AgentTimedOut
    | ev.BudgetExhausted
    | ev.BudgetToppedUp
    | ev.AgentEnded
    | ev.CircuitOpened
    | ev.CircuitClosed
)
SIGNAL_FACTS: tuple[type[ev.Event], ...] = (
    ev.AgentTerminated,
    ev.AgentTimedOut,
    ev.BudgetExhausted,
    ev.BudgetToppedUp,
    ev.AgentEnded,
)
"""Facts about one agent (they name it in ``agent_id``) that reach its handle."""
TREE_SIGNAL_FACTS: tuple[type[ev.Event], ...] = (ev.CircuitOpened, ev.CircuitClosed)
"""Facts about a whole tree that reach every handle of the tree."""
FINAL_FACTS: tuple[type[ev.Event], ...] = (ev.AgentTerminated, ev.AgentTimedOut, ev.AgentEnded)
"""Facts after which the agent is over: nothing it does counts any more."""


@dataclass(frozen=True)
class Signal:
    """One fact of the control plane that concerns an agent, and where it is on the decisions topic."""

    fact: SignalFact
    partition: int
    offset: int
    appended_ms: int
    """When the broker appended the fact (its ``LogAppendTime``), in ms since the epoch."""

    @property
    def final(self) -> bool:
        """Whether the agent is over (terminated, timed out, completed or failed)."""
        return isinstance(self.fact, FINAL_FACTS)

    @property
    def message(self) -> str:
        """The gate's sentence about it, to show the agent."""
        return self.fact.message


class OutcomeStatus(StrEnum):
    """How an agent ended."""

    completed = "completed"
    failed = "failed"
    terminated = "terminated"
    timed_out = "timed_out"


@dataclass(frozen=True)
class Outcome:
    """How an agent ended, from the gate's final fact about it."""

    status: OutcomeStatus
    message: str
    """The gate's sentence."""
    fact: ev.AgentTerminated | ev.AgentTimedOut | ev.AgentEnded
    result_summary: str = ""
    quality_score: float | None = None
    tokens_used: int = 0
    """Tokens the agent reported (completed or failed) or was charged (terminated, timed out: its usage as the
    gate counted it)."""
    error: str = ""
    retryable: bool = False
    termination: ev.TerminationReason | None = None
    """Why it was terminated (``REQUESTED``, ``ANCESTOR_ENDED``, ``BUDGET``, ``TIMEOUT``, ``CIRCUIT``)."""
    ended_by: str | None = None
    """The agent whose end or request ended it, if one did."""
    partial_result: str | None = None
    """Terminated or timed out: the last partial result it reported (:meth:`AgentHandle.report_usage`), if any."""
    timeout_cause: ev.TimeoutCause | None = None
    """Timed out: whether its deadline passed (``DEADLINE``) or its heartbeats stopped (``HEARTBEAT_MISSED``)."""

    @classmethod
    def of(
        cls,
        fact: ev.AgentTerminated | ev.AgentTimedOut | ev.AgentEnded,
        tokens_used: int,
        partial_result: str | None = None,
    ) -> Outcome:
        """The outcome a final fact tells; ``tokens_used`` is what the handle saw charged, ``partial_result`` the
        last one it heard."""
        if isinstance(fact, ev.AgentEnded):
            completed = fact.outcome is ev.EndOutcome.COMPLETED
            return cls(
                OutcomeStatus.completed if completed else OutcomeStatus.failed,
                fact.message,
                fact,
                result_summary=fact.result_summary,
                quality_score=fact.quality_score,
                tokens_used=fact.tokens_used,
                error=fact.error,
                retryable=fact.retryable,
            )
        if isinstance(fact, ev.AgentTimedOut):
            return cls(
                OutcomeStatus.timed_out,
                fact.message,
                fact,
                tokens_used=tokens_used,
                partial_result=partial_result,
                timeout_cause=fact.cause,
            )
        return cls(
            OutcomeStatus.terminated,
            fact.message,
            fact,
            tokens_used=tokens_used,
            termination=fact.reason,
            ended_by=fact.ended_by_agent_id,
            partial_result=partial_result,
        )


class SpawnRefused(AgentlogError):
    """The gate denied a spawn; ``denial`` holds its reason and the sentence to show the agent."""

    def __init__(self, denial: ev.SpawnDenied) -> None:
        self.denial = denial
        super().__init__(denial.message)


class RootRefused(AgentlogError):
    """The gate rejected a root registration; ``rejection`` holds the reason and the sentence."""

    def __init__(self, rejection: ev.RootRejected) -> None:
        self.rejection = rejection
        super().__init__(rejection.message)


class OutcomeTimeout(AgentlogError):
    """The agent did not end within the time :meth:`AgentHandle.result` was given."""


Callback = Callable[[Signal], None]


class SpawnOptions(TypedDict, total=False):
    """What else a spawn request may say."""

    max_runtime_ms: int | None
    """The child's deadline after its approval (None: the policy's default)."""
    capabilities: Iterable[str]
    request_id: uuid.UUID | None
    """The idempotency key: asking again with it returns the original outcome, marked ``repeat``."""


class RootOptions(TypedDict, total=False):
    """What else a root registration may say."""

    task: ev.TaskSpec | None
    max_runtime_ms: int | None
    capabilities: Iterable[str]


class AgentHandle:
    """One agent a runtime runs: its signals, its cancellation flag, its result, and the acts it reports.

    Signals are delivered once each, in the order of the decisions topic, from ``start``
    (the offset of the fact that created the agent, or where it was attached from).
    """

    def __init__(
        self, client: AgentlogClient, root_id: str, agent_id: str, partition: int, start: int, *, placed: bool = True
    ) -> None:
        self.client = client
        self.root_id = root_id
        self.agent_id = agent_id
        self.partition = partition
        """The decisions partition of its tree."""
        self.next_offset = start
        """The decisions offset after the last signal delivered to it (or where it started)."""
        self.tokens_charged = 0
        """Tokens the gate charged to it, as the signals so far tell (``TokensCharged`` is not a signal but counts)."""
        self.partial_result: str | None = None
        """The latest partial result it reported with its usage (the charges carry it)."""
        self._callbacks: list[Callback] = []
        self._lock = threading.Lock()
        self._history: list[Signal] = []
        """Every signal delivered, in order (an agent hears a few)."""
        self._queue: queue.SimpleQueue[Signal] = queue.SimpleQueue()
        self._over = threading.Event()
        self._final: Signal | None = None
        self._released = False
        self._placed = placed
        """False while the client does not know yet where it starts reading for it (it then holds nothing)."""
        self._promised = False
        """Whether this process promised heartbeats for it (:meth:`started`): then it sends them."""

    # ------------------------------------------------------------------ what it hears

    @property
    def cancelled(self) -> bool:
        """True once the agent is over: terminated, timed out, or its end took effect. A loop polls it."""
        return self._over.is_set()

    @property
    def final(self) -> Signal | None:
        """The signal that ended the agent, once there is one."""
        return self._final

    def on_signal(self, callback: Callback, *, replay: bool = False) -> None:
        """Call ``callback(signal)`` for each later signal, on the client's follower thread (keep it short).

        ``replay``: first call it, here, with the signals delivered so far, so that it misses none and sees
        none twice however the follower races this call.
        """
        with self._lock:
            if replay:
                for signal in self._history:
                    callback(signal)
            self._callbacks.append(callback)

    def signals(self, timeout: float | None = None) -> Iterator[Signal]:
        """Signals as they arrive; the iteration ends after the final one, or after ``timeout`` seconds without one."""
        while True:
            try:
                signal = self._queue.get(timeout=timeout)
            except queue.Empty:
                return
            yield signal
            if signal.final:
                return

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block until the agent is over (True) or ``timeout`` passes (False)."""
        return self._over.wait(timeout)

    def result(self, timeout: float | None = None) -> Outcome:
        """Wait for the agent's end and return how it ended; :class:`OutcomeTimeout` if it does not end in time."""
        if not self._over.wait(timeout):
            raise OutcomeTimeout(f"agent {self.agent_id} of {self.root_id} did not end within {timeout}s")
        outcome = self.outcome()
        assert outcome is not None
        return outcome

    def outcome(self) -> Outcome | None:
        """How the agent ended, without waiting (None while it runs)."""
        final = self._final
        if final is None:
            return None
        assert isinstance(final.fact, FINAL_FACTS)
        return Outcome.of(final.fact, self.tokens_charged, self.partial_result)  # type: ignore[arg-type]

    def skip_to(self, offset: int) -> None:
        """Hear nothing before ``offset`` (where the client starts reading for it)."""
        with self._lock:
            self.next_offset = max(self.next_offset, offset)
            self._placed = True

    def deliver(self, fact: ev.Event, offset: int, appended_ms: int) -> None:
        """Hand it a fact at ``offset`` (the follower calls this; one before ``next_offset`` was delivered already)."""
        if offset < self.next_offset:
            return
        self.next_offset = offset + 1
        if isinstance(fact, ev.TokensCharged):
            self.tokens_charged = fact.tokens_used
            if fact.partial_result is not None and fact.agent_id == self.agent_id:
                self.partial_result = fact.partial_result
            return
        if isinstance(fact, ev.AgentRunning):  # beats come from the runtime that runs it, not from every observer
            if fact.heartbeat_interval_ms and self._promised and not self._released and not self.cancelled:
                self.client.heartbeats.watch(self, fact.heartbeat_interval_ms, fact.heartbeat_timeout_ms)
            return
        signal = Signal(fact, self.partition, offset, appended_ms)  # type: ignore[arg-type]
        with self._lock:  # a subscriber replaying the history holds it: it sees this signal there or below
            if signal.final:
                self._final = signal
                self._over.set()
            self._history.append(signal)
            self._queue.put(signal)
            callbacks = list(self._callbacks)
        for callback in callbacks:  # outside the lock: a callback may call the handle again
            try:
                callback(signal)
            except Exception:  # a failing callback must not stop the signals of every other agent
                log.exception("signal callback of agent %s failed", self.agent_id)

    # ------------------------------------------------------------------ what it does

    def spawn(
        self,
        config: str,
        task: ev.TaskSpec | str,
        token_budget: int,
        spawn_budget: int = 0,
        **options: Unpack[SpawnOptions],
    ) -> AgentHandle:
        """Ask the gate for a child; its handle, or :class:`SpawnRefused` with the gate's sentence.

        ``request_id`` is the idempotency key: asking again with it returns the same child.
        """
        return self.client.spawn_child(self, config, task, token_budget, spawn_budget, **options)

    def started(self, runtime: str | None = None, *, heartbeat: bool = True) -> None:
        """Report that the agent began running (again, after :meth:`AgentlogClient.attach` in a restarted runtime).

        With ``heartbeat`` (the default) the client promises heartbeats for it and, once the gate answers with
        the policy's interval, sends them until the agent is over or the handle released: should this process
        die, the gate times the agent out after ``limits.heartbeat_misses`` silent intervals instead of at its
        deadline. Without, only the deadline ends it.
        """
        self._promised = heartbeat
        self.client.started(self.root_id, self.agent_id, runtime, heartbeat=heartbeat)

    def report_usage(
        self,
        tokens: int,
        model: str | None = None,
        partial_result: str | None = None,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        """Report tokens the agent spent and, if it says, what it has produced so far (``tokens`` may then be 0):
        the latest partial result is the agent's result should it be terminated or time out. ``input_tokens`` and
        ``output_tokens`` split ``tokens`` when the runtime counts them apart."""
        self.client.report_usage(
            self.root_id,
            self.agent_id,
            tokens,
            model,
            partial_result,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )

    def complete(self, result_summary: str = "", tokens_used: int = 0, quality_score: float | None = None) -> None:
        """Report that the agent finished; its subtree ends and its unused tokens return."""
        self.client.complete(self.root_id, self.agent_id, result_summary, tokens_used, quality_score)

    def fail(self, error: str, *, retryable: bool = False, tokens_used: int = 0) -> None:
        """Report that the agent failed."""
        self.client.fail(self.root_id, self.agent_id, error, retryable=retryable, tokens_used=tokens_used)

    def terminate(self, reason: str = "", requested_by: str | None = None) -> None:
        """Ask to stop this agent and its subtree (requested by itself unless ``requested_by`` says who)."""
        self.client.terminate(self.root_id, self.agent_id, requested_by or self.agent_id, reason)

    def top_up(
        self, tokens: int, reason: str = "", requested_by: str | None = None, *, request_id: uuid.UUID | None = None
    ) -> ev.BudgetToppedUp | ev.TopUpDenied:
        """Ask for more tokens for this agent (requested by itself unless ``requested_by`` says who);
        ``request_id`` is the idempotency key, as for :meth:`spawn`."""
        who = requested_by or self.agent_id
        return self.client.top_up(self.root_id, self.agent_id, tokens, who, reason, request_id=request_id)

    # ------------------------------------------------------------------ its lifetime in the client

    @property
    def holds(self) -> int | None:
        """The decisions offset this handle needs kept for a restart: its next signal's, or its final one's
        until it is released (None once released)."""
        if self._released or not self._placed:
            return None
        return self._final.offset if self._final is not None else self.next_offset

    @property
    def released(self) -> bool:
        """Whether the runtime let go of it (:meth:`release`)."""
        return self._released

    def release(self) -> None:
        """The runtime is done with the agent: the client forgets the handle and may keep a later position."""
        self._released = True
        self.client.release(self)

    def __enter__(self) -> AgentHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "over" if self.cancelled else "running"
        return f"AgentHandle({self.root_id!r}, {self.agent_id!r}, {state}, next offset {self.next_offset})"
