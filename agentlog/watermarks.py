"""Watermarks and committed offsets, asked of the broker, patient while leadership or a coordinator settles."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

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
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)
"""Errors that a broker which is away, restarting or electing leaders gives, and that pass."""

T = TypeVar("T")


def watermarks(consumer: Consumer, topic: str, partition: int, timeout_s: float = 30.0) -> tuple[int, int]:
    """Low and high watermark of ``topic[partition]`` now (not the client's cached values).

    Right after a topic is created, or while a broker is away or just back, the answer
    may be "not leader" or "unknown partition" for a while; such answers are retried until
    ``timeout_s``.
    """
    tp = TopicPartition(topic, partition)
    low, high = _patiently(
        lambda: consumer.get_watermark_offsets(tp, timeout=10, cached=False),
        f"cannot read the watermarks of {topic}[{partition}]",
        timeout_s,
    )
    return int(low), int(high)


def committed_offsets(
    consumer: Consumer, partitions: list[TopicPartition], timeout_s: float = 30.0
) -> list[TopicPartition]:
    """The offsets ``consumer``'s group has committed for ``partitions``, asked again while the coordinator settles.

    A group coordinator that moved or is loading (a broker just back) answers "not
    coordinator" for a while; such answers are retried until ``timeout_s``.
    """
    return list(
        _patiently(lambda: consumer.committed(partitions, timeout=10), "cannot read the committed offsets", timeout_s)
    )


def _patiently(ask: Callable[[], T], failure: str, timeout_s: float) -> T:
    """``ask()``, again every 0.2 s while its error is one that passes, until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ask()
        except KafkaException as e:
            error = e.args[0]
            settling = error.retriable() or error.code() in _SETTLING
            if not settling or time.monotonic() > deadline:
                raise AgentlogError(f"{failure}: {error.str()}") from e
            time.sleep(0.2)
