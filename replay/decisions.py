"""``replay decisions``: the spawn gate's pure core re-run over the recorded log.

Per partition, a fresh :class:`~processors.tree_state.PartitionState` is fed the gate's
inputs in the gate's order, each decided by :func:`agentlog.processors.spawn_gate.decide` with the
policy version its recorded decisions name; a recorded timeout (outputs without a
causation id) is a timer tick: :func:`agentlog.processors.spawn_gate.expire` at its ``occurred_at``,
with the agents the tick timed out for missed heartbeats as the silent ones (the beats
themselves are not kept: the recorded miss is the watch's word; everything it caused is checked).
The recorded decisions drive the walk, group by group (the outputs of one input, or of
one tick, are consecutive on the decisions topic):

- a group caused by input *X*: the inputs the gate had decided before *X* are decided
  first, then *X*, whose outputs must be the group, byte for byte;
- a tick at *T*: the inputs the gate had decided before it are decided first, then
  ``expire`` at *T*; its outputs must be the group.

Which inputs came before is what the group's decision point says (the ``agentlog-decided``
header, :class:`~agentlog.replay.input_order.RecordedOrder`). A log written before the
gate recorded points is walked by append time: up to *X* (never past the group's own
append time), or for a tick, inputs appended before *T* + the gate's clock margin (its
watermark trails the time it saw both topics at their end by that margin).

Each group is decided with the version of the gate's core its outputs name (the
``agentlog-core`` header; 1 when absent) and with the keyring as far as its outputs say the
gate had read it (the ``agentlog-keyring`` header; none when absent), inputs decided on the
way with the core and keyring of the group before them: a log written across an upgrade,
or across a key's publication or revocation, replays as each worker decided it.

Inputs decided on the way must have no outputs; if they do, the gate recorded nothing
for a decision the core makes (``unrecorded``) — unless the gate has not committed that
input yet (``pending``: past its committed offsets, read before the decisions). A group
whose input is not found is ``orphan``. Every such case is an :class:`Outcome` with both
sides. Inputs that do not decode are skipped, as the gate dead-letters them.

With a what-if policy every input and tick is decided under that policy instead, and the
outcomes are the decisions that would change (compared without ``policy_version``, the
``checks`` made and the ``message``: the decision itself, its reason and its numbers).
Timeouts of the what-if are taken at the recorded ticks only.

Memory: one partition's state (the gate holds the same) and one group; the log streams.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentlog import events as ev
from agentlog.errors import DecodeError
from agentlog.events import Event
from agentlog.keyring import UNSIGNED, Attribution, KeyringHistory, keyring_position
from agentlog.processors import (
    CLOCK_MARGIN_MS,
    DecisionPoint,
    InputRecord,
    PartitionState,
    Policy,
    core_version,
    decide,
    decode_input,
    expire,
    to_micros,
)
from agentlog.records import Record
from agentlog.replay.input_order import RecordedOrder
from agentlog.replay.log_source import LogSource
from agentlog.replay.policies import PolicyHistory
from agentlog.replay.progress import Progress
from agentlog.serde import Serde, to_jsonable

NEVER = 2**63 - 1


@dataclass(frozen=True)
class Cause:
    """What a group of decisions answers: one input event, or one timer tick."""

    kind: str
    """``input`` or ``tick``."""
    event_id: str | None = None
    record: str | None = None
    position: str | None = None
    """``topic[partition]@offset`` of the input."""
    at: datetime | None = None
    root_id: str | None = None

    def __str__(self) -> str:
        if self.kind == "tick":
            return f"timer tick at {self.at.isoformat() if self.at else '?'}"
        name = (self.record or "input").rsplit(".", 1)[-1]
        where = f" ({self.position})" if self.position else ""
        return f"{name} {self.event_id}{where}"

    def as_json(self) -> dict[str, Any]:
        """The cause as JSON."""
        return {
            "kind": self.kind,
            "event_id": self.event_id,
            "record": self.record,
            "position": self.position,
            "at": self.at.isoformat() if self.at else None,
            "root_id": self.root_id,
        }


@dataclass
class Outcome:
    """One cause whose recorded decisions and replayed decisions differ."""

    partition: int
    cause: Cause
    status: str
    """``divergent``, ``unrecorded``, ``orphan``, ``undecodable``, ``unknown-policy`` or (what-if) ``changed``."""
    recorded: list[dict[str, Any]]
    """The recorded decisions, decoded (JSON-ready), each with its ``_position``."""
    replayed: list[dict[str, Any]]
    """The decisions of the replay (JSON-ready)."""
    note: str = ""
    processor: str = "gate"
    """Whose decisions: ``gate`` or ``missions``."""

    def as_json(self) -> dict[str, Any]:
        """The outcome as JSON."""
        return {
            "processor": self.processor,
            "partition": self.partition,
            "cause": self.cause.as_json(),
            "status": self.status,
            "note": self.note,
            "recorded": self.recorded,
            "replayed": self.replayed,
        }


@dataclass
class DecisionReport:
    """What a decision replay found."""

    what_if: str | None = None
    """The what-if policy (name and version), or None for a verification."""
    partitions: int = 0
    inputs: int = 0
    recorded: int = 0
    """Recorded decisions read."""
    reproduced: int = 0
    """Recorded decisions the replay produced byte for byte (verification) or unchanged (what-if)."""
    groups: int = 0
    pending: int = 0
    """Inputs the gate has not committed decisions for yet, that the replay decides."""
    outcomes: list[Outcome] = field(default_factory=list)
    policy_versions: list[int] = field(default_factory=list)
    policy_problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Every recorded decision was reproduced and nothing else was decided."""
        return not self.outcomes

    def merge(self, other: DecisionReport) -> None:
        """Fold the report of other partitions into this one."""
        self.partitions += other.partitions
        self.inputs += other.inputs
        self.recorded += other.recorded
        self.reproduced += other.reproduced
        self.groups += other.groups
        self.pending += other.pending
        self.outcomes += other.outcomes


@dataclass
class RecordedGroup:
    """Recorded outputs of one cause, consecutive in their topic."""

    cause: Cause
    key: tuple[str, Any]
    records: list[tuple[Record, dict[str, Any], str]]
    """(record, decoded value, record full name), in offset order."""
    version: int | None

    @property
    def appended_ms(self) -> int:
        return self.records[0][0].timestamp_ms

    @property
    def core(self) -> int:
        """The version of the gate's core that decided this group (1 in logs older than the version header)."""
        return core_version(self.records[0][0].headers)

    @property
    def keyring(self) -> int:
        """How many keyring records the gate had applied when it decided this group (0 in older logs)."""
        return keyring_position(self.records[0][0].headers)

    @property
    def point(self) -> DecisionPoint | None:
        """Where the gate stood in its inputs when it decided this group's cause (None in older logs)."""
        return DecisionPoint.of(self.records[0][0].headers)


@dataclass(frozen=True, slots=True)
class _Context:
    """How the gate decided: the version of its core and the position it had read the keyring to."""

    core: int
    keyring: int

    @classmethod
    def of(cls, group: RecordedGroup) -> _Context:
        return cls(group.core, group.keyring)


def _silent(group: RecordedGroup) -> dict[tuple[str, str], int | None]:
    """The agents a recorded tick timed out for missed heartbeats, with their last beat (µs): the watch's word,
    which the log does not otherwise hold (beats are not kept)."""
    silent: dict[tuple[str, str], int | None] = {}
    for _, value, name in group.records:
        if name == ev.AgentTimedOut.avro_name and str(value.get("cause")) == ev.TimeoutCause.HEARTBEAT_MISSED:
            last = value.get("last_heartbeat_at")
            silent[value["meta"]["root_id"], value["agent_id"]] = to_micros(last) if last is not None else None
    return silent


class DecisionReplay:
    """Re-runs the gate over a :class:`LogSource`; :meth:`run` returns the report."""

    processor = "gate"
    """Whose decisions this replay proves (named in each :class:`Outcome`)."""

    def __init__(
        self,
        source: LogSource,
        policies: PolicyHistory,
        *,
        keyring: KeyringHistory | None = None,
        what_if: Policy | None = None,
        root_id: str | None = None,
        clock_margin_ms: int = CLOCK_MARGIN_MS,
        serde: Serde | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.source = source
        self.policies = policies
        self.what_if = what_if
        self.keyring = keyring or KeyringHistory((), Serde())
        self.root_id = root_id
        self.partition_count = source.partition_count()
        self.clock_margin_ms = clock_margin_ms
        self.serde = serde or Serde()
        self.progress = progress or Progress("decisions", enabled=False)
        self.report = DecisionReport(
            what_if=f"{what_if.name} v{what_if.version}" if what_if else None,
            policy_versions=sorted(policies.versions),
            policy_problems=list(policies.problems),
        )

    def run(self, partitions: list[int] | None = None) -> DecisionReport:
        """Replay ``partitions`` (default: all of the source, or the selected tree's)."""
        if partitions is None:
            partitions = self.partitions_in(self.source)
            if self.root_id is not None:
                from agentlog.partitioning import partition_of

                partitions = [partition_of(self.root_id, self.partition_count)]
        for partition in partitions:
            self._partition(partition)
            self.report.partitions += 1
        return self.report

    @staticmethod
    def partitions_in(source: LogSource) -> list[int]:
        """The partitions of ``source`` this replay walks."""
        return source.partitions()

    # -- one partition ------------------------------------------------------------------

    def _partition(self, partition: int) -> None:
        state = PartitionState(partition=partition, partitions=self.partition_count)
        inputs = RecordedOrder(self.source.inputs(partition))
        decided = self.source.decided_up_to(partition)
        on_the_way = _Context(1, 0)  # inputs decided on the way were decided as the group before them
        for group in self._groups(partition, self.source.decisions(partition)):
            point = group.point
            if group.cause.kind == "tick":
                assert group.cause.at is not None
                limit_ms = to_micros(group.cause.at) // 1000 + self.clock_margin_ms - 1
                self._feed(state, inputs.below(point.before) if point else inputs.until(limit_ms), decided, on_the_way)
                policy = self._policy(partition, group, None)
                replayed = expire(state, group.cause.at, policy, _silent(group))
                if point is None:  # a gate before decision points forgot ended trees without a record
                    replayed = [e for e in replayed if not isinstance(e, ev.TreeForgotten)]
                self._compare(partition, group, replayed)
                on_the_way = _Context.of(group)
                continue
            if point is None:
                found = self._feed(state, inputs.until(group.appended_ms), decided, on_the_way, group)
                note = "no input with this event id was appended before the decision"
            else:
                self._feed(state, inputs.below(point.before), decided, on_the_way)  # no target: an id repeated below
                found = self._feed(state, inputs.through(point), decided, on_the_way, group)  # the cause alone is left
                note = "the input its decision point names does not have this event id"
            if found is None:
                self._count(group)
                self._outcome(partition, group.cause, "orphan", group, [], note)
            on_the_way = _Context.of(group)
        self._feed(state, inputs.until(NEVER), decided, on_the_way)

    def _groups(self, partition: int, records: Iterator[Record]) -> Iterator[RecordedGroup]:
        """The recorded decisions in consecutive groups of one cause."""
        current: RecordedGroup | None = None
        for record in records:
            try:
                decoded = self.serde.decode_value(record.value or b"")
            except DecodeError as e:
                self.report.recorded += 1
                if current is not None:
                    yield current
                    current = None
                cause = Cause("input", position=str(record))
                self.report.outcomes.append(
                    Outcome(partition, cause, "undecodable", [{"_position": str(record)}], [], str(e), self.processor)
                )
                continue
            value, name = decoded.value, decoded.full_name
            meta = value["meta"]
            causation = meta.get("causation_id")
            if causation is not None and not isinstance(causation, uuid.UUID):
                causation = uuid.UUID(str(causation))  # a uuid inside a union may decode as text
            key: tuple[str, Any] = ("input", causation) if causation is not None else ("tick", meta["occurred_at"])
            if current is not None and current.key == key:
                current.records.append((record, value, name))
                continue
            if current is not None:
                yield current
            if causation is not None:
                cause = Cause("input", event_id=str(causation), root_id=meta.get("root_id"))
            else:
                cause = Cause("tick", at=meta["occurred_at"], root_id=meta.get("root_id"))
            version = value.get("policy_version")
            current = RecordedGroup(cause, key, [(record, value, name)], int(version) if version is not None else None)
        if current is not None:
            yield current

    def _feed(
        self,
        state: PartitionState,
        inputs: Iterator[InputRecord],
        decided: dict[int, int] | None,
        context: _Context,
        target: RecordedGroup | None = None,
    ) -> InputRecord | None:
        """Decide ``inputs`` as ``context`` says, up to ``target``'s input (decided with the target's context
        and returned when found; the rest is left unread)."""
        for record in inputs:
            self.progress.advance()
            try:
                event = decode_input(self.serde, record)
            except DecodeError:
                continue  # the gate dead-letters it
            selected = self.root_id is None or event.meta.root_id == self.root_id
            self.report.inputs += selected
            if target is not None and event.meta.event_id == target.key[1]:
                cause = Cause("input", str(event.meta.event_id), event.avro_name, str(record), None, event.meta.root_id)
                target.cause = cause
                policy = self._policy(record.partition, target, record)
                signer = self._signer(record, _Context.of(target))
                self._compare(record.partition, target, decide(state, event, policy, target.core, signer))
                return record
            outputs = decide(state, event, self._policy_at(record), context.core, self._signer(record, context))
            if not outputs or not selected:
                continue
            if decided is not None and record.offset >= decided[record.source]:
                self.report.pending += 1
                continue
            cause = Cause("input", str(event.meta.event_id), event.avro_name, str(record), None, event.meta.root_id)
            status = "changed" if self.what_if else "unrecorded"
            self._outcome(
                record.partition, cause, status, None, outputs, "the gate recorded no decision for this input"
            )
        return None

    def _signer(self, record: InputRecord, context: _Context) -> Attribution:
        """Who signed ``record``, by the keyring as the gate had read it (cores before 3 do not ask)."""
        return self.keyring.at(context.keyring).attribute(record) if context.core >= 3 else UNSIGNED

    # -- policies -----------------------------------------------------------------------

    def _policy_at(self, record: InputRecord) -> Policy | None:
        if self.what_if is not None:
            return self.what_if
        return self.policies.in_force_at(record.timestamp_ms)

    def _policy(self, partition: int, group: RecordedGroup, record: InputRecord | None) -> Policy | None:
        if self.what_if is not None:
            return self.what_if
        if group.version is None:
            return self.policies.in_force_at(record.timestamp_ms if record else group.appended_ms)
        if not self.policies.has(group.version):
            return self.policies.in_force_at(group.appended_ms)
        return self.policies.get(group.version)

    # -- comparing ----------------------------------------------------------------------

    def _compare(self, partition: int, group: RecordedGroup, replayed: list[Event]) -> None:
        if self.root_id is not None and group.cause.kind == "tick":  # a tick spans trees: keep the selected one's
            group = RecordedGroup(
                Cause("tick", at=group.cause.at, root_id=self.root_id),
                group.key,
                [(r, v, n) for r, v, n in group.records if v["meta"]["root_id"] == self.root_id],
                group.version,
            )
            replayed = [e for e in replayed if e.meta.root_id == self.root_id]
        elif self.root_id is not None and group.cause.root_id != self.root_id:
            return
        if not group.records and not replayed:
            return
        self._count(group)
        recorded = group.records
        if self.what_if is None:
            # Under the schema each decision was written with: fields added since are not compared.
            same = len(recorded) == len(replayed) and all(
                self.serde.matches(r.value or b"", e) for (r, _, _), e in zip(recorded, replayed, strict=True)
            )
            if same:
                self.report.reproduced += len(recorded)
                return
            status, note = "divergent", ""
            if group.version is not None and not self.policies.has(group.version):
                status, note = "unknown-policy", f"policy version {group.version} is not recorded anywhere"
            self._outcome(partition, group.cause, status, group, replayed, note)
            return
        before = [_outcome_fields(to_jsonable(v)) for _, v, _ in recorded]
        after = [_outcome_fields(to_jsonable(e.model_dump())) for e in replayed]
        if before == after:
            self.report.reproduced += len(recorded)
        else:
            self._outcome(partition, group.cause, "changed", group, replayed)

    def _count(self, group: RecordedGroup) -> None:
        if self.root_id is None or group.cause.root_id == self.root_id:
            self.report.groups += 1
            self.report.recorded += len(group.records)

    def _outcome(
        self,
        partition: int,
        cause: Cause,
        status: str,
        group: RecordedGroup | None,
        replayed: list[Event],
        note: str = "",
    ) -> None:
        if self.root_id is not None and cause.root_id != self.root_id:
            return
        recorded = [{"_record": n, "_position": str(r), **to_jsonable(v)} for r, v, n in group.records] if group else []
        replayed_json = [{"_record": e.avro_name, **to_jsonable(e.model_dump())} for e in replayed]
        self.report.outcomes.append(Outcome(partition, cause, status, recorded, replayed_json, note, self.processor))


_NOT_OUTCOME = frozenset({"policy_version", "checks", "message"})
"""What a what-if does not compare: which version, the limits it compared and the sentence saying so."""


def _outcome_fields(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in _NOT_OUTCOME}
