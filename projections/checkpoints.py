"""Audit checkpoints: the projector attests, outside PostgreSQL, how far each partition's audit chain has grown.

After a batch commits, the projector remembers each partition's new position (next offset,
chain head) and row count; every ``interval_s`` it publishes one
:class:`~agentlog.events.AuditCheckpoint` per partition that moved to
``agentlog.audit.checkpoints``, a topic kept forever (signed when the projector has a signing
key: the producer signs every record; :mod:`agentlog.replay.anchors` says which checkpoints an
audit relies on). A checkpoint is never ahead of the committed rows: it
is made from positions already committed. The checkpoint topic is projected like every topic,
but not checkpointed itself.

``replay verify`` holds the audit log to the newest checkpoint of each partition: rows
missing below it are *truncated*, not lag (:mod:`agentlog.replay.verify`). Like Certificate
Transparency's signed tree heads, a checkpoint lets an outside party hold the log to what it
once attested: someone who can rewrite PostgreSQL cannot take it back.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

from agentlog import events as ev
from agentlog.errors import DeliveryError
from agentlog.producer import Producer
from agentlog.projections.batch import Batch, PartitionState, TopicPartition
from agentlog.settings import Settings
from agentlog.topics import AUDIT_CHECKPOINTS

log = logging.getLogger("agentlog.projector")

PRODUCER = "agentlog.projector"


class Checkpointer:
    """What the projector has committed and not yet attested; publishes it every ``interval_s``."""

    def __init__(
        self,
        settings: Settings,
        schema: str,
        projector: str,
        interval_s: float,
        row_counts: Callable[[list[TopicPartition]], dict[TopicPartition, int]],
    ) -> None:
        self.settings = settings
        self.schema = schema
        self.projector = projector
        self.interval_s = interval_s
        self._row_counts = row_counts
        """Reads the rows a partition has in the audit log (once per partition, the first time it moves)."""
        self._topic = settings.topic_prefix + AUDIT_CHECKPOINTS.name
        self._counts: dict[TopicPartition, int] = {}
        self._unattested: dict[TopicPartition, PartitionState] = {}
        self._last = time.monotonic()
        self._producer: Producer | None = None
        self.published = 0

    def committed(self, batch: Batch) -> None:
        """Account for a batch that has committed; publish when the interval has passed."""
        added = Counter((row[0], row[1]) for row in batch.audit_rows)
        moved = [tp for tp in batch.end if tp[0] != self._topic]
        unknown = [tp for tp in moved if tp not in self._counts]
        if unknown:  # read after the commit: the batch's rows are counted already
            self._counts.update(self._row_counts(unknown))
        for tp in moved:
            if tp not in unknown:
                self._counts[tp] += added[tp]
            self._unattested[tp] = batch.end[tp]
        if time.monotonic() - self._last >= self.interval_s:
            self.publish()

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop partitions given up: their next owner attests them (it reads their counts and positions again).

        Nothing is published here, nor when the projector stops: a checkpoint it could no longer project itself
        would be left behind as lag (a rebuild compared with this schema would differ by it).
        """
        for tp in partitions:
            self._counts.pop(tp, None)
            self._unattested.pop(tp, None)

    def publish(self) -> None:
        """One checkpoint per partition that moved since the last ones; kept for the next try if Kafka refuses."""
        self._last = time.monotonic()
        if not self._unattested:
            return
        events = [self._checkpoint(tp, state) for tp, state in sorted(self._unattested.items())]
        try:
            if self._producer is None:
                self._producer = Producer(self.settings)
            self._producer.publish_many(events)
        except DeliveryError as e:
            log.warning("audit checkpoints not published (%s); they will be tried again", e)
            return
        self.published += len(events)
        self._unattested.clear()

    def _checkpoint(self, tp: TopicPartition, state: PartitionState) -> ev.AuditCheckpoint:
        topic, partition = tp
        return ev.AuditCheckpoint(
            meta=ev.Meta(tenant_id="platform", root_id=f"{topic}[{partition}]", producer=PRODUCER),
            projection_schema=self.schema,
            topic=topic,
            partition=partition,
            next_offset=state.next_offset,
            row_count=self._counts[tp],
            chain_head=state.chain_head.hex(),
            projector=self.projector,
        )
