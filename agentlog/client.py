"""The agent-runtime SDK: ask the spawn gate and wait for its answer, report lifecycle facts.

``AgentlogClient.spawn`` publishes a ``SpawnRequested`` and returns the gate's decision —
``SpawnApproved`` (with the child id and grants) or ``SpawnDenied`` (with the reason and a
sentence to show the agent) — or raises :class:`DecisionTimeout`. Replies are matched by
``meta.causation_id``: every decision names the event that caused it.

Requests are idempotent: a spawn or top-up carries a ``request_id`` (pass your own as an
idempotency key, or let the client draw one), a root registration its root id. When a
publish fails with a retriable :class:`DeliveryError`, or no decision arrives within
``timeout``, the client publishes the request again — a new event with the *same*
request id — up to ``retries`` times. The gate answers a request id it already decided
with the original outcome (``repeat`` set on the decision), so nothing is granted twice
and the caller learns what happened to its first attempt.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Unpack

from agentlog import events as ev
from agentlog import telemetry
from agentlog.bus_client import BusClient
from agentlog.errors import AgentlogError, DeliveryError, PayloadError
from agentlog.facts import FactFollower, Slot
from agentlog.handles import AgentHandle, RootOptions, RootRefused, SpawnOptions, SpawnRefused
from agentlog.heartbeat_sender import HeartbeatSender
from agentlog.mission_client import MISSION_ANSWERS, MissionClient
from agentlog.producer import Delivery, Producer
from agentlog.serde import Serde
from agentlog.settings import Settings, get_settings
from agentlog.topics import MISSION_EVENTS


class DecisionTimeout(AgentlogError):
    """No decision arrived in time (is a spawn-gate worker running?)."""

    def __init__(self, request: ev.Event, timeout: float, attempts: int = 1) -> None:
        self.event_id = request.meta.event_id
        self.request_id: uuid.UUID | None = getattr(request, "request_id", None)
        self.timeout = timeout
        self.attempts = attempts
        again = (
            f"; ask again with request_id {self.request_id} to learn the outcome without a second grant"
            if self.request_id is not None
            else ""
        )
        super().__init__(
            f"no decision for {type(request).__name__} {request.meta.event_id} within {timeout}s"
            f" ({attempts} attempt{'s' if attempts != 1 else ''}); is `agentlog processors run` running?{again}"
        )


class AgentlogClient:
    """Publishes on behalf of one tenant's agent runtime, waits for the gate's decisions, and gives a handle
    per agent it runs (:mod:`agentlog.handles`) that hears what the control plane decided about it.

    One client follows the decisions partitions of all the trees it serves with one consumer
    (:mod:`agentlog.facts`). With a ``client_id`` it keeps its position there, so that the
    same runtime restarted re-attaches its agents (:meth:`attach`) and hears what they missed.
    """

    def __init__(
        self,
        tenant_id: str,
        settings: Settings | None = None,
        *,
        producer_name: str = "agentlog-sdk",
        timeout: float = 10.0,
        retries: int = 2,
        client_id: str | None = None,
    ) -> None:
        telemetry.configure("agentlog-sdk")  # only what OTEL_* asks, and never over the application's own providers
        self.tenant_id = tenant_id
        self.settings = settings or get_settings()
        self.producer_name = producer_name
        self.timeout = timeout
        """Seconds each attempt waits for the gate's decision."""
        self.retries = retries
        """How many times a request is published again (same request id) after a retriable failure or a timeout."""
        self._serde = Serde.from_settings(self.settings)
        self._producer = Producer(self.settings, serde=self._serde)
        self.client_id = client_id
        """Names the runtime across restarts: its positions are kept under it (None: kept nowhere)."""
        self._facts = FactFollower(self.settings, self._serde, client_id)
        self.heartbeats = HeartbeatSender(lambda: Producer(self.settings, serde=self._serde), self.meta)
        """Beats for the handles whose start promised heartbeats."""
        self._mission_facts: FactFollower | None = None
        """Follows the mission processor's facts, from the first mission command on."""
        self._mission_lock = threading.Lock()
        self.bus = BusClient(self)
        """Requests, replies, questions and decisions, alerts and handoffs between agents, and their inboxes."""

    @property
    def missions(self) -> MissionClient:
        """Create missions, add dependencies and move them, each answered by the mission processor."""
        return MissionClient(self)

    def ask_missions(self, request: Callable[[], ev.Event], mission_id: str) -> ev.Event:
        """Publish a mission command and return the mission processor's answer about ``mission_id`` (no retries: a
        command carries no idempotency key, and a second one would be answered on its own)."""
        with self._mission_lock:
            if self._mission_facts is None:
                self._mission_facts = FactFollower(self.settings, self._serde, spec=MISSION_EVENTS)
        answer, _ = self._ask(request, MISSION_ANSWERS, self._mission_facts, retries=0, about=mission_id)
        return answer

    def meta(self, root_id: str, **fields: Any) -> ev.Meta:
        """A fresh envelope for an event of tree ``root_id``."""
        return ev.Meta(tenant_id=self.tenant_id, root_id=root_id, producer=self.producer_name, **fields)

    def new_root_id(self) -> str:
        """A fresh root id in this tenant's namespace (``<tenant>/<uuid>``), as ``limits.tenant_root_prefix`` asks."""
        return f"{self.tenant_id}/{uuid.uuid4()}"

    def register_root(
        self, agent_id: str, config: str, token_budget: int, spawn_budget: int, **options: Unpack[RootOptions]
    ) -> ev.RootAdmitted | ev.RootRejected:
        """Register the root of a new tree and return whether it was admitted (``repeat`` when already it was)."""
        return self._ask_root(agent_id, config, token_budget, spawn_budget, options)[0]

    def spawn(
        self,
        root_id: str,
        parent_agent_id: str,
        child_config: str,
        task: ev.TaskSpec | str,
        token_budget: int,
        spawn_budget: int = 0,
        **options: Unpack[SpawnOptions],
    ) -> ev.SpawnApproved | ev.SpawnDenied:
        """Ask to spawn a child of ``parent_agent_id``; returns the approval or the denial.

        ``request_id`` is the idempotency key: asking again with it returns the original
        outcome (the same child, or the same denial), marked ``repeat``.
        """
        return self._ask_spawn(root_id, parent_agent_id, child_config, task, token_budget, spawn_budget, options)[0]

    def _ask_root(
        self, agent_id: str, config: str, token_budget: int, spawn_budget: int, options: RootOptions
    ) -> tuple[ev.RootAdmitted | ev.RootRejected, int]:
        def request() -> ev.Event:
            return ev.RootAgentRegistered(
                meta=self.meta(agent_id),
                agent_id=agent_id,
                config=config,
                token_budget=token_budget,
                spawn_budget=spawn_budget,
                task=options.get("task"),
                max_runtime_ms=options.get("max_runtime_ms"),
                capabilities=list(options.get("capabilities", ())),
            )

        reply, offset = self._ask(request, (ev.RootAdmitted, ev.RootRejected))
        assert isinstance(reply, (ev.RootAdmitted, ev.RootRejected))
        return reply, offset

    def _ask_spawn(
        self,
        root_id: str,
        parent_agent_id: str,
        child_config: str,
        task: ev.TaskSpec | str,
        token_budget: int,
        spawn_budget: int,
        options: SpawnOptions,
    ) -> tuple[ev.SpawnApproved | ev.SpawnDenied, int]:
        key = options.get("request_id") or uuid.uuid4()
        spec = ev.TaskSpec(title=task) if isinstance(task, str) else task

        def request() -> ev.Event:
            return ev.SpawnRequested(
                meta=self.meta(root_id),
                request_id=key,
                parent_agent_id=parent_agent_id,
                child_config=child_config,
                task=spec,
                requested_token_budget=token_budget,
                requested_spawn_budget=spawn_budget,
                max_runtime_ms=options.get("max_runtime_ms"),
                capabilities=list(options.get("capabilities", ())),
            )

        reply, offset = self._ask(request, (ev.SpawnApproved, ev.SpawnDenied))
        assert isinstance(reply, (ev.SpawnApproved, ev.SpawnDenied))
        return reply, offset

    def top_up(
        self,
        root_id: str,
        agent_id: str,
        tokens: int,
        requested_by: str,
        reason: str = "",
        *,
        request_id: uuid.UUID | None = None,
    ) -> ev.BudgetToppedUp | ev.TopUpDenied:
        """Ask for more tokens for ``agent_id``; ``request_id`` is the idempotency key, as for :meth:`spawn`."""
        key = request_id or uuid.uuid4()

        def request() -> ev.Event:
            return ev.BudgetTopUpRequested(
                meta=self.meta(root_id),
                request_id=key,
                agent_id=agent_id,
                additional_tokens=tokens,
                requested_by=requested_by,
                reason=reason,
            )

        reply, _ = self._ask(request, (ev.BudgetToppedUp, ev.TopUpDenied))
        assert isinstance(reply, (ev.BudgetToppedUp, ev.TopUpDenied))
        return reply

    def report_usage(
        self,
        root_id: str,
        agent_id: str,
        tokens: int,
        model: str | None = None,
        partial_result: str | None = None,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> Delivery:
        """Report tokens an agent spent (counted against its grant), with what it has produced so far if it says
        (``partial_result``: the parent keeps the latest, should the agent be terminated; ``tokens`` may then be 0).

        ``input_tokens`` and ``output_tokens``: how many of ``tokens`` were the prompt's and how many generated, when
        the runtime counts them apart (the send span names them ``gen_ai.usage.input_tokens``/``output_tokens``).
        """
        split = [n for n in (input_tokens, output_tokens) if n is not None]
        if any(n < 0 for n in split) or sum(split) > tokens:
            raise PayloadError(
                "TokensConsumed",
                [("input_tokens/output_tokens", f"must be non-negative and add up to at most tokens ({tokens})")],
            )
        event = ev.TokensConsumed(
            meta=self.meta(root_id),
            agent_id=agent_id,
            tokens=tokens,
            model=model,
            partial_result=partial_result,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        return self._producer.publish(event)

    def started(self, root_id: str, agent_id: str, runtime: str | None = None, *, heartbeat: bool = False) -> Delivery:
        """Report that an approved agent began running; with ``heartbeat``, promise heartbeats for it (a handle
        then sends them, :mod:`agentlog.heartbeat_sender`)."""
        event = ev.AgentStarted(meta=self.meta(root_id), agent_id=agent_id, runtime=runtime, heartbeat=heartbeat)
        return self._producer.publish(event)

    def complete(
        self,
        root_id: str,
        agent_id: str,
        result_summary: str = "",
        tokens_used: int = 0,
        quality_score: float | None = None,
    ) -> Delivery:
        """Report that an agent finished; its subtree is ended and its unused tokens return."""
        event = ev.AgentCompleted(
            meta=self.meta(root_id),
            agent_id=agent_id,
            result_summary=result_summary,
            tokens_used=tokens_used,
            quality_score=quality_score,
        )
        return self._producer.publish(event)

    def fail(
        self, root_id: str, agent_id: str, error: str, *, retryable: bool = False, tokens_used: int = 0
    ) -> Delivery:
        """Report that an agent failed; its subtree is ended and its unused tokens return."""
        event = ev.AgentFailed(
            meta=self.meta(root_id), agent_id=agent_id, error=error, retryable=retryable, tokens_used=tokens_used
        )
        return self._producer.publish(event)

    def terminate(self, root_id: str, agent_id: str, requested_by: str, reason: str = "") -> Delivery:
        """Ask to stop an agent and its whole subtree."""
        event = ev.TerminationRequested(
            meta=self.meta(root_id), agent_id=agent_id, requested_by=requested_by, reason=reason
        )
        return self._producer.publish(event)

    def _ask(
        self,
        request: Callable[[], ev.Event],
        answers: tuple[type[ev.Event], ...],
        facts: FactFollower | None = None,
        retries: int | None = None,
        about: str | None = None,
    ) -> tuple[ev.Event, int]:
        """Publish ``request()`` and wait for its answer and the answer's offset on the decisions topic (or the
        topic ``facts`` follows), publishing it again (same request id) when in doubt, up to ``retries`` times
        (default: the client's)."""
        facts = facts or self._facts
        retries = self.retries if retries is None else retries
        if self._facts.on_follower_thread or facts.on_follower_thread:
            raise AgentlogError(
                "a signal callback cannot wait for a decision (it runs on the thread that reads them):"
                " hand the request to another thread, or act on the signal in the agent's own loop"
            )
        slot = Slot(answers, about)
        attempts: list[ev.Event] = []
        try:
            while True:
                attempt = request()  # a new event each time: the request id, not the event id, is the key
                attempts.append(attempt)
                facts.expect(attempt.meta.event_id, attempt.meta.root_id, slot)
                facts.serve(attempt.meta.root_id)
                try:
                    self._producer.publish(attempt)
                except DeliveryError as e:
                    if not e.retriable or len(attempts) > retries:
                        raise
                    time.sleep(min(0.2 * 2 ** len(attempts), 2.0))  # the broker is struggling: back off
                    continue
                if slot.done.wait(self.timeout):
                    break
                if len(attempts) > retries:
                    raise DecisionTimeout(attempt, self.timeout, len(attempts))
        finally:
            for attempt in attempts:
                facts.forget(attempt.meta.event_id)
        found = slot.answer()
        if found is None:
            raise AgentlogError(
                f"unexpected reply to {type(attempts[0]).__name__}: {type(slot.replies[0][0]).__name__}"
            )
        return found

    # ------------------------------------------------------------------ handles

    def start_root(
        self,
        config: str,
        token_budget: int,
        spawn_budget: int,
        *,
        root_id: str | None = None,
        **options: Unpack[RootOptions],
    ) -> AgentHandle:
        """Register a new tree's root and return its handle; :class:`RootRefused` with the gate's sentence if not."""
        agent_id = root_id or self.new_root_id()
        reply, offset = self._ask_root(agent_id, config, token_budget, spawn_budget, options)
        if isinstance(reply, ev.RootRejected):
            raise RootRefused(reply)
        return self._hold(agent_id, agent_id, offset)

    def spawn_child(
        self,
        parent: AgentHandle,
        config: str,
        task: ev.TaskSpec | str,
        token_budget: int,
        spawn_budget: int = 0,
        **options: Unpack[SpawnOptions],
    ) -> AgentHandle:
        """Ask for a child of ``parent``; the child's handle, or :class:`SpawnRefused` with the gate's sentence."""
        reply, offset = self._ask_spawn(
            parent.root_id, parent.agent_id, config, task, token_budget, spawn_budget, options
        )
        if isinstance(reply, ev.SpawnDenied):
            raise SpawnRefused(reply)
        return self._hold(parent.root_id, reply.child_agent_id, offset)

    def attach(self, root_id: str, agent_id: str, since: int | None = None) -> AgentHandle:
        """A handle for an agent this runtime already runs (after a restart, say), hearing its signals from
        ``since`` (a handle's ``next_offset`` saved earlier), else from this client's kept position, else from now.

        Attach every agent of a restarted runtime before it waits on any: a handle hears only what the client
        reads after it exists, and reading again from an older position costs a re-read of the partition.
        """
        existing = self._facts.handle(root_id, agent_id)
        if existing is not None:
            return existing
        start = since if since is not None else self._facts.kept_position(root_id)
        return self._hold(root_id, agent_id, start)

    def _hold(self, root_id: str, agent_id: str, start: int | None) -> AgentHandle:
        """A handle routed to before its partition is served, so that nothing read from ``start`` on misses it."""
        partition = self._facts.partition(root_id)
        provisional = start if start is not None else self._facts.position(partition) or 0
        handle = AgentHandle(self, root_id, agent_id, partition, provisional, placed=start is not None)
        self._facts.add(handle)
        position = self._facts.serve(root_id, start)
        if start is None:
            handle.skip_to(position)
        return handle

    def kept_position(self, root_id: str) -> int | None:
        """The decisions offset this client kept for the tree's partition (None: no ``client_id``, or none yet)."""
        return self._facts.kept_position(root_id)

    def release(self, handle: AgentHandle) -> None:
        """Forget a handle (:meth:`AgentHandle.release` calls this); its heartbeats stop."""
        self.heartbeats.drop(handle)
        self._facts.remove(handle)

    def close(self) -> None:
        """Stop beating and following decisions (keeping the positions, with a ``client_id``) and flush what is
        queued. Agents left running without heartbeats time out: nothing runs them any more."""
        self.heartbeats.close()
        self._facts.close()
        if self._mission_facts is not None:
            self._mission_facts.close()
        self.bus.close()
        self._producer.close()

    def __enter__(self) -> AgentlogClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
