"""The agent-runtime SDK: ask the spawn gate and wait for its answer, report lifecycle facts.

``AgentlogClient.spawn`` publishes a ``SpawnRequested`` and returns the gate's decision —
``SpawnApproved`` (with the child id and grants) or ``SpawnDenied`` (with the reason and a
sentence to show the agent) — or raises :class:`DecisionTimeout`. Replies are matched by
``meta.causation_id``: every decision names the event that caused it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.errors import AgentlogError
from agentlog.producer import Delivery, Producer
from agentlog.serde import Serde
from agentlog.settings import Settings, get_settings
from agentlog.topics import POLICY_DECISIONS
from agentlog.watermarks import watermarks


class DecisionTimeout(AgentlogError):
    """No decision arrived in time (is a spawn-gate worker running?)."""

    def __init__(self, request: ev.Event, timeout: float) -> None:
        self.event_id = request.meta.event_id
        self.timeout = timeout
        super().__init__(
            f"no decision for {type(request).__name__} {request.meta.event_id} within {timeout}s; "
            "is `agentlog processors run` running?"
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
        self, event_id: uuid.UUID, answers: tuple[type[ev.Event], ...]
    ) -> tuple[threading.Event, list[ev.Event]]:
        """A slot that fills with the decisions caused by ``event_id`` and is set by an answer.

        Other decisions with the same cause (``CircuitClosed`` before the answer) are kept
        but do not wake the waiter.
        """
        slot: tuple[threading.Event, list[ev.Event]] = (threading.Event(), [])
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
    ) -> None:
        self.tenant_id = tenant_id
        self.settings = settings or get_settings()
        self.producer_name = producer_name
        self.timeout = timeout
        self._serde = Serde.from_settings(self.settings)
        self._producer = Producer(self.settings, serde=self._serde)
        self._replies = _Replies(self.settings, self._serde)

    def meta(self, root_id: str, **fields: Any) -> ev.Meta:
        """A fresh envelope for an event of tree ``root_id``."""
        return ev.Meta(tenant_id=self.tenant_id, root_id=root_id, producer=self.producer_name, **fields)

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
        """Register the root of a new tree and return whether it was admitted."""
        request = ev.RootAgentRegistered(
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
        """Ask to spawn a child of ``parent_agent_id``; returns the approval or the denial."""
        request = ev.SpawnRequested(
            meta=self.meta(root_id),
            request_id=request_id or uuid.uuid4(),
            parent_agent_id=parent_agent_id,
            child_config=child_config,
            task=ev.TaskSpec(title=task) if isinstance(task, str) else task,
            requested_token_budget=token_budget,
            requested_spawn_budget=spawn_budget,
            max_runtime_ms=max_runtime_ms,
            capabilities=list(capabilities),
        )
        reply = self._ask(request, (ev.SpawnApproved, ev.SpawnDenied))
        assert isinstance(reply, (ev.SpawnApproved, ev.SpawnDenied))
        return reply

    def top_up(
        self, root_id: str, agent_id: str, tokens: int, requested_by: str, reason: str = ""
    ) -> ev.BudgetToppedUp | ev.TopUpDenied:
        """Ask for more tokens for ``agent_id``."""
        request = ev.BudgetTopUpRequested(
            meta=self.meta(root_id),
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

    def _ask(self, request: ev.Event, answers: tuple[type[ev.Event], ...]) -> ev.Event:
        arrived, replies = self._replies.expect(request.meta.event_id, answers)
        try:
            self._producer.publish(request)
            if not arrived.wait(self.timeout):
                raise DecisionTimeout(request, self.timeout)
        finally:
            self._replies.forget(request.meta.event_id)
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
