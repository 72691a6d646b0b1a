"""Traces: W3C trace context in Kafka headers, the SDK's send spans and the processors' batch spans, in one place.

The pure cores know nothing of tracing: the produce wrapper (:mod:`agentlog.producer`), the
processor runtime and the projector call this module.

- **send**: a span per publish call of the SDK and the CLI (kind PRODUCER), whose context
  every record of the call carries in its ``traceparent`` header.
- **process**: a span per batch a processor decides or the projector writes (kind
  CONSUMER), not per record (a span costs ≈ 90 µs of CPU here, a link ≈ 10 µs with its
  export). When every traced input of the batch belongs to one trace, the span is a child in
  it (a lone request, or one agent's burst); otherwise it starts its own trace and links the
  inputs' contexts: every one in a processor's span, at most :data:`PROJECTOR_MAX_LINKS` in
  the projector's (whose cost per record is a fifth of the gate's; its rows keep each
  record's ``traceparent``, so ``agentlog audit show --trace`` finds a trace's rows).
- Each output carries its cause's context onward: the batch span's when that span is in the
  cause's trace (or the cause had none: a trace starts at the processor), else the cause's
  own. So a request, its decision and their audit rows share the request's trace.

Attributes follow the OpenTelemetry messaging conventions for Kafka, with the older names
beside the current ones while the conventions are in transition, the GenAI agent
conventions where they fit, and agentlog's own namespace (:func:`event_attributes`).
Everything here costs nothing but a provider check when no tracer provider is configured.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, NonRecordingSpan, ProxyTracerProvider, Span, SpanContext, SpanKind, TraceFlags

from agentlog.records import Headers

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_TRACEPARENT_FORMAT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
"""W3C trace context: version-trace id-parent id-flags (a later version may append fields after a dash)."""

# The OpenTelemetry messaging conventions (Kafka), current names and the older ones still in wide use.
MESSAGING_SYSTEM = "messaging.system"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
OPERATION_OLD = "messaging.operation"
DESTINATION = "messaging.destination.name"
PARTITION = "messaging.destination.partition.id"
PARTITION_OLD = "messaging.kafka.destination.partition"
OFFSET = "messaging.kafka.offset"
OFFSET_OLD = "messaging.kafka.message.offset"
MESSAGE_KEY = "messaging.kafka.message.key"
MESSAGE_ID = "messaging.message.id"
CONSUMER_GROUP = "messaging.consumer.group.name"
CONSUMER_GROUP_OLD = "messaging.kafka.consumer.group"
BATCH_COUNT = "messaging.batch.message_count"
# The GenAI agent conventions.
AGENT_ID = "gen_ai.agent.id"
AGENT_NAME = "gen_ai.agent.name"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
# agentlog's own.
ROOT_ID = "agentlog.root_id"
TENANT_ID = "agentlog.tenant_id"
DEPTH = "agentlog.depth"
POLICY_VERSION = "agentlog.policy.version"
DECISION = "agentlog.decision"
DENIAL_REASON = "agentlog.denial_reason"
RECORD = "agentlog.record"
TOPICS = "agentlog.topics"
PARTITIONS = "agentlog.partitions"
LINKED = "agentlog.linked_traces"
LINKS_LEFT_OUT = "agentlog.links_left_out"

_TRACER_NAME = "agentlog"
PROJECTOR_MAX_LINKS = 128
"""Links of a projector batch span at most (OpenTelemetry's default span link limit)."""


def enabled() -> bool:
    """Whether spans are recorded: a tracer provider of an SDK is installed (agentlog's or the application's)."""
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider | trace.NoOpTracerProvider)


def tracer() -> trace.Tracer:
    return trace.get_tracer(_TRACER_NAME)


# -- context in headers ------------------------------------------------------------------


def inject(headers: Headers) -> Headers:
    """Append the current span's trace context (if a span is active), by the configured propagators."""
    if not trace.get_current_span().get_span_context().is_valid:
        return headers
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return headers + [(k, v.encode()) for k, v in carrier.items()]


def traceparent_of(headers: Headers | None) -> bytes | None:
    """The record's ``traceparent`` when it is a valid W3C one (anything else is ignored, never forwarded)."""
    for key, value in headers or ():
        if key == TRACEPARENT:
            raw = value.encode("latin-1") if isinstance(value, str) else value
            if raw is None or not 55 <= len(raw) <= 128:
                return None
            match = _TRACEPARENT_FORMAT.match(raw)
            if match is None or match[1] == b"ff" or (match[1] == b"00" and len(raw) != 55):
                return None
            if match[2] == b"0" * 32 or match[3] == b"0" * 16:
                return None
            return raw[:55] if match[1] == b"00" else raw
    return None


def span_context_of(traceparent: bytes) -> SpanContext:
    """The remote span context a valid ``traceparent`` names."""
    return SpanContext(
        int(traceparent[3:35], 16), int(traceparent[36:52], 16), True, TraceFlags(int(traceparent[53:55], 16))
    )


def traceparent(span_context: SpanContext) -> bytes:
    """The W3C ``traceparent`` of a span context."""
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}".encode()


# -- send --------------------------------------------------------------------------------


@contextmanager
def sending(topics: Iterable[str], count: int, first: Any = None) -> Iterator[Span | None]:
    """A ``send`` span around one publish call of ``count`` records (none when tracing is off).

    ``first``: the call's first event, whose attributes the span takes when it sends one record.
    """
    if not enabled():
        yield None
        return
    names = sorted(set(topics))
    attributes: dict[str, Any] = {
        MESSAGING_SYSTEM: "kafka",
        OPERATION_TYPE: "send",
        OPERATION_NAME: "send",
        OPERATION_OLD: "publish",
        BATCH_COUNT: count,
    }
    if len(names) == 1:
        attributes[DESTINATION] = names[0]
    elif names:
        attributes[TOPICS] = names
    if count == 1 and first is not None:
        attributes.update(event_attributes(first))
        attributes[MESSAGE_ID] = str(first.meta.event_id)
    name = f"send {names[0]}" if len(names) == 1 else "send"
    with tracer().start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attributes) as span:
        yield span


def delivered(span: Span | None, deliveries: Sequence[Any]) -> None:
    """Name where the record of a send span was written, when it sent one (``deliveries``: the producer's)."""
    if span is not None and len(deliveries) == 1 and span.is_recording():
        partition, offset = deliveries[0].partition, deliveries[0].offset
        span.set_attributes({PARTITION: str(partition), PARTITION_OLD: partition, OFFSET: offset, OFFSET_OLD: offset})


# -- process -----------------------------------------------------------------------------


class BatchSpan:
    """The ``process`` span of one batch, and the trace context each of its outputs carries onward."""

    __slots__ = ("_own", "single", "span")

    def __init__(
        self, name: str, causes: Sequence[bytes | None], attributes: dict[str, Any], max_links: int | None = None
    ) -> None:
        """Start the span of a batch whose inputs carry ``causes`` (their valid ``traceparent`` or None).

        ``max_links``: link at most this many of the inputs' contexts (None: every one); the span says how many
        traces its inputs belonged to and how many links it left out.
        """
        distinct = list(dict.fromkeys(c for c in causes if c is not None))
        traces = {c[3:35] for c in distinct}
        parent: context.Context | None = None
        if len(traces) == 1:
            parent = trace.set_span_in_context(NonRecordingSpan(span_context_of(distinct[0])))
            linked = distinct[1:]
        else:
            parent = context.Context()  # a trace of its own, never the caller's current span
            linked = distinct
        left_out = max(len(linked) - max_links, 0) if max_links is not None else 0
        links = [Link(span_context_of(c)) for c in linked[: len(linked) - left_out]]
        attributes = {
            MESSAGING_SYSTEM: "kafka",
            OPERATION_TYPE: "process",
            OPERATION_NAME: "process",
            OPERATION_OLD: "process",
            BATCH_COUNT: len(causes),
            LINKED: len(traces) if len(traces) > 1 else 0,
            LINKS_LEFT_OUT: left_out,
            **attributes,
        }
        self.span = tracer().start_span(
            name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links
        )
        own = self.span.get_span_context()
        self._own = traceparent(own) if own.is_valid else None
        self.single = len(causes) == 1
        """Whether the batch has one input (the span then takes the attributes of what it decided)."""

    def carried(self, cause: bytes | None) -> bytes | None:
        """The ``traceparent`` an output of an input with ``cause`` carries (None: no trace)."""
        own = self._own
        if cause is None or own is None:
            return own if cause is None else cause
        return own if cause[3:35] == own[3:35] else cause

    def describe(self, outputs: Sequence[Any]) -> None:
        """Name what a batch of one input decided (its first output's attributes)."""
        if outputs and self.span.is_recording():
            self.span.set_attributes(event_attributes(outputs[0]))

    def failed(self, error: BaseException) -> None:
        self.span.record_exception(error)
        self.span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))

    def end(self, **attributes: Any) -> None:
        if attributes:
            self.span.set_attributes(attributes)
        self.span.end()


def batch_span(
    name: str,
    group: str,
    records: Sequence[Any],
    causes: Sequence[bytes | None],
    *,
    topics: Sequence[str] | None = None,
    attributes: dict[str, Any] | None = None,
    max_links: int | None = None,
) -> BatchSpan:
    """The ``process`` span of a consumer group's batch of ``records`` (each with ``topic``, ``partition``,
    ``offset``, ``key``), whose contexts are ``causes`` (:func:`traceparent_of` of each); ``topics``: the group's
    input topics (default: the records')."""
    every = consumer_attributes(
        group, topics if topics is not None else [r.topic for r in records], [r.partition for r in records]
    )
    if len(records) == 1:
        every.update(record_attributes(records[0]))
    every.update(attributes or {})
    return BatchSpan(name, causes, every, max_links)


def consumer_attributes(group: str, topics: Sequence[str], partitions: Sequence[int]) -> dict[str, Any]:
    """The messaging attributes of a consumer group's batch over ``topics`` and ``partitions``."""
    attributes: dict[str, Any] = {CONSUMER_GROUP: group, CONSUMER_GROUP_OLD: group}
    names = sorted(set(topics))
    if len(names) == 1:
        attributes[DESTINATION] = names[0]
    attributes[TOPICS] = names
    numbers = sorted(set(partitions))
    if len(numbers) == 1:
        attributes[PARTITION] = str(numbers[0])
        attributes[PARTITION_OLD] = numbers[0]
    attributes[PARTITIONS] = numbers
    return attributes


def record_attributes(record: Any) -> dict[str, Any]:
    """The messaging attributes of the one record a batch holds: where it is, its key."""
    attributes: dict[str, Any] = {
        DESTINATION: record.topic,
        PARTITION: str(record.partition),
        PARTITION_OLD: record.partition,
        OFFSET: record.offset,
        OFFSET_OLD: record.offset,
    }
    if record.key is not None:
        attributes[MESSAGE_KEY] = record.key.decode("utf-8", "replace")
    return attributes


# -- what an event says ------------------------------------------------------------------

_DECISIONS = {
    "SpawnApproved": "approved",
    "SpawnDenied": "denied",
    "RootAdmitted": "admitted",
    "RootRejected": "rejected",
    "MessageAccepted": "accepted",
    "MessageRejected": "rejected",
    "TopUpDenied": "denied",
    "BudgetToppedUp": "approved",
}


def event_attributes(event: Any) -> dict[str, Any]:
    """The GenAI and agentlog attributes an event gives a span: its tree, agent, depth, policy and outcome."""
    meta = event.meta
    short = event.avro_name.rsplit(".", 1)[-1]
    attributes: dict[str, Any] = {RECORD: short, ROOT_ID: meta.root_id, TENANT_ID: meta.tenant_id}
    agent = getattr(event, "child_agent_id", None) or getattr(event, "agent_id", None)
    agent = agent or getattr(event, "parent_agent_id", None) or getattr(event, "sender", None)
    if isinstance(agent, str):
        attributes[AGENT_ID] = agent
    config = getattr(event, "child_config", None) or getattr(event, "agent_config", None)
    if isinstance(config, str):
        attributes[AGENT_NAME] = config
    depth = getattr(event, "depth", None)
    if isinstance(depth, int):
        attributes[DEPTH] = depth
    version = getattr(event, "policy_version", None)
    if isinstance(version, int):
        attributes[POLICY_VERSION] = version
    if short in _DECISIONS:
        attributes[DECISION] = _DECISIONS[short]
        reason = getattr(event, "reason", None)
        if reason is not None and attributes[DECISION] in ("denied", "rejected"):
            attributes[DENIAL_REASON] = str(getattr(reason, "value", reason))
    for name, key in ((INPUT_TOKENS, "input_tokens"), (OUTPUT_TOKENS, "output_tokens")):
        value = getattr(event, key, None)
        if isinstance(value, int):
            attributes[name] = value
    return attributes
