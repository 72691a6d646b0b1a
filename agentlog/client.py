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
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.errors import AgentlogError, DeliveryError
from agentlog.producer import Delivery, Producer
from agentlog.serde import Serde
from agentlog.settings import Settings, get_settings
from agentlog.topics import POLICY_DECISIONS
from agentlog.watermarks import watermarks


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


class _Replies:
    """Follows the decisions topic from its current end and hands replies to waiters."""

    def __init__(self, settings: Settings, serde: Serde) -> None:
        self._serde = serde
        self._waiters: dict[uuid.UUID, tuple[threading.Event, list[ev.Event]]] = {}
        self._answers: dict[uuid.UUID, tuple[type[ev.Event], ...]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = Consumer(kafka_config.reader(settings))
        topic = settings.topic_prefix + POLICY_DECISIONS.name
        metadata = self._consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            raise AgentlogError(f"topic {topic} is not available: {metadata.error.str()}")
        # Start at the current end, as explicit offsets so that no reply can slip past.
        self._consumer.assign(
            [TopicPartition(topic, p, watermarks(self._consumer, topic, p)[1]) for p in metadata.partitions]
        )
        self._thread = threading.Thread(target=self._run, name="agentlog-replies", daemon=True)
        self._thread.start()

    def expect(
        self,
        event_id: uuid.UUID,
        answers: tuple[type[ev.Event], ...],
        slot: tuple[threading.Event, list[ev.Event]] | None = None,
    ) -> tuple[threading.Event, list[ev.Event]]:
        """A slot that fills with the decisions caused by ``event_id`` and is set by an answer.

        Other decisions with the same cause (``CircuitClosed`` before the answer) are kept
        but do not wake the waiter. Passing the ``slot`` of an earlier attempt makes the
        answer to either attempt wake it.
        """
        slot = slot or (threading.Event(), [])
        with self._lock:
            self._waiters[event_id] = slot
            self._answers[event_id] = answers
        return slot

    def forget(self, event_id: uuid.UUID) -> None:
        with self._lock:
            self._waiters.pop(event_id, None)
            self._answers.pop(event_id, None)

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, 0.1):
                error = msg.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    continue
                try:
                    decision = self._serde.decode(msg.value() or b"")
                except Exception:  # a record we cannot read is no reply: keep following
                    continue
                cause = decision.meta.causation_id
                with self._lock:
                    slot = self._waiters.get(cause) if cause is not None else None
                    answers = self._answers.get(cause) if cause is not None else None
                if slot is not None:
                    slot[1].append(decision)
                    if answers is not None and isinstance(decision, answers):
                        slot[0].set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


class AgentlogClient:
    """Publishes on behalf of one tenant's agent runtime and waits for the gate's decisions."""

    def __init__(
        self,
        tenant_id: str,
        settings: Settings | None = None,
        *,
        producer_name: str = "agentlog-sdk",
        timeout: float = 10.0,
        retries: int = 2,
    ) -> None:
        self.tenant_id = tenant_id
        self.settings = settings or get_settings()
        self.producer_name = producer_name
        self.timeout = timeout
        """Seconds each attempt waits for the gate's decision."""
        self.retries = retries
        """How many times a request is published again (same request id) after a retriable failure or a timeout."""
        self._serde = Serde.from_settings(self.settings)
        self._producer = Producer(self.settings, serde=self._serde)
        self._replies = _Replies(self.settings, self._serde)

    def meta(self, root_id: str, **fields: Any) -> ev.Meta:
        """A fresh envelope for an event of tree ``root_id``."""
        return ev.Meta(tenant_id=self.tenant_id, root_id=root_id, producer=self.producer_name, **fields)

    def new_root_id(self) -> str:
        """A fresh root id in this tenant's namespace (``<tenant>/<uuid>``), as ``limits.tenant_root_prefix`` asks."""
        return f"{self.tenant_id}/{uuid.uuid4()}"

    def register_root(
        self,
        agent_id: str,
        config: str,
        token_budget: int,
        spawn_budget: int,
        *,
        task: ev.TaskSpec | None = None,
        max_runtime_ms: int | None = None,
        capabilities: Iterable[str] = (),
    ) -> ev.RootAdmitted | ev.RootRejected:
        """Register the root of a new tree and return whether it was admitted (``repeat`` when already it was)."""

        def request() -> ev.Event:
            return ev.RootAgentRegistered(
                meta=self.meta(agent_id),
                agent_id=agent_id,
                config=config,
                token_budget=token_budget,
                spawn_budget=spawn_budget,
                task=task,
                max_runtime_ms=max_runtime_ms,
                capabilities=list(capabilities),
            )

        reply = self._ask(request, (ev.RootAdmitted, ev.RootRejected))
        assert isinstance(reply, (ev.RootAdmitted, ev.RootRejected))
        return reply

    def spawn(
        self,
        root_id: str,
        parent_agent_id: str,
        child_config: str,
        task: ev.TaskSpec | str,
        token_budget: int,
        spawn_budget: int = 0,
        *,
        max_runtime_ms: int | None = None,
        capabilities: Iterable[str] = (),
        request_id: uuid.UUID | None = None,
    ) -> ev.SpawnApproved | ev.SpawnDenied:
        """Ask to spawn a child of ``parent_agent_id``; returns the approval or the denial.

        ``request_id`` is the idempotency key: asking again with it returns the original
        outcome (the same child, or the same denial), marked ``repeat``.
        """
        key = request_id or uuid.uuid4()
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
                max_runtime_ms=max_runtime_ms,
                capabilities=list(capabilities),
            )

        reply = self._ask(request, (ev.SpawnApproved, ev.SpawnDenied))
        assert isinstance(reply, (ev.SpawnApproved, ev.SpawnDenied))
        return reply

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

        reply = self._ask(request, (ev.BudgetToppedUp, ev.TopUpDenied))
        assert isinstance(reply, (ev.BudgetToppedUp, ev.TopUpDenied))
        return reply

    def report_usage(self, root_id: str, agent_id: str, tokens: int, model: str | None = None) -> Delivery:
        """Report tokens an agent spent (counted against its grant)."""
        return self._producer.publish(
            ev.TokensConsumed(meta=self.meta(root_id), agent_id=agent_id, tokens=tokens, model=model)
        )

    def started(self, root_id: str, agent_id: str, runtime: str | None = None) -> Delivery:
        """Report that an approved agent began running."""
        return self._producer.publish(ev.AgentStarted(meta=self.meta(root_id), agent_id=agent_id, runtime=runtime))

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

    def _ask(self, request: Callable[[], ev.Event], answers: tuple[type[ev.Event], ...]) -> ev.Event:
        """Publish ``request()`` and wait for its answer, publishing it again (same request id) when in doubt."""
        slot: tuple[threading.Event, list[ev.Event]] | None = None
        attempts: list[ev.Event] = []
        try:
            while True:
                attempt = request()  # a new event each time: the request id, not the event id, is the key
                attempts.append(attempt)
                slot = self._replies.expect(attempt.meta.event_id, answers, slot)
                try:
                    self._producer.publish(attempt)
                except DeliveryError as e:
                    if not e.retriable or len(attempts) > self.retries:
                        raise
                    time.sleep(min(0.2 * 2 ** len(attempts), 2.0))  # the broker is struggling: back off
                    continue
                if slot[0].wait(self.timeout):
                    break
                if len(attempts) > self.retries:
                    raise DecisionTimeout(attempt, self.timeout, len(attempts))
        finally:
            for attempt in attempts:
                self._replies.forget(attempt.meta.event_id)
        replies = slot[1]
        reply = next((r for r in replies if isinstance(r, answers)), None)
        if reply is None:
            raise AgentlogError(f"unexpected reply to {type(request).__name__}: {type(replies[0]).__name__}")
        return reply

    def close(self) -> None:
        """Stop following decisions and flush what is queued."""
        self._replies.close()
        self._producer.close()

    def __enter__(self) -> AgentlogClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
