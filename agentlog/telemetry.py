"""Turning OpenTelemetry on: traces and metrics from the standard ``OTEL_*`` variables, off unless configured.

Every agentlog process (the CLI, the processors, the projector, an SDK client when its
application set up nothing of its own) calls :func:`configure` once at start. It reads:

- ``OTEL_SDK_DISABLED=true``: nothing at all.
- ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: ``otlp``, ``console``, ``none``
  (metrics also ``prometheus``), comma-separated. Unset, they are ``otlp`` when an OTLP
  endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or the signal's own), else off.
- ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or the signal's own): ``http/protobuf`` (the default) or
  ``grpc``; the exporters read the endpoint, headers, timeout and certificates themselves.
- ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` (the default service name is the
  process's: ``agentlog-gate``, ``agentlog-projector``, ...), ``OTEL_TRACES_SAMPLER`` and
  ``OTEL_TRACES_SAMPLER_ARG``, ``OTEL_BSP_*``, ``OTEL_METRIC_EXPORT_INTERVAL``.
- A Prometheus endpoint for scraping (``metrics_port``, a process's ``--metrics-port`` or
  ``AGENTLOG_METRICS_PORT``; or ``prometheus`` in ``OTEL_METRICS_EXPORTER`` with
  ``OTEL_EXPORTER_PROMETHEUS_HOST``/``_PORT``, default ``localhost:9464``).

Nothing is imported when nothing is configured: the SDK and the exporters load only for the
signals that are on, so a CLI command starts as fast without a collector as before.
Exporting never blocks the data path: spans and metrics are exported by background
threads, a collector that is away or hangs costs dropped spans, and the flush at exit is
bounded (:data:`EXIT_FLUSH_S`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from agentlog.errors import TelemetryConfigError

log = logging.getLogger("agentlog.telemetry")

EXIT_FLUSH_S = 3.0
"""At most this long is spent exporting what is left when a process exits."""
MAX_LINKS = 20_000
"""Links a span may carry (unless ``OTEL_SPAN_LINK_COUNT_LIMIT`` says): a processor's batch span links every traced
input of its batch."""
DEFAULT_PROMETHEUS_PORT = 9464


@dataclass
class Telemetry:
    """What :func:`configure` turned on."""

    service_name: str = ""
    traces: list[str] = field(default_factory=list)
    """Trace exporters in use (empty: tracing is off, or the application's own provider is used)."""
    metrics: list[str] = field(default_factory=list)
    """Metric exporters in use (``prometheus`` included when an endpoint is served)."""
    prometheus: tuple[str, int] | None = None
    """Host and port of the Prometheus endpoint, when one is served."""
    providers: list[Any] = field(default_factory=list)


_configured: list[Telemetry] = []
"""The configuration, once :func:`configure` ran (a process has one: providers can be installed once)."""
_lock = threading.Lock()


def configure(service_name: str, *, metrics_port: int | None = None) -> Telemetry:
    """Set up the tracer and meter providers the environment asks for (the first call wins)."""
    with _lock:
        if _configured:
            return _configured[0]
        state = Telemetry(service_name)
        _configured.append(state)
        if _env_flag("OTEL_SDK_DISABLED"):
            return state
        if metrics_port is None and os.environ.get("AGENTLOG_METRICS_PORT"):
            metrics_port = _port("AGENTLOG_METRICS_PORT", os.environ["AGENTLOG_METRICS_PORT"])
        traces = _exporters("OTEL_TRACES_EXPORTER", "TRACES")
        metrics = _exporters("OTEL_METRICS_EXPORTER", "METRICS")
        if metrics_port is not None and "prometheus" not in metrics:
            metrics.append("prometheus")
        if traces or metrics:
            resource = _resource(service_name)
            if traces:
                _configure_traces(state, resource, traces)
            if metrics:
                _configure_metrics(state, resource, metrics, metrics_port)
            atexit.register(shutdown)
        return state


def current() -> Telemetry:
    """What is configured (nothing before :func:`configure`)."""
    return _configured[0] if _configured else Telemetry()


def shutdown(timeout_s: float = EXIT_FLUSH_S) -> None:
    """Export what is left and stop the exporters, waiting at most ``timeout_s`` (a hung collector loses it)."""
    state = current()
    if not state.providers:
        return
    providers, state.providers = state.providers, []

    def stop() -> None:
        for provider in providers:
            try:
                provider.shutdown()
            except Exception as e:  # an exporter failing at exit must not change the exit status
                log.debug("telemetry shutdown: %s", e)

    worker = threading.Thread(target=stop, name="agentlog-telemetry-shutdown", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        log.warning("telemetry: the collector did not take the last spans and metrics within %.0fs", timeout_s)


# -- the parts ---------------------------------------------------------------------------


def _configure_traces(state: Telemetry, resource: Any, exporters: list[str]) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if _has_sdk_provider(trace.get_tracer_provider()):
        log.info("telemetry: the application's tracer provider is used")
        return
    links = MAX_LINKS if "OTEL_SPAN_LINK_COUNT_LIMIT" not in os.environ else None  # None: the variable's
    provider = TracerProvider(resource=resource, span_limits=SpanLimits(max_links=links), shutdown_on_exit=False)
    for name in exporters:
        provider.add_span_processor(BatchSpanProcessor(_span_exporter(name)))
    trace.set_tracer_provider(provider)
    state.traces = exporters
    state.providers.append(provider)


def _span_exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if _protocol("TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    return HttpSpanExporter()


def _configure_metrics(state: Telemetry, resource: Any, exporters: list[str], port: int | None) -> None:
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    readers: list[MetricReader] = []
    for name in exporters:
        if name == "prometheus":
            readers.append(_prometheus_reader(state, port))
        elif name == "console":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        elif _protocol("METRICS") == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

            readers.append(PeriodicExportingMetricReader(HttpExporter()))
    from agentlog.metrics import HISTOGRAM_BUCKETS

    views = [
        View(instrument_name=name, aggregation=ExplicitBucketHistogramAggregation(buckets))
        for name, buckets in HISTOGRAM_BUCKETS.items()
    ]
    provider = MeterProvider(metric_readers=readers, resource=resource, views=views, shutdown_on_exit=False)
    metrics.set_meter_provider(provider)
    state.metrics = exporters
    state.providers.append(provider)


def _prometheus_reader(state: Telemetry, port: int | None) -> Any:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    host = os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
    if port is None:
        port = _port("OTEL_EXPORTER_PROMETHEUS_PORT", os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", ""))
    reader = PrometheusMetricReader()
    start_http_server(port, addr=host)
    state.prometheus = (host, port)
    log.info("metrics: Prometheus endpoint on http://%s:%d/metrics", host, port)
    return reader


def _resource(service_name: str) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create({})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    return resource


def _exporters(variable: str, signal: str) -> list[str]:
    """The exporters a signal's variable names; unset: ``otlp`` when an OTLP endpoint is configured, else none."""
    value = os.environ.get(variable)
    if value is None:
        endpoint = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    known = {"otlp", "console", "none"} | ({"prometheus"} if signal == "METRICS" else set())
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    for name in names:
        if name not in known:
            raise TelemetryConfigError(f"{variable}={value!r}: {name!r} is not one of {', '.join(sorted(known))}")
    return [name for name in dict.fromkeys(names) if name != "none"]


def _protocol(signal: str) -> str:
    value = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if value not in ("grpc", "http/protobuf"):
        raise TelemetryConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={value!r}: expected grpc or http/protobuf")
    return value


def _port(variable: str, value: str) -> int:
    if not value:
        return DEFAULT_PROMETHEUS_PORT
    try:
        port = int(value)
    except ValueError:
        raise TelemetryConfigError(f"{variable}={value!r}: not a port number") from None
    if not 0 <= port <= 65535:
        raise TelemetryConfigError(f"{variable}={value!r}: not a port number")
    return port


def _env_flag(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() == "true"


def _has_sdk_provider(provider: object) -> bool:
    from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

    return not isinstance(provider, ProxyTracerProvider | NoOpTracerProvider)
