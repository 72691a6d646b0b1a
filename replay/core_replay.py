"""``replay decisions`` for a processor with a pure core beside the gate: the mission processor and the bus.

Per partition, a fresh state is fed the processor's inputs in the order the processor
decided them, each by the core's ``decide`` with the policy version its recorded facts
name, as the version of the core they name (the ``agentlog-core`` header). The recorded
facts drive the walk, group by group (the outputs of one input are consecutive and name it
as their cause), exactly as for the gate (:mod:`agentlog.replay.decisions`): the inputs
below a group's decision point are decided first and must have no outputs (``unrecorded``,
or ``pending`` past the processor's committed offsets), then its cause, whose outputs must
be the group byte for byte; a cause that is not found is ``orphan``. A group without a
cause is a timer tick at its ``occurred_at``: the inputs below its point are decided, then
the core's ``expire`` must give the group. Inputs that do not decode are skipped, as the
processor dead-letters them.

A subclass names the processor (:class:`CoreReplay` class attributes) and its core (:meth:`decide_input`,
:meth:`expire`, :meth:`fresh`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from agentlog.errors import DecodeError
from agentlog.events import Event
from agentlog.processors import InputRecord, MergeOrder, Policy
from agentlog.records import Record
from agentlog.replay.decisions import NEVER, Cause, DecisionReplay, RecordedGroup
from agentlog.replay.input_order import RecordedOrder
from agentlog.replay.log_source import LogSource
from agentlog.serde import Serde
from agentlog.topics import TopicSpec


class CoreReplay(DecisionReplay):
    """Re-runs a processor with a pure core over a :class:`~agentlog.replay.log_source.LogSource`."""

    group: str
    """The processor's consumer group (its committed offsets tell ``pending`` from ``unrecorded``)."""
    sources: tuple[TopicSpec, ...]
    order: MergeOrder
    facts: TopicSpec
    _core = 1
    """The core version inputs decided on the way are decided with (the group's before them)."""

    # -- the core ---------------------------------------------------------------------------

    def fresh(self) -> Any:
        """An empty partition state."""
        raise NotImplementedError

    def decode(self, serde: Serde, record: InputRecord) -> Event | None:
        raise NotImplementedError

    def decide_input(
        self, state: Any, event: Event, record: InputRecord, policy: Policy | None, core: int
    ) -> list[Event]:
        raise NotImplementedError

    def expire(self, state: Any, at: datetime, policy: Policy | None) -> list[Event]:
        raise NotImplementedError

    # -- the walk ---------------------------------------------------------------------------

    @classmethod
    def partitions_in(cls, source: LogSource) -> list[int]:
        """The partitions holding the processor's first input or its facts."""
        first, facts = cls.sources[0].name, cls.facts.name
        return sorted(set(source.topic_partitions(first)) | set(source.topic_partitions(facts)))

    def _partition(self, partition: int) -> None:
        state = self.fresh()
        bases = tuple(spec.name for spec in self.sources)
        decided = self.source.committed(self.group, bases, partition)  # before the facts are read
        streams = [_inputs(i, self.source.records(base, partition)) for i, base in enumerate(bases)]
        inputs = RecordedOrder(streams, self.order)
        self._core = 1  # inputs decided on the way: as the group before them (1 before any)
        for group in self._groups(partition, self.source.records(self.facts.name, partition)):
            point = group.point
            if group.cause.kind == "tick" and group.cause.at is not None and point is not None:
                self._decide(state, inputs.below(point.before), decided)
                outputs = self.expire(state, group.cause.at, self._policy(partition, group, None))
                self._compare(partition, group, outputs)
                self._core = group.core
                continue
            if point is None:  # not written by the runtime (which names a point on every output): by append time
                found = self._decide(state, inputs.until(group.appended_ms), decided, group)
            else:
                self._decide(state, inputs.below(point.before), decided)
                found = self._decide(state, inputs.through(point), decided, group)
            if found is None:
                self._count(group)
                self._outcome(partition, group.cause, "orphan", group, [], "no input with this event id was found")
            self._core = group.core
        self._decide(state, inputs.until(NEVER), decided)

    def _decide(
        self,
        state: Any,
        inputs: Iterator[InputRecord],
        decided: dict[int, int] | None,
        group: RecordedGroup | None = None,
    ) -> InputRecord | None:
        """Decide ``inputs`` up to ``group``'s cause (compared with the group, and returned when found)."""
        for record in inputs:
            self.progress.advance()
            try:
                event = self.decode(self.serde, record)
            except DecodeError:
                continue  # the processor dead-letters it
            if event is None:
                continue  # an input the core ignores
            selected = self.root_id is None or event.meta.root_id == self.root_id
            self.report.inputs += selected
            cause = Cause("input", str(event.meta.event_id), event.avro_name, str(record), None, event.meta.root_id)
            if group is not None and event.meta.event_id == group.key[1]:
                group.cause = cause
                policy = self._policy(record.partition, group, record)
                self._compare(record.partition, group, self.decide_input(state, event, record, policy, group.core))
                return record
            outputs = self.decide_input(state, event, record, self._policy_at(record), self._core)
            if not outputs or not selected:
                continue
            if decided is not None and record.offset >= decided[record.source]:
                self.report.pending += 1
                continue
            status = "changed" if self.what_if else "unrecorded"
            self._outcome(record.partition, cause, status, None, outputs, "the processor recorded no fact for this")
        return None


def _inputs(source: int, records: Iterator[Record]) -> Iterator[InputRecord]:
    for record in records:
        yield InputRecord.of(source, record)
