"""librdkafka configurations derived from the settings, in one place."""

from __future__ import annotations

import uuid
from typing import Any

from agentlog.settings import Settings

READER_GROUP = "agentlog-reader-"
"""Start of the group id of a reader that assigns its partitions itself (after the topic prefix)."""
SDK_GROUP = "agentlog-sdk-"
"""Start of the group (after the topic prefix) an SDK client with a ``client_id`` keeps its positions in."""
CLI_TRANSACTIONAL_ID = "agentlog-cli-"
"""Start of the transactional id under which ``agentlog publish`` writes a file (after the topic prefix)."""


def principal(settings: Settings) -> str:
    """The Kafka principal this process authenticates as, as errors name it."""
    return f"User:{settings.sasl_username}" if settings.sasl_username else "this client's principal"


def base(settings: Settings) -> dict[str, Any]:
    """Connection properties shared by every client: where the brokers are and how to authenticate."""
    config: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers}
    if settings.security_protocol != "PLAINTEXT":
        config["security.protocol"] = settings.security_protocol
    if settings.security_protocol.startswith("SASL_"):
        config["sasl.mechanism"] = settings.sasl_mechanism
        if settings.sasl_username is not None:
            config["sasl.username"] = settings.sasl_username
        if settings.sasl_password is not None:
            config["sasl.password"] = settings.sasl_password.get_secret_value()
    if settings.ssl_ca_location is not None:
        config["ssl.ca.location"] = str(settings.ssl_ca_location)
    return {**config, **settings.kafka_extra}


def producer(settings: Settings, transactional_id: str | None = None) -> dict[str, Any]:
    """An idempotent, acks=all producer that batches.

    ``murmur2_random`` is the Java client's partitioner: a key lands in the same partition
    whichever client (this one, faust's aiokafka, a JVM runtime) produced it, which the
    co-partitioning of an agent tree's topics depends on.
    """
    config: dict[str, Any] = {
        **base(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "partitioner": "murmur2_random",
    }
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
    return config


def reader(settings: Settings, group_id: str | None = None) -> dict[str, Any]:
    """A consumer that sees only committed records and never commits on its own."""
    return {
        **base(settings),
        "group.id": group_id or f"{settings.topic_prefix}{READER_GROUP}{uuid.uuid4()}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    }
