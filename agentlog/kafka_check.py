"""Whether the brokers answer, asked once and bounded in time, so that a command can say so plainly."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from agentlog import kafka_config
from agentlog.errors import AgentlogError
from agentlog.settings import Settings


class KafkaUnreachableError(AgentlogError):
    """The brokers did not answer a metadata request within the connect timeout."""


def ensure_reachable(settings: Settings) -> None:
    """Return once a broker answers; raise :class:`KafkaUnreachableError` after ``settings.connect_timeout_s``.

    The error names the last connection problem librdkafka saw (refused, TLS handshake,
    authentication), which a metadata timeout alone would not say.
    """
    timeout = settings.connect_timeout_s
    seen: list[KafkaError] = []
    # log_level 0: librdkafka would print a line per failed connection attempt; the error says it once.
    quiet: dict[str, Any] = {
        "socket.connection.setup.timeout.ms": int(timeout * 1000),
        "log_level": 0,
        "error_cb": seen.append,
    }
    client = AdminClient({**kafka_config.base(settings), **quiet})
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            return
        except KafkaException as e:
            client.poll(0)  # serves error_cb: what went wrong with the connections
            _raise_if_refused(settings, seen, e)
            if time.monotonic() >= deadline:
                causes = [error for error in seen if error.code() != KafkaError._ALL_BROKERS_DOWN] or seen
                last = f"; last connection error: {causes[-1].str()}" if causes else ""
                tls = settings.security_protocol.endswith("SSL")
                raise KafkaUnreachableError(
                    f"cannot reach Kafka at {settings.bootstrap_servers} within {timeout:g}s"
                    f" ({e.args[0].str()}{last}); is it running? (AGENTLOG_BOOTSTRAP_SERVERS,"
                    f" AGENTLOG_CONNECT_TIMEOUT_S{', AGENTLOG_SSL_CA_LOCATION' if tls else ''};"
                    " AGENTLOG_SECURITY_PROTOCOL must match the listener)"
                ) from e


def _raise_if_refused(settings: Settings, seen: list[KafkaError], cause: KafkaException) -> None:
    """A broker that answered but refused the credentials is not worth waiting for: say so now."""
    refusal = next((error for error in seen if error.code() == KafkaError._AUTHENTICATION), None)
    if refusal is not None:
        raise KafkaUnreachableError(
            f"Kafka at {settings.bootstrap_servers} refused to authenticate {kafka_config.principal(settings)}"
            f" ({refusal.str()}); check AGENTLOG_SASL_USERNAME and AGENTLOG_SASL_PASSWORD"
        ) from cause
