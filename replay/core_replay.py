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

import uuid
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
from agentlog.topics import TopicSpec, topic_of


class CoreReplay(DecisionReplay):
    """Re-runs a processor with a pure core over a :class:`~agentlog.replay.log_source.LogSource`."""

    group: str
    """The processor's consumer group (its committed offsets tell ``pending`` from ``unrecorded``)."""
    sources: tuple[TopicSpec, ...]
    order: MergeOrder
    facts: TopicSpec
    _core = 1
    """The core version inputs decided on the way are decided with (the group's before them)."""
    producer = ""
    """The processor's ``meta.producer``: which records of the topics it hands over to are its own."""
    handed_over: tuple[type[Event], ...] = ()
    """Outputs written to another processor's input topic, found there by event id (:meth:`_handed_over`)."""

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
        self._handed = self._handed_over(partition)
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
        for record, event in self._handed.values():  # what the processor wrote that no decision replayed
            self.report.recorded += 1
            cause = Cause("input", str(event.meta.causation_id), position=str(record), root_id=event.meta.root_id)
            self._outcome(partition, cause, "orphan", None, [event], f"{record} was not reproduced by any decision")

    def _handed_over(self, partition: int) -> dict[uuid.UUID, tuple[Record, Event]]:
        """The records the processor wrote to the topics it hands over to (in ``partition``), by event id."""
        found: dict[uuid.UUID, tuple[Record, Event]] = {}
        for spec in {topic_of(t).name: topic_of(t) for t in self.handed_over}.values():
            for record in self.source.records(spec.name, partition):
                try:
                    event = self.serde.decode(record.value or b"")
                except DecodeError:
                    continue  # not the processor's: it writes only what it encoded
                mine = type(event) in self.handed_over and event.meta.producer == self.producer
                if mine and (self.root_id is None or event.meta.root_id == self.root_id):
                    found[event.meta.event_id] = (record, event)
        return found

    def _compare(self, partition: int, group: RecordedGroup, replayed: list[Event]) -> None:
        """As the gate's, for the outputs on the facts topic; each handed-over output must be recorded as well,
        byte for byte, on its own topic."""
        handed = [e for e in replayed if type(e) in self.handed_over]
        super()._compare(partition, group, [e for e in replayed if type(e) not in self.handed_over])
        if self.root_id is not None and group.cause.root_id != self.root_id:
            return
        for event in handed:
            recorded = self._handed.pop(event.meta.event_id, None)
            self.report.recorded += recorded is not None
            if recorded is not None and self.serde.matches(recorded[0].value or b"", event):
                self.report.reproduced += 1
                continue
            status = "divergent" if recorded is not None else "unrecorded"
            where = topic_of(type(event)).name
            note = f"handed over to {where}: " + ("recorded otherwise" if recorded else "not recorded there")
            self._outcome(partition, group.cause, status, group, [event], note)

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
