"""The projector: every agentlog topic into PostgreSQL, each event exactly once.

Positions live in PostgreSQL (``projector_positions``), never in Kafka: on every
partition assignment the projector reads them and seeks there, and every batch moves
them in the same transaction as its rows (:mod:`agentlog.projections.writer` lists the steps).
Offsets are also committed to Kafka after each batch, for lag monitoring only.

Reading and writing overlap: while batch N is written (one writer thread, one
connection), batch N+1 is read and built from the positions N will leave. N+1 is handed
to the writer only once N has committed; if N failed, N+1 is dropped with it. A
rebalance waits for the batch in flight before the partitions are given up.

Failures never lose or repeat a record:

* the database goes away: the batch's transaction is rolled back; the projector waits
  (exponential backoff), reads the stored positions again and seeks back to them;
* another projector got there first (a rebalance raced a batch): same, without waiting;
* a record does not decode or does not belong on its topic: it gets an audit row that
  says why and is dead-lettered to ``agentlog.dlq``. The dead letter is produced and
  flushed *before* the batch commits, so it cannot be lost; after a crash between the
  two it is produced again (the dead-letter topic is at-least-once; duplicates carry the
  same source topic/partition/offset headers). The audit log itself stays exactly-once.

Several projectors may share the work with one ``group.id``; Kafka spreads the
partitions, PostgreSQL fences the positions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka import TopicPartition as KafkaPartition

from agentlog import kafka_config, tracing
from agentlog.dead_letters import dlq_topic
from agentlog.errors import DeliveryError
from agentlog.metrics import PROJECTOR_LAG, ProjectorMetrics
from agentlog.projections.batch import Batch, PartitionState, TopicPartition, build_batch
from agentlog.projections.checkpoints import Checkpointer
from agentlog.projections.db import DEFAULT_SCHEMA, PROJECTOR_ROLE
from agentlog.projections.errors import DatabaseUnavailableError, ProjectionError, StalePositionsError
from agentlog.projections.writer import BatchWriter
from agentlog.records import Record
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import CATALOGUE

log = logging.getLogger("agentlog.projector")


PROJECTOR_GROUP = "agentlog-projector"
"""The projectors' consumer group, under the topic prefix, unless one is named."""


@dataclass(frozen=True)
class ProjectorOptions:
    """How a projector runs."""

    schema: str = DEFAULT_SCHEMA
    """Target schema (must be migrated)."""
    group_id: str | None = None
    """Consumer group; projectors with the same group share the partitions (None: ``<prefix>agentlog-projector``).

    Only the partitions' distribution depends on it: positions are kept in PostgreSQL."""
    instance_id: str | None = None
    """Static group membership: a restarted projector with the same id takes its partitions back at once."""
    batch_size: int = 5000
    """Records per batch at most."""
    batch_timeout_ms: int = 100
    """How long to wait for a batch to fill."""
    role: str | None = PROJECTOR_ROLE
    """Role to write as (``SET ROLE``); ``None`` keeps the connecting user."""
    idle_exit_s: float | None = None
    """Stop after this long without new records (demos and tests); ``None``: run until stopped."""
    max_backoff_s: float = 10.0
    session_timeout_ms: int = 10_000
    dead_letters: bool = True
    """Produce a dead letter for each record that cannot be projected; a rebuild does not (the live one did)."""
    checkpoint_interval_s: float | None = None
    """Publish audit checkpoints of the committed positions this often (:mod:`agentlog.projections.checkpoints`);
    None: none (``agentlog projector run`` publishes them every 10 s unless told not to)."""


@dataclass
class ProjectorStats:
    """What a run did."""

    records: int = 0
    batches: int = 0
    dead_letters: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _InFlight:
    """When the batch in flight was handed to the writer, and its span."""

    started: float
    span: tracing.BatchSpan | None


class Projector:
    """Consumes every catalogue topic and writes the projections. Call :meth:`run`."""

    def __init__(
        self,
        settings: Settings,
        options: ProjectorOptions | None = None,
        *,
        serde: Serde | None = None,
        writer: BatchWriter | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or ProjectorOptions()
        self.serde = serde or Serde.from_settings(settings)
        self.writer = writer or BatchWriter(settings, self.options.schema, self.options.role)
        self.stats = ProjectorStats()
        self._states: dict[TopicPartition, PartitionState] = {}
        """Committed position of every owned partition."""
        self._ahead: dict[TopicPartition, PartitionState] = {}
        """Positions once the batch in flight commits: where the next batch starts."""
        self._pending: tuple[Batch, Future[None], _InFlight] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="projector-writer")
        self._stop = threading.Event()
        self._backoff = 0.0
        self._dlq: KafkaProducer | None = None
        self._last_activity: float | None = None
        """When a record was last read or partitions last assigned; ``None`` before the first assignment."""
        self.metrics = ProjectorMetrics()
        self._observed = 0.0
        interval = self.options.checkpoint_interval_s
        self.checkpoints = (
            Checkpointer(settings, self.options.schema, self._member(), interval, self.writer.row_counts)
            if interval is not None
            else None
        )

    def topics(self) -> list[str]:
        """Deployed names of every topic projected: the whole catalogue, dead letters included."""
        return [self.settings.topic_prefix + spec.name for spec in CATALOGUE]

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in progress."""
        self._stop.set()

    def run(self) -> ProjectorStats:
        """Project until :meth:`stop` is called or, with ``idle_exit_s``, until the topics are quiet."""
        self.writer.connection()  # fail fast on a schema that is not migrated
        consumer = Consumer(self._consumer_config())
        consumer.subscribe(self.topics(), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)
        try:
            while not self._stop.is_set():
                messages = consumer.consume(self.options.batch_size, self.options.batch_timeout_ms / 1000)
                records = [r for r in (self._record(m) for m in messages) if r is not None]
                if records:
                    self._last_activity = time.monotonic()
                    self._project(consumer, records)
                else:
                    self._settle(consumer)
                    if self._idle():
                        break
                if self.metrics.on and time.monotonic() - self._observed >= 1.0:
                    try:
                        self._observe(consumer)
                    except KafkaException as e:  # a gauge left as it was is no reason to stop projecting
                        log.debug("metrics: %s", e)
            self._settle(consumer)
        finally:
            self._executor.shutdown(wait=True)
            consumer.close()
            self.writer.close()
        return self.stats

    def _idle(self) -> bool:
        idle_exit = self.options.idle_exit_s
        if idle_exit is None or self._last_activity is None:
            return False
        return time.monotonic() - self._last_activity > idle_exit

    def _group(self) -> str:
        return self.options.group_id or self.settings.topic_prefix + PROJECTOR_GROUP

    def _member(self) -> str:
        """Who attests: the group, and the instance id when there is one."""
        instance = self.options.instance_id
        return self._group() + (f"/{instance}" if instance else "")

    def _consumer_config(self) -> dict[str, object]:
        config = {
            **kafka_config.reader(self.settings, self._group()),
            "session.timeout.ms": self.options.session_timeout_ms,
            "heartbeat.interval.ms": max(500, self.options.session_timeout_ms // 10),
            "fetch.wait.max.ms": 50,
        }
        if self.options.instance_id is not None:
            config["group.instance.id"] = self.options.instance_id
        return config

    def _record(self, message: Message) -> Record | None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise ProjectionError(f"consumer failed: {error.str()}")
            log.warning("consumer: %s", error.str())
            return None
        return Record.from_message(message)

    def _project(self, consumer: Consumer, records: list[Record]) -> None:
        """Build a batch (while the previous one is being written), then hand it to the writer thread."""
        batch = build_batch(records, self._ahead, self.serde, self.settings.topic_prefix)
        if not batch:
            return
        if not self._settle(consumer):
            return  # the batch before failed and the consumer was sent back: this one is void
        try:
            if self.options.dead_letters:
                self._dead_letter(batch)
        except DeliveryError as e:
            self._failed(consumer, e)
            return
        in_flight = _InFlight(time.monotonic(), self._batch_span(records) if tracing.enabled() else None)
        self._pending = (batch, self._executor.submit(self.writer.write, batch), in_flight)
        self._ahead.update(batch.end)

    def _batch_span(self, records: list[Record]) -> tracing.BatchSpan:
        """The ``process`` span of a batch, linked to (or a child in the trace of) its records' contexts."""
        return tracing.batch_span(
            "process agentlog-projector",
            self._group(),
            records,
            [tracing.traceparent_of(r.headers) for r in records],
            attributes={"db.system": "postgresql", "db.system.name": "postgresql", "db.namespace": self.options.schema},
            max_links=tracing.PROJECTOR_MAX_LINKS,
        )

    def _settle(self, consumer: Consumer, *, resync: bool = True) -> bool:
        """Wait for the batch in flight; account for it, or re-seek after its failure. True if it committed."""
        if self._pending is None:
            return True
        batch, future, in_flight = self._pending
        self._pending = None
        try:
            future.result()
        except (StalePositionsError, DatabaseUnavailableError) as e:
            if in_flight.span is not None:
                in_flight.span.failed(e)
                in_flight.span.end()
            if isinstance(e, DatabaseUnavailableError):
                if resync:
                    self._failed(consumer, e)
                return False
            log.info("re-seeking: %s", e)
            self.stats.retries += 1
            if resync:
                self._resync(consumer)
            return False
        self._committed(batch, in_flight)
        if self.checkpoints is not None:
            try:
                self.checkpoints.committed(batch)
            except DatabaseUnavailableError as e:  # counted next time; the rows are committed either way
                log.warning("audit checkpoints: %s", e)
        self._backoff = 0.0
        self._states.update(batch.end)
        self.stats.records += len(batch)
        self.stats.batches += 1
        self.stats.dead_letters += len(batch.dead_letters)
        committed = [KafkaPartition(t, p, s.next_offset) for (t, p), s in batch.end.items()]
        try:
            consumer.commit(offsets=committed, asynchronous=True)  # for lag monitoring only
        except KafkaException as e:
            log.debug("monitoring commit failed: %s", e)
        return True

    def _committed(self, batch: Batch, in_flight: _InFlight) -> None:
        """Account for a committed batch in its span and the metrics."""
        took_ms = (time.monotonic() - in_flight.started) * 1000
        if in_flight.span is not None:
            in_flight.span.end(**{"agentlog.audit_rows": len(batch)})
        if self.metrics.on:
            self.metrics.written(Counter(row[0] for row in batch.audit_rows), took_ms, len(batch.dead_letters))

    def _observe(self, consumer: Consumer) -> None:
        """Set the lag gauge: each owned partition's records not yet projected (the fetcher's high watermark)."""
        self._observed = time.monotonic()
        lags: list[tuple[float, dict[str, str]]] = []
        for (topic, partition), state in self._states.items():
            low, high = consumer.get_watermark_offsets(KafkaPartition(topic, partition), cached=True)
            if high >= 0:
                lags.append((max(high - max(state.next_offset, low), 0), {"topic": topic, "partition": str(partition)}))
        self.metrics.snapshot.set({PROJECTOR_LAG: lags})

    def _failed(self, consumer: Consumer, error: ProjectionError | DeliveryError) -> None:
        """Back off, then send the consumer back to the stored positions."""
        self.stats.retries += 1
        self.stats.errors.append(str(error))
        self._backoff = min(self.options.max_backoff_s, max(0.2, self._backoff * 2))
        log.warning("batch not written (%s); retrying in %.1fs", error, self._backoff)
        self._stop.wait(self._backoff)
        self._resync(consumer)

    def _dead_letter(self, batch: Batch) -> None:
        """Produce the batch's dead letters and wait for every acknowledgement (raises on failure)."""
        if not batch.dead_letters:
            return
        if self._dlq is None:
            self._dlq = KafkaProducer(kafka_config.producer(self.settings))
        failures: list[str] = []

        def on_delivery(err: KafkaError | None, _message: Message) -> None:
            if err is not None:
                failures.append(err.str())

        topic = dlq_topic(self.settings.topic_prefix)
        for dead, headers in batch.dead_letters:
            original = cast("list[tuple[str, bytes]]", headers)  # null header values pass through unchanged
            key, value, all_headers = dead.record(original)
            try:
                self._dlq.produce(topic, value, key, headers=cast(Any, all_headers), on_delivery=on_delivery)
            except BufferError:
                self._dlq.flush(30)  # the local queue is full: drain it, then queue this one
                self._dlq.produce(topic, value, key, headers=cast(Any, all_headers), on_delivery=on_delivery)
            except KafkaException as e:
                raise DeliveryError(f"cannot queue a dead letter for {topic}: {e}", topic=topic) from e
        remaining = self._dlq.flush(30)
        if failures or remaining:
            raise DeliveryError(f"{len(failures) + remaining} dead letters not delivered to {topic}", topic=topic)

    def _load_positions(self, partitions: list[TopicPartition]) -> dict[TopicPartition, PartitionState]:
        """Stored positions, waiting (with backoff) until the database answers."""
        delay = 0.2
        while True:
            try:
                return self.writer.load_positions(partitions)
            except DatabaseUnavailableError as e:
                if self._stop.is_set():
                    raise
                log.warning("cannot read positions (%s); retrying in %.1fs", e, delay)
                self.stats.retries += 1
                self._stop.wait(delay)
                delay = min(self.options.max_backoff_s, delay * 2)

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        self._settle(consumer, resync=False)
        states = self._load_positions([(p.topic, p.partition) for p in partitions])
        for p in partitions:
            state = states[(p.topic, p.partition)]
            p.offset = state.next_offset if state.next_offset > 0 else OFFSET_BEGINNING
        self._states = states
        self._ahead = dict(states)
        self._last_activity = time.monotonic()
        log.info("assigned %d partitions", len(partitions))
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        self._settle(consumer, resync=False)  # the batch in flight commits (or not) before others take over
        if self.checkpoints is not None:
            self.checkpoints.forget((p.topic, p.partition) for p in partitions)
        for p in partitions:
            self._states.pop((p.topic, p.partition), None)
            self._ahead.pop((p.topic, p.partition), None)
        consumer.unassign()

    def _resync(self, consumer: Consumer) -> None:
        """Forget what was read since the last commit: seek every owned partition to its stored position."""
        states = self._load_positions(list(self._states))
        self._states = states
        self._ahead = dict(states)
        targets = [
            KafkaPartition(t, p, s.next_offset if s.next_offset > 0 else OFFSET_BEGINNING)
            for (t, p), s in states.items()
        ]
        try:
            for target in targets:
                consumer.seek(target)
        except KafkaException:
            consumer.assign(targets)  # not yet fetching: assigning with offsets has the same effect
