"""A partition's watermarks, asked of the broker, patient while a new topic's leadership settles."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from agentlog.errors import AgentlogError

_SETTLING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
    }
)
"""Errors that a broker which is away, restarting or electing leaders gives, and that pass."""


def watermarks(consumer: Consumer, topic: str, partition: int, timeout_s: float = 30.0) -> tuple[int, int]:
    """Low and high watermark of ``topic[partition]`` now (not the client's cached values).

    Right after a topic is created, or while a broker is away or just back, the answer
    may be "not leader" or "unknown partition" for a while; such answers are retried until
    ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
            return int(low), int(high)
        except KafkaException as e:
            error = e.args[0]
            settling = error.retriable() or error.code() in _SETTLING
            if not settling or time.monotonic() > deadline:
                raise AgentlogError(f"cannot read the watermarks of {topic}[{partition}]: {error.str()}") from e
            time.sleep(0.2)
