"""The producer SDK: publishes event models, keyed by ``root_id``, with idempotence and acks=all.

Delivery failures are raised, never logged and dropped: :meth:`Producer.flush` raises
:class:`~agentlog.errors.DeliveryError` when any record sent since the last flush was not
acknowledged. With a ``transactional_id``, :meth:`Producer.transaction` makes a batch
atomic for ``read_committed`` readers: all of it is visible, or none.

With a signing key (``AGENTLOG_SIGNING_KEY``, or ``signing_key=``) every record is signed:
records are held until :meth:`Producer.flush` (or until :data:`~agentlog.signing.MAX_BATCH`
are held), then signed as one batch (:mod:`agentlog.signing`) and handed to the client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import TracebackType

from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import Producer as KafkaProducer

from agentlog import kafka_config, tracing
from agentlog.errors import DeliveryError
from agentlog.events import Event
from agentlog.limits import check_record_size
from agentlog.records import Headers
from agentlog.serde import Serde
from agentlog.settings import Settings, get_settings
from agentlog.signing import MAX_BATCH, SIGNATURE_HEADER, SigningKey, sign_batch
from agentlog.topics import key_of, topic_of

_AUTHORIZATION_FAILURES = frozenset(
    (
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    )
)
"""Delivery errors that say the broker's ACLs do not let this principal write the record."""


@dataclass(frozen=True)
class Delivery:
    """Where the broker stored a record."""

    topic: str
    partition: int
    offset: int
    record: str
    event_id: str


@dataclass(frozen=True, slots=True)
class _Held:
    """An encoded record on its way to the client (held back, when there is a key, until its batch is signed)."""

    event: Event
    topic: str
    key: bytes
    value: bytes
    headers: Headers


_Slot = list["Delivery | KafkaError | None"]
"""One record's outcome, filled by its delivery callback."""


class Producer:
    """Publishes agentlog events. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        serde: Serde | None = None,
        transactional_id: str | None = None,
        config: dict[str, object] | None = None,
        signing_key: SigningKey | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.serde = serde or Serde.from_settings(self.settings)
        if signing_key is None and self.settings.signing_key is not None:
            signing_key = SigningKey.load(self.settings.signing_key)
        self.signing_key = signing_key
        """The key records are signed with (None: unsigned)."""
        self._unsigned: list[_Held] = []
        self._transactional = transactional_id is not None
        self._kafka = KafkaProducer({**kafka_config.producer(self.settings, transactional_id), **(config or {})})
        self._pending: list[tuple[Event, _Slot]] = []
        self._lock = threading.Lock()
        if self._transactional:
            self._call(self._kafka.init_transactions, 30)

    def topic_name(self, event: Event) -> str:
        """Deployed topic of ``event`` (prefix included)."""
        return self.settings.topic_prefix + topic_of(type(event)).name

    def send(self, event: Event, *, headers: Headers | None = None) -> None:
        """Queue ``event`` for delivery; :meth:`flush` reports the outcome.

        The current trace context is added to ``headers`` (pass headers that already
        carry it, as :meth:`publish_many` does, to skip the lookup).
        """
        self._send(event, tracing.inject(headers or []))

    def _encoded(self, event: Event, headers: Headers) -> _Held:
        """``event`` encoded for its topic, within the record size limit."""
        topic = self.topic_name(event)
        value = self.serde.encode(event, topic)
        check_record_size(event.avro_name, len(value))
        return _Held(event, topic, key_of(event).encode(), value, headers)

    def _signed(self, held: list[_Held]) -> list[_Held]:
        """The records with one batch signature's header each (:mod:`agentlog.signing`)."""
        assert self.signing_key is not None
        signatures = sign_batch(self.signing_key, [(h.topic, h.key, h.value) for h in held])
        return [
            replace(h, headers=[*h.headers, (SIGNATURE_HEADER, signature.encode())])
            for h, signature in zip(held, signatures, strict=True)
        ]

    def _send(self, event: Event, headers: Headers) -> None:
        record = self._encoded(event, headers)
        if self.signing_key is None:
            self._produce(record)
            return
        self._unsigned.append(record)
        if len(self._unsigned) >= MAX_BATCH:
            self._sign_held()

    def _sign_held(self) -> None:
        """Sign the records held back as one batch and hand them to the client."""
        held, self._unsigned = self._unsigned, []
        if held:
            for record in self._signed(held):
                self._produce(record)

    def _produce(self, record: _Held, *, tracked: bool = True) -> _Slot:
        """Hand a record to the client; its outcome fills the slot (``tracked``: :meth:`flush` reports it)."""
        event, topic, key, value, headers = record.event, record.topic, record.key, record.value, record.headers
        slot: _Slot = [None]

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                slot[0] = err
                return
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None  # set on every acknowledged record
            slot[0] = Delivery(topic, partition, offset, event.avro_name, str(event.meta.event_id))

        while True:
            try:
                self._kafka.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                self._kafka.poll(0.1)  # local queue full: serve callbacks to make room
            except KafkaException as e:
                raise DeliveryError(f"cannot queue {event.avro_name} for {topic}: {e}", topic=topic) from e
        if tracked:
            self._pending.append((event, slot))
            if len(self._pending) % 1000 == 0:
                self._kafka.poll(0)  # serve delivery callbacks now and then, not per record
        return slot

    def flush(self, timeout: float = 30.0) -> list[Delivery]:
        """Wait for every queued record; return their positions in send order or raise."""
        self._sign_held()
        remaining = self._kafka.flush(timeout)
        pending, self._pending = self._pending, []
        return self._outcomes(pending, remaining, timeout)

    def _outcomes(self, pending: list[tuple[Event, _Slot]], remaining: int, timeout: float) -> list[Delivery]:
        """The deliveries of ``pending`` in order, or one :class:`DeliveryError` that says what failed."""
        deliveries: list[Delivery] = []
        failures: list[str] = []
        for event, (outcome,) in pending:
            if isinstance(outcome, Delivery):
                deliveries.append(outcome)
            elif outcome is None:
                failures.append(f"{event.avro_name} {event.meta.event_id}: not acknowledged within {timeout}s")
            else:
                failures.append(f"{event.avro_name} {event.meta.event_id}: {self._reason(outcome, event)}")
        if failures or remaining:
            unacknowledged = sum(1 for _, (outcome,) in pending if outcome is None)
            retriable = all(
                outcome is None or isinstance(outcome, Delivery) or _retriable(outcome) for _, (outcome,) in pending
            )
            maybe_later = (
                f"; {unacknowledged} of them may still be delivered later (the client keeps retrying them until"
                " message.timeout.ms): retry with the same request or event ids, never with new ones"
                if unacknowledged
                else ""
            )
            raise DeliveryError(
                f"{len(failures)} of {len(pending)} records not delivered{maybe_later};"
                f" first: {failures[0] if failures else ''}",
                retriable=retriable,
            )
        return deliveries

    def _reason(self, error: KafkaError, event: Event) -> str:
        """Why a record was refused; an authorization failure names the principal and the topic."""
        if error.code() not in _AUTHORIZATION_FAILURES:
            return str(error.str())
        who, topic = kafka_config.principal(self.settings), self.topic_name(event)
        return f"{error.str()}: {who} may not write to {topic} (the broker's ACLs; see `agentlog access list`)"

    def publish(self, event: Event, timeout: float = 30.0) -> Delivery:
        """Send one event and wait for its acknowledgement (signed on its own when there is a key).

        Several threads may publish at once: each waits for its own record only. (``send``
        and ``flush`` are for one thread, and a transaction's records go through them.)
        """
        with tracing.sending([self.topic_name(event)], 1, event) as span:
            if self._transactional:
                self.send(event)
                delivery = self.flush(timeout)[-1]
            else:
                delivery = self._publish_one(event, timeout)
            tracing.delivered(span, [delivery])
            return delivery

    def _publish_one(self, event: Event, timeout: float) -> Delivery:
        record = self._encoded(event, tracing.inject([]))
        if self.signing_key is not None:
            (record,) = self._signed([record])
        with self._lock:
            slot = self._produce(record, tracked=False)
        deadline = time.monotonic() + timeout
        while slot[0] is None and time.monotonic() < deadline:
            self._kafka.poll(0.05)
        return self._outcomes([(event, slot)], 0 if slot[0] is not None else 1, timeout)[0]

    def publish_many(self, events: Iterable[Event]) -> list[Delivery]:
        """Send events in batches and wait for all of them (one ``send`` span for the call when tracing is on)."""
        batch = list(events)
        with tracing.sending({self.topic_name(e) for e in batch}, len(batch), batch[0] if batch else None) as span:
            headers = tracing.inject([])  # one trace context lookup for the whole batch
            for event in batch:
                self._send(event, headers)
            deliveries = self.flush()
            tracing.delivered(span, deliveries)
            return deliveries

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything sent inside becomes visible atomically; an exception aborts it all."""
        if not self._transactional:
            raise DeliveryError("transaction() needs a Producer created with a transactional_id")
        self._call(self._kafka.begin_transaction)
        try:
            yield
            self.flush()
            self._call(self._kafka.commit_transaction, 30)
        except BaseException as failure:
            self._pending.clear()
            self._unsigned.clear()
            try:
                self._kafka.abort_transaction(30)
            except KafkaException as e:
                raise DeliveryError(f"transaction failed ({failure}) and could not be aborted: {e}") from failure
            raise

    def _call(self, method: Callable[..., object], *args: object) -> None:
        try:
            method(*args)
        except KafkaException as e:
            error = e.args[0]
            if error.code() in _AUTHORIZATION_FAILURES:
                raise DeliveryError(
                    f"{kafka_config.principal(self.settings)} may not use transactions here ({error.str()});"
                    " the broker's ACLs decide who may (see `agentlog access list`)"
                ) from e
            raise DeliveryError(f"transaction step failed: {e}", retriable=error.retriable()) from e

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is queued (raising on failures)."""
        if self._pending or self._unsigned:
            self.flush(timeout)

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()


_IN_DOUBT = frozenset({KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT})
"""Delivery errors after which the record may or may not be on the topic: worth a retry of an idempotent request."""


def _retriable(error: KafkaError) -> bool:
    return error.retriable() or error.code() in _IN_DOUBT
