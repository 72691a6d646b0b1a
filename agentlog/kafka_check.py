"""Whether the brokers answer, asked once and bounded in time, so that a command can say so plainly."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from agentlog import kafka_config
from agentlog.errors import AgentlogError
from agentlog.settings import Settings


class KafkaUnreachableError(AgentlogError):
    """The brokers did not answer a metadata request within the connect timeout."""


def ensure_reachable(settings: Settings) -> None:
    """Return once a broker answers; raise :class:`KafkaUnreachableError` after ``settings.connect_timeout_s``."""
    timeout = settings.connect_timeout_s
    # log_level 0: librdkafka would print a line per failed connection attempt; the error says it once.
    quiet = {"socket.connection.setup.timeout.ms": int(timeout * 1000), "log_level": 0}
    client = AdminClient({**kafka_config.base(settings), **quiet})
    try:
        client.list_topics(timeout=timeout)
    except KafkaException as e:
        raise KafkaUnreachableError(
            f"cannot reach Kafka at {settings.bootstrap_servers} within {timeout:g}s ({e.args[0].str()});"
            " is it running? (AGENTLOG_BOOTSTRAP_SERVERS, AGENTLOG_CONNECT_TIMEOUT_S)"
        ) from e
