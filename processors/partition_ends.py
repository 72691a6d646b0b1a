"""The ends (high watermarks) of several input partitions, asked of the brokers in one request each.

The runtime releases an input only once every other input of its partition is known to be
at its end; for idle inputs that means asking the broker. One ``ListOffsets`` request per
broker for all of them costs one round trip, where asking partition by partition costs one
each (about 3 ms apiece here, most of a step when a worker holds many idle partitions).
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]  # re-exported at runtime

from agentlog import kafka_config
from agentlog.settings import Settings


class PartitionEnds:
    """Asks the high watermarks of partitions in batches; keeps one admin client for the worker's life."""

    def __init__(self, settings: Settings) -> None:
        self._admin = AdminClient(kafka_config.base(settings))

    def highs(self, partitions: Iterable[tuple[str, int]], timeout_s: float = 5.0) -> dict[tuple[str, int], int]:
        """The high watermark of each ``(topic, partition)``, as the partitions' leaders say now.

        The high watermark, not the last stable offset (``READ_UNCOMMITTED``): while a
        transaction on an input is open the answer is beyond what a read-committed reader
        has read, so the records behind it wait for it to finish. Raises
        :class:`~confluent_kafka.KafkaException` when the brokers do not answer in time.
        """
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # untyped in the stubs
        wanted = {TopicPartition(topic, partition): latest for topic, partition in partitions}
        if not wanted:
            return {}
        futures = self._admin.list_offsets(
            wanted, isolation_level=IsolationLevel.READ_UNCOMMITTED, request_timeout=timeout_s
        )
        found: dict[tuple[str, int], int] = {}
        for tp, future in futures.items():
            found[(tp.topic, tp.partition)] = int(future.result(timeout=timeout_s).offset)
        return found
