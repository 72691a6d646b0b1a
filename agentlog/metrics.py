"""Metrics: the instruments of the processors and the projector, recorded per batch, exported by OpenTelemetry.

:mod:`agentlog.telemetry` installs the meter provider (OTLP, and a Prometheus endpoint for
scraping). Without one every instrument is a no-op, and the callers skip the per-record
work altogether (:attr:`ProcessorMetrics.on`). The names, in Prometheus form (as scraped):

==========================================  =====================================================
``agentlog_decisions_total``                outputs of a processor, by ``processor``, ``record``
                                            (SpawnApproved, SpawnDenied, MessageAccepted, ...) and
                                            ``reason`` (a denial's or rejection's, else empty)
``agentlog_decision_latency_milliseconds``  an input's append time to the commit of the
                                            transaction that decided it (histogram)
``agentlog_batch_size``                     inputs per transaction (histogram)
``agentlog_transaction_commit_milliseconds``  sending the offsets and committing (histogram)
``agentlog_consumer_lag``                   records not yet decided, by ``group``, ``topic``,
                                            ``partition`` (the fetcher's last high watermark)
``agentlog_dead_letters_total``             records dead-lettered, by ``stage``
``agentlog_agents_active``                  active agents of the gate's partitions, by ``tenant``
``agentlog_agents_limit``                   the policy's caps: ``scope`` platform, or tenant
                                            (per tenant), 0 when unlimited
``agentlog_projector_rows_total``           records projected, by ``topic``
``agentlog_projector_batch_milliseconds``   writing one batch in PostgreSQL (histogram)
``agentlog_projector_lag``                  records not yet projected, by ``topic``, ``partition``
``agentlog_slo_value`` / ``_breached``      the SLOs (:mod:`agentlog.projections.slo`), by ``slo``
==========================================  =====================================================
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, NoOpMeterProvider, Observation

DECISIONS = "agentlog.decisions"
DECISION_LATENCY = "agentlog.decision.latency"
BATCH_SIZE = "agentlog.batch.size"
COMMIT_DURATION = "agentlog.transaction.commit"
CONSUMER_LAG = "agentlog.consumer.lag"
DEAD_LETTERS = "agentlog.dead_letters"
AGENTS_ACTIVE = "agentlog.agents.active"
AGENTS_LIMIT = "agentlog.agents.limit"
PROJECTOR_ROWS = "agentlog.projector.rows"
PROJECTOR_BATCH = "agentlog.projector.batch"
PROJECTOR_LAG = "agentlog.projector.lag"
SLO_VALUE = "agentlog.slo.value"
SLO_BREACHED = "agentlog.slo.breached"

_LATENCY_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000)
HISTOGRAM_BUCKETS: dict[str, Sequence[float]] = {
    DECISION_LATENCY: _LATENCY_MS,
    COMMIT_DURATION: _LATENCY_MS,
    PROJECTOR_BATCH: _LATENCY_MS,
    BATCH_SIZE: (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
}
"""Bucket bounds of the histograms (the SDK's defaults stop at 10 s and start too coarse for batch sizes)."""

Gauges = dict[str, list[tuple[float, dict[str, str]]]]
"""Values of observable gauges by instrument name, each with its attributes."""


def enabled() -> bool:
    """Whether a meter provider of an SDK is installed (:func:`agentlog.telemetry.configure`)."""
    provider = metrics.get_meter_provider()
    return not isinstance(provider, NoOpMeterProvider) and type(provider).__name__ != "_ProxyMeterProvider"


def meter() -> metrics.Meter:
    return metrics.get_meter("agentlog")


class Snapshot:
    """Gauge values the data path sets now and then and the exporter's thread reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Gauges = {}

    def set(self, values: Gauges) -> None:
        with self._lock:
            self._values.update(values)

    def callback(self, name: str) -> Any:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                values = list(self._values.get(name, ()))
            return [Observation(value, attributes) for value, attributes in values]

        return observe


class ProcessorMetrics:
    """The instruments of one processor worker (:mod:`agentlog.processors.runtime`)."""

    def __init__(self, processor: str, stage: str) -> None:
        self.on = enabled()
        self.processor = processor
        self.stage = stage
        self.snapshot = Snapshot()
        m = meter()
        self._decisions = m.create_counter(DECISIONS, "{decision}", "Outputs of a processor by record and reason")
        self._latency = m.create_histogram(
            DECISION_LATENCY, "ms", "From an input's append time to the commit of the transaction that decided it"
        )
        self._batch = m.create_histogram(BATCH_SIZE, "{record}", "Inputs decided per transaction")
        self._commit = m.create_histogram(COMMIT_DURATION, "ms", "Sending the offsets and committing a transaction")
        self._dead = m.create_counter(DEAD_LETTERS, "{record}", "Records dead-lettered, by stage")
        for name, description in (
            (CONSUMER_LAG, "Records of an input partition not yet decided"),
            (AGENTS_ACTIVE, "Active agents in the gate's partitions, by tenant"),
            (AGENTS_LIMIT, "The policy's cap on active agents, by scope (0: none)"),
        ):
            m.create_observable_gauge(name, [self.snapshot.callback(name)], "{record}", description)
        self._attributes = {"processor": processor}

    def decided(self, outputs: Sequence[Any], reasons: Counter[tuple[str, str]]) -> None:
        """Count one input's outputs into ``reasons`` (flushed once a batch by :meth:`committed`)."""
        for output in outputs:
            reason = getattr(output, "reason", None)
            reasons[(output.avro_name.rsplit(".", 1)[-1], str(getattr(reason, "value", reason or "")))] += 1

    def committed(
        self, appended_ms: Sequence[int], reasons: Counter[tuple[str, str]], commit_ms: float, now_ms: int
    ) -> None:
        """Record one committed batch: its inputs' latencies, its size, its commit time, its outputs."""
        attributes = self._attributes
        for (record, reason), count in reasons.items():
            self._decisions.add(count, {"processor": self.processor, "record": record, "reason": reason})
        for appended in appended_ms:
            if appended >= 0:
                self._latency.record(max(now_ms - appended, 0), attributes)
        if appended_ms:  # a timer's tick alone is not a batch of inputs
            self._batch.record(len(appended_ms), attributes)
        self._commit.record(commit_ms, attributes)

    def dead_lettered(self) -> None:
        self._dead.add(1, {"stage": self.stage})


class ProjectorMetrics:
    """The instruments of one projector."""

    def __init__(self) -> None:
        self.on = enabled()
        self.snapshot = Snapshot()
        m = meter()
        self._rows = m.create_counter(PROJECTOR_ROWS, "{record}", "Records projected into PostgreSQL, by topic")
        self._batch = m.create_histogram(PROJECTOR_BATCH, "ms", "Writing one batch in one PostgreSQL transaction")
        self._dead = m.create_counter(DEAD_LETTERS, "{record}", "Records dead-lettered, by stage")
        m.create_observable_gauge(
            PROJECTOR_LAG, [self.snapshot.callback(PROJECTOR_LAG)], "{record}", "Records not yet projected"
        )

    def written(self, rows_by_topic: Counter[str], took_ms: float, dead_letters: int) -> None:
        for topic, count in rows_by_topic.items():
            self._rows.add(count, {"topic": topic})
        self._batch.record(took_ms)
        if dead_letters:
            self._dead.add(dead_letters, {"stage": "projections"})
