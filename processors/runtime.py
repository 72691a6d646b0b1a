"""The processor runtime: exactly-once stream processing on Kafka transactions for any deterministic processor.

A :class:`Processor` brings a pure core — ``decide(state, input)`` and a timer
``expire(state, now)`` over one partition's state — and says how that state is written to
and restored from its compacted changelog. The runtime owns the rest: the clients,
buffering and back-pressure, the deterministic merge of the co-partitioned inputs
(:mod:`agentlog.processors.input_merge`), end confirmation, the timer, the transaction,
dead letters, retries, recovery and rebalancing. The spawn gate
(:mod:`agentlog.processors.gate_worker`) is one processor.

Exactly-once holds by Kafka transactions (KIP-447) around the deterministic core. Each batch:

1. Fetch records of the assigned partitions of the input topics (``read_committed``) and
   buffer them per partition in a :class:`~agentlog.processors.input_merge.PartitionMerge`.
2. Release, per partition, the records whose order is settled (append time, topic, offset).
3. Begin a transaction. Decide each released record with the processor's pure core on the
   partition's state, and produce its outputs to the same partition of its output topic.
   Records the processor cannot read (:class:`Unreadable`) go to ``agentlog.dlq`` in the
   same transaction.
4. When the partition's inputs are complete up to a moment, run the processor's timer as
   of that moment.
5. Write what the batch changed of the state to the processor's compacted changelog (same
   partition).
6. Add the next input offsets (the first unreleased record, or after the last released
   one) to the transaction with the consumer's group metadata, and commit.

Outputs, state and input offsets therefore become visible together or not at all. A
worker killed anywhere leaves an open transaction that is aborted (by its successor with
the same transactional id at ``init_transactions``, or by the broker after
``transaction.timeout.ms``); the successor restores the partition from the changelog (which
holds exactly the committed state) and resumes at the committed offsets, so the aborted
batch is decided again, identically. A worker that lost its partitions in a rebalance
cannot commit: the group generation in its offsets is stale and the broker fences it.
A step that fails because the broker is away (a retriable error: sending the offsets or
the commit timed out) is called again, with backoff, until the broker answers: the
transaction stays open, and fetch and end-of-partition errors of an outage are waited out
the same way (logged once per outage). A failed step that can be aborted aborts the
transaction and rewinds every partition to its committed state and offsets (with backoff
when it keeps failing). A transaction left open longer than ``transaction.timeout.ms`` (an
outage, a stalled process) is aborted by the coordinator, which bumps the producer epoch:
librdkafka reports that as fencing, fatal for the producer, exactly as when a newer worker
with the same id took over. The age of the open transaction tells the two apart (the
coordinator aborts only old ones): the worker replaces its producer, under the same
transactional id, and rewinds to the committed state and offsets. Anything else stops the
worker, whose successor settles the transaction, with a message that says whether another
worker with the same id took over.
Restoring waits until the changelog has no pending transaction, so a batch whose commit is
still being completed is included.
The kill tests of the spawn gate in ``tests/processors`` check all of this.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from agentlog import kafka_config, tracing
from agentlog.dead_letters import DeadLetter, dlq_topic
from agentlog.errors import AgentlogError
from agentlog.events import Event
from agentlog.metrics import AGENTS_ACTIVE, AGENTS_LIMIT, CONSUMER_LAG, Gauges, ProcessorMetrics
from agentlog.processors.errors import WorkerError
from agentlog.processors.input_merge import (
    CLOCK_MARGIN_MS,
    CORE_HEADER,
    DECIDED_HEADER,
    DecisionPoint,
    InputRecord,
    MergeOrder,
    PartitionMerge,
)
from agentlog.processors.partition_ends import PartitionEnds
from agentlog.records import Headers, at
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.signing import SIGNATURE_HEADER, SigningKey, sign_batch

log = logging.getLogger("agentlog.processors")

S = TypeVar("S")

ChangelogRecord = tuple[bytes, bytes | None]
"""A changelog key and its value (None: a tombstone)."""


class Unreadable(AgentlogError):
    """An input the processor cannot read (not a record of the contract, misplaced, too large): dead-lettered."""


@dataclass(frozen=True, slots=True)
class Decided:
    """What deciding one input (or one timer tick) produced: outputs in order, and the state keys it changed."""

    outputs: list[Event]
    changed: set[str]
    headers: Headers = field(default_factory=list)
    """Headers added to each of the outputs: the side inputs' positions the decision used, for replay."""


class Processor(Protocol[S]):
    """A deterministic processor the runtime runs: a pure core over one partition's state ``S``.

    ``decide`` and ``expire`` must be pure functions of the state, the input and the side
    inputs in force (replay calls the same code); they mutate ``state`` in place and never
    raise for bad input (they answer it), except :class:`Unreadable` for bytes that are not
    an input at all.
    """

    name: str
    """Consumer group and transactional ids are built from it, under the topic prefix."""
    stage: str
    """The dead-letter stage of this processor's rejects."""
    input_topics: tuple[str, ...]
    """Co-partitioned input topics (full names), in the merge's source order."""
    order: MergeOrder
    """How inputs of the same millisecond are ordered (one rank per input topic)."""
    output_topic: str
    side_topics: dict[str, str]
    """Outputs written elsewhere than ``output_topic``, by Avro full name: another processor's input topic (full
    name), produced in the same transaction."""
    changelog_topic: str
    core_version: int
    """The version of ``decide``'s behaviour, named on every output (:data:`CORE_HEADER`) so replay can apply it."""

    def start(self) -> None:
        """Catch up on side inputs before any input is decided; raise :class:`AgentlogError` to refuse to run."""

    def poll(self) -> None:
        """Read side inputs between batches (a new policy version takes effect from the next batch)."""

    def restore(self, partitions: list[int]) -> dict[int, S]:
        """The committed state of ``partitions``, from the changelog (waiting out pending transactions)."""

    def forget(self, partitions: list[int]) -> None:
        """Drop what the processor keeps of revoked partitions."""

    def decide(self, state: S, record: InputRecord) -> Decided:
        """Decide one input record; raises :class:`Unreadable` when it is not an input at all."""

    def expire(self, state: S, now: datetime) -> Decided:
        """Run the timer of one partition as of ``now`` (its inputs are complete up to then)."""

    def changelog(self, partition: int, state: S, changed: set[str]) -> list[ChangelogRecord]:
        """The changelog records that bring the changelog of ``partition`` up to ``state`` for ``changed`` keys."""

    def gauges(self, states: dict[int, S]) -> Gauges:
        """What the owned partitions' states say for the metrics (active agents and their caps), by instrument."""


@dataclass
class RuntimeConfig:
    """Tuning of one worker."""

    worker_id: str
    """Stable per worker slot: a restarted worker with the same id aborts its predecessor's transaction."""
    batch_size: int = 2000
    batch_wait_ms: int = 5
    expire_interval_ms: int = 1000
    transaction_timeout_ms: int = 10_000
    clock_margin_ms: int = CLOCK_MARGIN_MS


@dataclass
class RuntimeStats:
    """Counters since the worker started."""

    batches: int = 0
    inputs: int = 0
    outputs: int = 0
    dead_letters: int = 0
    late_inputs: int = 0
    """Inputs that became visible after records appended later had been decided (see ``input_merge``)."""
    aborts: int = 0
    restores: int = 0
    producers: int = 1
    """Producers used: a new one replaces the one whose transaction the coordinator timed out."""
    assigned: list[int] = field(default_factory=list)


RESTORE_TIMEOUT_S = 600.0
"""How long restoring may wait, a broker outage included, before the worker gives up."""

_FENCED = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})
"""The errors that say a newer producer with the same transactional id exists."""


class ProcessorRuntime(Generic[S]):
    """One worker process of a processor; several share the partitions through the consumer group."""

    def __init__(self, settings: Settings, processor: Processor[S], config: RuntimeConfig) -> None:
        self.settings = settings
        self.processor = processor
        self.config = config
        self.serde = Serde.from_settings(settings)
        self.stats = RuntimeStats()
        self.topics = list(processor.input_topics)
        if len(processor.order.ranks) != len(self.topics):
            raise WorkerError(f"{processor.name}: {len(self.topics)} inputs but {len(processor.order.ranks)} ranks")
        self._stopping = threading.Event()
        """Set when the worker is asked to stop: retries give up then."""
        self._outage_since: float | None = None
        """When Kafka stopped answering (monotonic), while it does not."""
        self._fatal: KafkaError | None = None
        """The error that made the producer fatal: librdkafka's later errors say only "Fatal error"."""
        self._core_header = (CORE_HEADER, str(processor.core_version).encode())
        self._signing_key = (
            SigningKey.load(settings.signing_key) if settings.signing_key and processor.side_topics else None
        )
        """Signs what is handed over to another processor's input, which checks signatures (none is signed else)."""
        self.states: dict[int, S] = {}
        self.merges: dict[int, PartitionMerge] = {}
        self._last_expire = 0.0
        self._failures = 0
        self._paused: set[tuple[int, int]] = set()
        """(source, partition) inputs not fetched for now: their buffers are full."""
        group = f"{settings.topic_prefix}{processor.name}"
        self._group = group
        self.metrics = ProcessorMetrics(processor.name, processor.stage)
        self.consumer = Consumer(
            {
                **kafka_config.reader(settings, group),
                "enable.partition.eof": True,
                "partition.assignment.strategy": "range",  # co-partitioned: partition p of every input together
                # Static membership: a restarted worker takes its slot back without a rebalance.
                "group.instance.id": f"{group}.{config.worker_id}",
                "fetch.wait.max.ms": 10,
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 1_000,
                "error_cb": self._on_client_error,
            }
        )
        self._transactional_id = f"{group}.{config.worker_id}"
        self._txn_opened: float | None = None
        """When the open transaction began (monotonic); None between transactions."""
        self._span: tracing.BatchSpan | None = None
        """The span of the batch being decided, when tracing is on (:mod:`agentlog.tracing`)."""
        self.producer = self._new_producer()
        self._ends = PartitionEnds(settings)

    def _new_producer(self) -> Producer:
        return Producer(
            {
                **kafka_config.producer(self.settings, self._transactional_id),
                "linger.ms": 2,
                "transaction.timeout.ms": self.config.transaction_timeout_ms,
                "error_cb": self._on_client_error,
            }
        )

    # -- life cycle ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> RuntimeStats:
        """Process until ``stop`` is set; returns the counters."""
        self.producer.init_transactions(60)
        self.processor.start()
        self._stopping = stop
        self.consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.consumer.close()
        return self.stats

    def step(self) -> None:
        """Fetch, decide and commit one batch."""
        records = self.consumer.consume(self.config.batch_size, self.config.batch_wait_ms / 1000)
        self.processor.poll()
        for msg in records:
            self._buffer(msg)
        self._confirm_ends()
        # A batch is shared by the partitions with buffered records, not by every assigned one:
        # one busy partition among twelve idle ones still fills its transactions.
        # Every partition stays in ``released``: an idle one is still due its timer.
        busy = sum(1 for merge in self.merges.values() if merge.pending())
        share = max(self.config.batch_size // max(busy, 1), 1)
        released = {p: merge.release(share) if merge.pending() else [] for p, merge in self.merges.items()}
        self._apply_back_pressure()
        expiring = self._expiry_due()
        if expiring and self.metrics.on:
            try:
                self._observe()
            except KafkaException as e:  # a gauge left as it was is no reason to stop deciding
                log.debug("metrics: %s", e)
        if not any(released.values()) and not expiring:
            return
        started = time.monotonic()
        try:
            self._commit_batch(released, expiring)
        except KafkaException as e:
            self._recover(e)
        took = time.monotonic() - started
        if took * 1000 > self.config.transaction_timeout_ms / 4:
            count = sum(len(r) for r in released.values())
            log.warning(
                "a batch of %d inputs took %.1fs (transaction timeout %d ms)",
                count,
                took,
                self.config.transaction_timeout_ms,
            )

    # -- fetching -----------------------------------------------------------------------

    def _buffer(self, msg: Message) -> None:
        error = msg.error()
        if error is not None and error.code() != KafkaError._PARTITION_EOF:
            self._consumer_error(error, msg)
            return
        partition = msg.partition()
        assert partition is not None
        merge = self.merges.get(partition)
        if merge is None:  # revoked since it was fetched
            return
        source = self.topics.index(msg.topic() or "")
        if error is not None:
            merge.reached_end(source, msg.offset() or 0)
            return
        self._available()
        # Headers are kept for dead letters (trace context among them) and the decision points.
        record = InputRecord.read(source, msg)
        offset = record.offset
        late_ms = merge.add(record)
        if late_ms is not None:
            self.stats.late_inputs += 1
            log.warning(
                "%s became visible after inputs appended up to %d ms later were decided: decided now, out of"
                " append-time order, as its decisions' %s header records (a clock margin of %d ms was too small)",
                at(record.topic, partition, offset),
                late_ms,
                DECIDED_HEADER,
                self.config.clock_margin_ms,
            )

    def _apply_back_pressure(self) -> None:
        """Stop fetching an input whose buffer holds many undecided records; resume it once drained.

        Only the topic with the full buffer is paused: the records wait for the other topic,
        which must keep being fetched (or be confirmed at its end) for them to be released.
        """
        limit = 4 * self.config.batch_size
        for partition, merge in self.merges.items():
            for source, topic in enumerate(self.topics):
                key = (source, partition)
                pending = merge.pending(source)
                if key not in self._paused and pending > limit:
                    self.consumer.pause([TopicPartition(topic, partition)])
                    self._paused.add(key)
                elif key in self._paused and pending <= limit // 2:
                    self.consumer.resume([TopicPartition(topic, partition)])
                    self._paused.discard(key)

    def _confirm_ends(self) -> None:
        """Ask the broker whether the inputs releases wait on are really at their ends (one request for all)."""
        blocked = [(p, source) for p, merge in self.merges.items() if (source := merge.blocked_on()) is not None]
        self._check_ends(blocked)

    def _check_ends(self, wanted: list[tuple[int, int]]) -> None:
        """For each ``(partition, source)``: still at the end read last? Then it was at its end when we asked.

        The broker answers with the high watermark; while a transaction on the input is
        open it is beyond the last stable offset we read to, so records behind a pending
        transaction wait for it to finish (see ``agentlog.processors.input_merge``).
        """
        reading = {
            (p, source): end for p, source in wanted if (end := self.merges[p].end_offset(source)) is not None
        }  # inputs not at their end yet are left to the fetcher: it says so with an end-of-partition event
        if not reading:
            return
        asked_at = _now_ms()
        try:
            highs = self._ends.highs((self.topics[source], p) for p, source in reading)
        except KafkaException as e:  # the broker is away: the ends stay unconfirmed, and the records wait
            self._unavailable(e.args[0])
            return
        self._available()
        for (p, source), end_read in reading.items():
            merge = self.merges.get(p)
            if merge is not None and highs[(self.topics[source], p)] <= end_read:
                merge.confirm_end(source, asked_at)

    def _expiry_due(self) -> bool:
        now = time.monotonic()
        if (now - self._last_expire) * 1000 < self.config.expire_interval_ms:
            return False
        self._last_expire = now
        idle = [p for p, merge in self.merges.items() if merge.pending() == 0]
        self._check_ends([(p, source) for p in idle for source in range(len(self.topics))])  # "complete up to"
        return True

    # -- one transaction ----------------------------------------------------------------

    def _commit_batch(self, released: dict[int, list[InputRecord]], expiring: bool) -> None:
        # Each input's trace context, read once: its outputs carry it on, and the batch span links it.
        causes = {p: [tracing.traceparent_of(r.headers) for r in records] for p, records in released.items()}
        traced = tracing.enabled()
        if traced and any(released.values()):
            records = [r for rs in released.values() for r in rs]
            self._span = tracing.batch_span(
                f"process {self.processor.name}",
                self._group,
                records,
                [c for cs in causes.values() for c in cs],
                topics=self.topics,
            )
        try:
            self._transaction(released, causes, expiring, traced)
        except BaseException as e:
            if self._span is not None:
                self._span.failed(e)
            raise
        finally:
            if self._span is not None:
                self._span.end()
                self._span = None

    def _transaction(
        self,
        released: dict[int, list[InputRecord]],
        causes: dict[int, list[bytes | None]],
        expiring: bool,
        traced: bool,
    ) -> None:
        started = time.monotonic()
        self.producer.begin_transaction()
        self._txn_opened = started
        offsets: list[TopicPartition] = []
        reasons: Counter[tuple[str, str]] = Counter()
        for partition, records in released.items():
            state = self.states[partition]
            changed: set[str] = set()
            for record, cause in zip(records, causes[partition], strict=True):
                changed |= self._process(partition, state, record, cause, reasons)
            if expiring:
                changed |= self._expire(partition, state, traced, reasons)
            for key, value in self.processor.changelog(partition, state, changed):
                self._produce(self.processor.changelog_topic, partition, key, value)
            offsets += self._next_offsets(partition, records)
        decided = time.monotonic()
        if offsets:
            group = self.consumer.consumer_group_metadata()
            self._retrying("sending the offsets", lambda: self.producer.send_offsets_to_transaction(offsets, group, 30))
        offsets_sent = time.monotonic()
        self._retrying("committing", lambda: self.producer.commit_transaction(30))
        self._txn_opened = None
        self._failures = 0
        if self.metrics.on:
            appended = [r.timestamp_ms for records in released.values() for r in records]
            self.metrics.committed(appended, reasons, (time.monotonic() - decided) * 1000, _now_ms())
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "batch of %d: decide %.1f ms, send offsets %.1f ms, commit %.1f ms",
                sum(len(r) for r in released.values()),
                (decided - started) * 1000,
                (offsets_sent - decided) * 1000,
                (time.monotonic() - offsets_sent) * 1000,
            )
        self.stats.batches += 1
        self.stats.inputs += sum(len(r) for r in released.values())

    def _retrying(self, step: str, call: Callable[[], object]) -> None:
        """Run one transaction step, again and again while its error says a retry may succeed.

        A broker that is away makes these calls time out with a retriable error; the
        transaction stays open and the same call resumes it once the broker answers
        (librdkafka's contract). Errors that need an abort, or are fatal, go to the caller.
        """
        delay = 0.1
        while True:
            try:
                call()
            except KafkaException as e:
                error = e.args[0]
                if error.fatal() or error.txn_requires_abort() or not error.retriable() or self._stopping.is_set():
                    raise
                self._unavailable(error)
                log.debug("%s failed, retrying in %.1fs: %s", step, delay, error.str())
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._available()
            return

    def _process(
        self,
        partition: int,
        state: S,
        record: InputRecord,
        cause: bytes | None,
        reasons: Counter[tuple[str, str]],
    ) -> set[str]:
        """Decide one input (whose trace context is ``cause``); returns the state keys it changed."""
        merge = self.merges[partition]
        point = merge.decision_point(record)
        merge.decided(record)
        try:
            decided = self.processor.decide(state, record)
        except Unreadable as e:  # an input that is not one is dead-lettered, never retried
            self._dead_letter(record, e.__cause__ if isinstance(e.__cause__, Exception) else e)
            return set()
        # The core answers bad requests and never raises otherwise; if it ever did, the
        # worker stops (the transaction stays uncommitted) rather than keep a half-updated state.
        span = self._span
        if span is not None:
            cause = span.carried(cause)
            if span.single:
                span.describe(decided.outputs)
        if self.metrics.on:
            self.metrics.decided(decided.outputs, reasons)
        self._emit(partition, decided, point, cause)
        return decided.changed

    def _expire(self, partition: int, state: S, traced: bool, reasons: Counter[tuple[str, str]]) -> set[str]:
        merge = self.merges[partition]
        watermark = merge.watermark_ms()
        if watermark is None:
            return set()
        decided = self.processor.expire(state, datetime.fromtimestamp(watermark / 1000, UTC))
        if self.metrics.on:
            self.metrics.decided(decided.outputs, reasons)
        if traced and decided.outputs and self._span is None:  # a timer that decided something starts a trace
            attributes = tracing.consumer_attributes(self._group, self.topics, [partition])
            self._span = tracing.BatchSpan(f"expire {self.processor.name}", [], attributes)
        span = self._span
        self._emit(partition, decided, merge.decision_point(None), span.carried(None) if span is not None else None)
        return decided.changed

    def _emit(self, partition: int, decided: Decided, point: DecisionPoint, trace_context: bytes | None) -> None:
        """Produce the outputs of one cause, each with its decision point (so replay can follow the order) and the
        trace context it carries onward (:mod:`agentlog.tracing`)."""
        topic, elsewhere = self.processor.output_topic, self.processor.side_topics
        headers: Headers = [(DECIDED_HEADER, point.encode()), self._core_header, *decided.headers]
        if trace_context is not None:
            headers.append((tracing.TRACEPARENT, trace_context))
        for output in decided.outputs:
            to = elsewhere.get(output.avro_name, topic)
            key, value = output.meta.root_id.encode(), self.serde.encode(output, to)
            signed = headers
            if to != topic and self._signing_key is not None:
                (signature,) = sign_batch(self._signing_key, [(to, key, value)])
                signed = [*headers, (SIGNATURE_HEADER, signature.encode())]
            self._produce(to, partition, key, value, signed)
        self.stats.outputs += len(decided.outputs)

    def _dead_letter(self, record: InputRecord, error: Exception) -> None:
        stage = self.processor.stage
        letter = DeadLetter(stage, error, record.topic, record.partition, record.offset, record.key, record.value)
        key, value, headers = letter.record(record.headers)
        self._produce(dlq_topic(self.settings.topic_prefix), None, key, value, list(headers))
        self.stats.dead_letters += 1
        if self.metrics.on:
            self.metrics.dead_lettered()
        log.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, error)

    def _produce(
        self,
        topic: str,
        partition: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"partition": partition} if partition is not None else {}
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.05)

    def _observe(self) -> None:
        """Set the gauges: each input partition's lag, and what the processor's states say (once a second)."""
        lags: list[tuple[float, dict[str, str]]] = []
        for partition, merge in self.merges.items():
            for source, topic in enumerate(self.topics):
                low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
                if high < 0:
                    continue
                pending = merge.first_pending_offset(source)
                if pending is None:
                    (position,) = self.consumer.position([TopicPartition(topic, partition)])
                    pending = position.offset if position.offset >= 0 else low
                attributes = {"group": self._group, "topic": topic, "partition": str(partition)}
                lags.append((max(high - pending, 0), attributes))
        gauges = self.processor.gauges(self.states)
        gauges[CONSUMER_LAG] = lags
        gauges.setdefault(AGENTS_ACTIVE, [])
        gauges.setdefault(AGENTS_LIMIT, [])
        self.metrics.snapshot.set(gauges)

    def _next_offsets(self, partition: int, records: list[InputRecord]) -> list[TopicPartition]:
        merge = self.merges[partition]
        offsets = []
        for source in range(len(self.topics)):
            done = [r.offset for r in records if r.source == source]
            if not done:
                continue
            pending = merge.first_pending_offset(source)
            offsets.append(
                TopicPartition(self.topics[source], partition, pending if pending is not None else max(done) + 1)
            )
        return offsets

    # -- failures and rebalances --------------------------------------------------------

    def _recover(self, error: KafkaException) -> None:
        """Abort the open transaction and go back to the committed state and offsets.

        Errors that leave the transaction in a state that cannot be aborted (fatal ones,
        fencing) stop the worker: its successor settles the transaction at
        ``init_transactions``. Repeated failures back off, up to 5 s between attempts.
        """
        kafka_error = error.args[0]
        if kafka_error.fatal() and self._aborted_by_the_coordinator(kafka_error):
            self.stats.aborts += 1
            self._renew_producer()
            self._rewind()
            return
        if kafka_error.fatal() or not kafka_error.txn_requires_abort():
            raise WorkerError(self._fatal_message(kafka_error)) from error
        self._failures += 1
        log.warning("aborting batch (failure %d in a row): %s", self._failures, kafka_error.str())
        self.stats.aborts += 1
        try:
            self.producer.abort_transaction(30)
        except KafkaException as e:
            if not self._aborted_by_the_coordinator(e.args[0]):
                raise WorkerError(f"cannot abort the transaction, this worker must restart: {e}") from e
            self._renew_producer()  # the coordinator had aborted it already
        self._txn_opened = None
        time.sleep(min(0.1 * 2 ** (self._failures - 1), 5.0))
        self._rewind()

    def _aborted_by_the_coordinator(self, error: KafkaError) -> bool:
        """Whether a fencing error means the coordinator timed out our open transaction, not a newer worker.

        Both bump the producer epoch and reach us as the same fatal error. The coordinator
        aborts only a transaction open longer than ``transaction.timeout.ms`` (a broker
        outage or a stalled process); a transaction younger than that was fenced by a
        newer producer with our transactional id: another worker took over.
        """
        cause = self._fatal or error
        if cause.code() not in _FENCED or self._txn_opened is None:
            return False
        return (time.monotonic() - self._txn_opened) * 1000 >= self.config.transaction_timeout_ms

    def _renew_producer(self) -> None:
        """Replace the producer whose transaction the coordinator aborted, under the same transactional id."""
        assert self._txn_opened is not None
        log.warning(
            "the transaction was open for %.0fs, longer than its timeout (%d ms): the coordinator aborted it;"
            " starting a new producer and going back to the committed state",
            time.monotonic() - self._txn_opened,
            self.config.transaction_timeout_ms,
        )
        self._txn_opened = None
        self._fatal = None
        self.stats.producers += 1
        self.producer = self._new_producer()
        self._retrying("initialising transactions", lambda: self.producer.init_transactions(30))

    def _rewind(self) -> None:
        """Every owned partition back to its committed state (from the changelog) and input offsets."""
        assigned = sorted(self.states)
        tps = [TopicPartition(t, p) for p in assigned for t in self.topics]
        committed: list[TopicPartition] = []
        if tps:
            self._retrying("reading the committed offsets", lambda: committed.extend(self.consumer.committed(tps, 30)))
        self._restore(assigned)
        for tp in committed:
            tp.offset = tp.offset if tp.offset >= 0 else -2  # OFFSET_BEGINNING when nothing was committed
            self.consumer.seek(tp)

    def _consumer_error(self, error: KafkaError, msg: Message) -> None:
        """A consumer error: fatal ones (this worker was replaced) stop it; the others are waited out."""
        if error.fatal():
            if error.code() == KafkaError.FENCED_INSTANCE_ID:
                raise WorkerError(
                    f"another worker with the same --worker-id joined the group (instance"
                    f" {self._transactional_id}); this one stops"
                )
            raise WorkerError(f"consuming {msg.topic()}[{msg.partition()}]: {error.str()}")
        self._unavailable(error)

    def _unavailable(self, error: KafkaError) -> None:
        """Note that Kafka does not answer (logged once per outage); the loop goes on and retries."""
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning("Kafka does not answer (%s): waiting for it; nothing is lost", error.str())

    def _available(self) -> None:
        if self._outage_since is not None:
            log.warning("Kafka answers again after %.0fs; deciding goes on", time.monotonic() - self._outage_since)
            self._outage_since = None

    def _on_client_error(self, error: KafkaError) -> None:
        """librdkafka's error callback (served by poll and consume, on this thread)."""
        if error.fatal():
            self._fatal = self._fatal or error
        elif error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            self._unavailable(error)

    def _fatal_message(self, error: KafkaError) -> str:
        cause = self._fatal or error
        if cause.code() in _FENCED:
            return (
                f"another worker with the same --worker-id (transactional id {self._transactional_id}) has"
                f" taken over; this one stops ({cause.str()})"
            )
        return f"transaction failed, this worker must restart: {cause.str()}"

    def _restore(self, partitions: list[int]) -> None:
        self.states.update(self.processor.restore(partitions))
        for partition in partitions:
            self.merges[partition] = PartitionMerge(self.config.clock_margin_ms, self.processor.order)
        self.stats.restores += len(partitions)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = sorted({tp.partition for tp in partitions})
        for p in numbers:
            topics = {tp.topic for tp in partitions if tp.partition == p}
            if topics != set(self.topics):
                raise WorkerError(
                    f"partition {p} assigned for {sorted(topics)} only; the inputs must be co-partitioned"
                )
        self._restore(numbers)
        # librdkafka keeps a partition's pause across a rebalance; its buffer here starts empty.
        consumer.resume(partitions)
        self._paused = {key for key in self._paused if key[1] not in numbers}
        self.stats.assigned = sorted(self.states)
        log.info("assigned partitions %s", numbers)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for p in {tp.partition for tp in partitions}:
            self.states.pop(p, None)
            self.merges.pop(p, None)
        self.processor.forget(sorted({tp.partition for tp in partitions}))
        self._paused = {key for key in self._paused if key[1] in self.merges}
        self.stats.assigned = sorted(self.states)
        log.info("revoked partitions %s", sorted({tp.partition for tp in partitions}))


def _now_ms() -> int:
    return int(time.time() * 1000)
