"""``replay decisions`` for the mission processor: its pure core re-run over the recorded log.

Per partition, a fresh :class:`~agentlog.processors.mission_state.MissionPartition` is fed
the mission processor's inputs — mission commands (``agentlog.missions``) and the gate's
facts (``agentlog.policy.decisions``) — in the order the processor decided them, each by
:func:`agentlog.processors.mission_core.decide` with the policy version its recorded facts
name, as the version of the core they name (the ``agentlog-core`` header). The recorded
facts (``agentlog.mission.events``) drive the walk, group by group (the outputs of one
input are consecutive and name it as their cause), exactly as for the gate
(:mod:`agentlog.replay.decisions`): the inputs below a group's decision point are decided
first and must have no outputs (``unrecorded``, or ``pending`` past the processor's
committed offsets), then its cause, whose outputs must be the group byte for byte; a cause
that is not found is ``orphan``. A group without a cause is a timer tick at its
``occurred_at``: the inputs below its point are decided, then
:func:`agentlog.processors.mission_core.expire` (archiving after the policy's retention)
must give the group. Inputs that do not decode are skipped, as the processor dead-letters them.
"""

from __future__ import annotations

from collections.abc import Iterator

from agentlog.errors import DecodeError
from agentlog.processors import (
    MISSION_ORDER,
    MISSION_PROCESSOR,
    MISSION_SOURCES,
    InputRecord,
    MissionPartition,
    decide_missions,
    decode_mission_input,
    expire_missions,
)
from agentlog.records import Record
from agentlog.replay.decisions import NEVER, Cause, DecisionReplay, RecordedGroup
from agentlog.replay.input_order import RecordedOrder
from agentlog.replay.log_source import LogSource
from agentlog.topics import MISSION_EVENTS, MISSIONS

_BASES = tuple(spec.name for spec in MISSION_SOURCES)


class MissionReplay(DecisionReplay):
    """Re-runs the mission processor over a :class:`~agentlog.replay.log_source.LogSource`."""

    processor = "missions"
    _core = 1
    """The core version inputs decided on the way are decided with (the group's before them)."""

    @staticmethod
    def partitions_in(source: LogSource) -> list[int]:
        """The partitions holding mission commands or facts."""
        return sorted(set(source.topic_partitions(MISSIONS.name)) | set(source.topic_partitions(MISSION_EVENTS.name)))

    def _partition(self, partition: int) -> None:
        state = MissionPartition()
        decided = self.source.committed(MISSION_PROCESSOR, _BASES, partition)  # before the facts are read
        streams = [_inputs(i, self.source.records(base, partition)) for i, base in enumerate(_BASES)]
        inputs = RecordedOrder(streams, MISSION_ORDER)
        self._core = 1  # inputs decided on the way: as the group before them (1 before any)
        for group in self._groups(partition, self.source.records(MISSION_EVENTS.name, partition)):
            point = group.point
            if group.cause.kind == "tick" and group.cause.at is not None and point is not None:
                self._decide(state, inputs.below(point.before), decided)
                outputs, _ = expire_missions(state, group.cause.at, self._policy(partition, group, None))
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
        state: MissionPartition,
        inputs: Iterator[InputRecord],
        decided: dict[int, int] | None,
        group: RecordedGroup | None = None,
    ) -> InputRecord | None:
        """Decide ``inputs`` up to ``group``'s cause (compared with the group, and returned when found)."""
        for record in inputs:
            self.progress.advance()
            try:
                event = decode_mission_input(self.serde, record)
            except DecodeError:
                continue  # the processor dead-letters it
            if event is None:
                continue  # a gate fact that moves no mission
            selected = self.root_id is None or event.meta.root_id == self.root_id
            self.report.inputs += selected
            cause = Cause("input", str(event.meta.event_id), event.avro_name, str(record), None, event.meta.root_id)
            if group is not None and event.meta.event_id == group.key[1]:
                group.cause = cause
                policy = self._policy(record.partition, group, record)
                outputs, _ = decide_missions(state, event, policy, group.core)
                self._compare(record.partition, group, outputs)
                return record
            outputs, _ = decide_missions(state, event, self._policy_at(record), self._core)
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
