"""W3C trace context in Kafka headers: the one place that injects and extracts it."""

from __future__ import annotations

from opentelemetry import context, propagate

from agentlog.records import Headers


def inject(headers: Headers) -> Headers:
    """Append the current span's ``traceparent``/``tracestate`` (if a span is active)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return headers + [(k, v.encode()) for k, v in carrier.items()]


def extract(headers: Headers | None) -> context.Context:
    """The trace context carried by record headers (empty when there is none)."""
    carrier = {k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in headers or [] if v is not None}
    return propagate.extract(carrier)
