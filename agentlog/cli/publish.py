"""``agentlog publish``: validate JSON payloads and publish them atomically."""

from __future__ import annotations

import json
import sys
import uuid
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from agentlog import kafka_config, telemetry, tracing
from agentlog.cli.output import EXIT_BAD_INPUT, fail, fail_for, kafka_settings
from agentlog.errors import AgentlogError, PayloadError
from agentlog.events import Event, event_type
from agentlog.limits import check_record_size
from agentlog.payloads import build_event, parse_documents
from agentlog.producer import Delivery, Producer
from agentlog.serde import Serde
from agentlog.settings import Settings, get_settings


def check_encodes(serde: Serde, event: Event, line: int) -> None:
    """Raise :class:`PayloadError` if a validated event still cannot be written as Avro."""
    try:
        encoded = serde.encode(event, "agentlog.publish.check")
    except (ValueError, OverflowError) as e:  # UnicodeEncodeError is a ValueError
        raise PayloadError(event.avro_name.rsplit(".", 1)[-1], [("<event>", f"cannot be encoded: {e}")], line) from e
    check_record_size(event.avro_name, len(encoded), line)


def publish(
    event: Annotated[
        str, typer.Argument(help="Record name, short (SpawnRequested) or full (agentlog.spawn.SpawnRequested).")
    ],
    json_text: Annotated[str | None, typer.Option("--json", help="The payload: one JSON object or JSON lines.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the payload from this file.")] = None,
) -> None:
    """Publish events of one record type. The payload comes from --json, --file or stdin.

    Every document is validated before anything is sent, and all are published in one
    Kafka transaction: either every record becomes visible, or none does (one event needs
    no transaction: a single record is atomic by itself, and the producer is idempotent).
    Prints the topic, partition and offset of each record as JSON lines.
    """
    if json_text is not None and file is not None:
        fail("give the payload with --json or --file, not both", EXIT_BAD_INPUT)
    settings = get_settings()
    try:
        telemetry.configure("agentlog-cli")
        model = event_type(event)
        if json_text is not None:
            text = json_text
        elif file is not None:
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as e:
                fail(f"cannot read {file}: {e.strerror}", EXIT_BAD_INPUT)
            except UnicodeDecodeError as e:
                fail(
                    f"--file {file}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})", EXIT_BAD_INPUT
                )
        else:
            if sys.stdin.isatty():
                fail("no payload: give --json, --file or pipe JSON on stdin", EXIT_BAD_INPUT)
            text = sys.stdin.read()
        documents = parse_documents(text)
        producer_name = settings.producer_name if settings.producer_name != "agentlog" else "agentlog-cli"
        events = [build_event(model, doc, producer=producer_name, line=line) for line, doc in documents]
        serde = Serde.from_settings(settings)
        for (line, _), built in zip(documents, events, strict=True):
            check_encodes(serde, built, line)  # before any broker is involved: bad input is exit 2
        # Everything is valid: now the broker must answer. One event's producer is made before that check, whose
        # round trip gives it time to start: librdkafka's idempotent producer holds a record produced in its first
        # milliseconds for 500 ms (measured with 2.16; confluentinc/librdkafka#5032).
        single = Producer(settings, serde=serde) if len(events) == 1 else None
        kafka_settings()
        transactional_id = f"{settings.topic_prefix}{kafka_config.CLI_TRANSACTIONAL_ID}{uuid.uuid4()}"
        producer = single or Producer(settings, serde=serde, transactional_id=transactional_id)
        if settings.sasl_username is not None:
            _check_authorized(settings, {producer.topic_name(item) for item in events})
        deliveries = _publish_atomically(producer, events)
    except AgentlogError as e:
        fail_for(e)
    for delivery in deliveries:
        print(json.dumps(asdict(delivery)))


def _publish_atomically(producer: Producer, events: list[Event]) -> list[Delivery]:
    """Every event in one transaction (one event alone needs none), under one ``send`` span when tracing is on."""
    topics = {producer.topic_name(e) for e in events}
    with tracing.sending(topics, len(events), events[0] if events else None) as span:
        with producer.transaction() if len(events) > 1 else nullcontext():
            for item in events:
                producer.send(item)
            deliveries = producer.flush()
        tracing.delivered(span, deliveries)
        return deliveries


def _check_authorized(settings: Settings, topics: set[str]) -> None:
    """Exit 1 naming the topics the broker's ACLs do not let this principal write; nothing is published."""
    from agentlog.access import unwritable

    try:
        refused = unwritable(settings, topics)
    except AgentlogError as e:
        fail_for(e)
    if refused:
        fail(
            f"{kafka_config.principal(settings)} may not write to {', '.join(refused)} (the broker's ACLs;"
            " see `agentlog access list`); nothing was published"
        )
