"""The spawn gate's state, kept in a compacted changelog topic written in its transactions.

Each record is one tree (key: root id, value: the tree as compact JSON; a tombstone when the
tree is forgotten). The gate writes the trees a batch changed in the same Kafka transaction
as the batch's decisions and input offsets, so the changelog always describes exactly the
state after the last committed batch. Restoring a partition reads its changelog partition
from the beginning to the last stable offset with a ``read_committed`` consumer.
"""

from __future__ import annotations

import json
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from agentlog import kafka_config
from agentlog.settings import Settings
from agentlog.topics import TREE_PARTITIONS, TopicSpec
from agentlog.watermarks import watermarks
from processors.errors import GateError
from processors.tree_state import PartitionState, TreeState

GATE_CHANGELOG = TopicSpec(
    "agentlog.spawn-gate.changelog",
    TREE_PARTITIONS,
    (),
    "root_id",
    "Internal: the spawn gate's tree state, one compacted record per tree.",
    cleanup_policy="compact",
)


def changelog_topic(settings: Settings) -> str:
    """Deployed name of the changelog topic."""
    return settings.topic_prefix + GATE_CHANGELOG.name


def encode_tree(tree: TreeState) -> bytes:
    """A tree as a changelog value."""
    return json.dumps(tree.to_dict(), separators=(",", ":")).encode()


def restore_partitions(
    settings: Settings, partitions: list[int], partition_count: int, timeout_s: float = 60.0
) -> dict[int, PartitionState]:
    """The state of each of ``partitions`` as of the last committed transaction, read in one pass.

    A partition is read until its end for committed reads equals its high watermark: a
    transaction still being committed (or aborted) is waited for, so that the state
    matches the input offsets committed with it.
    """
    latest: dict[int, dict[str, bytes | None]] = {p: {} for p in partitions}
    consumer = Consumer({**kafka_config.reader(settings), "enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(changelog_topic(settings), p, OFFSET_BEGINNING) for p in partitions])
        unfinished = set(partitions)
        deadline = time.monotonic() + timeout_s
        while unfinished:
            if time.monotonic() > deadline:
                raise GateError(f"restoring partitions {sorted(unfinished)} took longer than {timeout_s}s")
            for msg in consumer.consume(10_000, 0.2):
                partition = msg.partition() or 0
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        # The end of committed data; done only if no transaction is pending
                        # behind it (one still committing holds state the offsets may include).
                        remaining = max(deadline - time.monotonic(), 1.0)
                        _, high = watermarks(consumer, changelog_topic(settings), partition, remaining)
                        if (msg.offset() or 0) >= high:
                            unfinished.discard(partition)
                        continue
                    if not error.fatal():  # a broker that is away or just back: keep reading until the deadline
                        continue
                    raise GateError(f"reading the changelog of partition {partition}: {error.str()}")
                key = msg.key()
                if key is not None:
                    latest[partition][key.decode()] = msg.value()
    finally:
        consumer.close()
    states = {}
    for partition, trees in latest.items():
        state = PartitionState(partition=partition, partitions=partition_count)
        for value in trees.values():
            if value is not None:
                state.put_tree(TreeState.from_dict(json.loads(value)))
        state.compact_deadlines()
        states[partition] = state
    return states
