"""The spawn gate's heartbeat watch: which agents promised heartbeats, when each was last heard, who fell silent.

An agent whose start asked for heartbeats (``AgentStarted.heartbeat``) is answered with the
policy's interval (``AgentRunning.heartbeat_interval_ms``) and is watched from then on: its
runtime sends ``AgentHeartbeat`` records to ``agentlog.agent.heartbeats`` (co-partitioned,
kept an hour, never audited), which the gate reads beside its inputs, outside its
transactions. At each timer tick the agents not heard from for the interval times
``limits.heartbeat_misses`` are handed to :func:`agentlog.processors.spawn_gate.expire` as
*silent*; it times them out (``AgentTimedOut``, cause ``HEARTBEAT_MISSED``, with the last
beat) with the usual cascade and token return. The audit therefore records the misses, not
the beats, and replay takes the recorded misses as the watch's word.

Silence is judged only as far as the beats have been read: at each tick the watch asks the
broker for the partition's end and, if its reader stands there, counts the beats appended
before that moment (less :data:`READ_MARGIN_MS`) as heard. A gate that falls behind on
the heartbeat topic never times out an agent that kept beating. When the end could not be
confirmed for longer than :data:`GAP_MS` (the broker did not answer, the worker stalled),
runtimes may not have been able to deliver their beats either: every agent of the
partition gets a full timeout from the moment reading is confirmed again. A worker that
takes a partition over (a start, a rebalance, a rewind after an aborted batch) has not
heard any of its agents yet: each gets a full timeout from that moment, and so does an
agent whose start the gate answers late (a backlog).

A beat counts only for a watched agent of its tree, from the tree's tenant, and signed as
the gate's identity rules allow for a report about that agent (:mod:`.identity`); other
beats are ignored and counted. A forged beat can only postpone a timeout to the agent's
deadline, never end an agent.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.errors import AgentlogError, DecodeError
from agentlog.processors import identity
from agentlog.processors.cascade import Silent
from agentlog.processors.gate_input import decode_record
from agentlog.processors.input_merge import InputRecord
from agentlog.processors.keyring_reader import KeyringReader
from agentlog.processors.policy import Policy
from agentlog.processors.tree_state import PartitionState
from agentlog.records import Record
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import HEARTBEATS
from agentlog.watermarks import watermarks

log = logging.getLogger("agentlog.processors.heartbeats")

READ_MARGIN_MS = 500
"""Beats appended this shortly before the reader stood at a partition's end may still be in flight."""
GAP_MS = 5_000
"""Longer than this without a confirmed end, and every agent of the partition gets a fresh timeout."""
_BATCH = 2_000


@dataclass(slots=True)
class Watched:
    """One agent that promised heartbeats."""

    tenant_id: str
    since_ms: int
    """When its clock (re)started: its start, this worker taking the partition over, or reading resumed after
    a gap. Silence is counted from this or its newest beat, whichever is later."""
    last_ms: int | None = None
    """Append time of its newest beat (None: none heard yet)."""


@dataclass
class HeartbeatLedger:
    """The watched agents of one partition and how far its beats are read: the watch's pure part."""

    agents: dict[tuple[str, str], Watched] = field(default_factory=dict)
    heard_to_ms: int = 0
    """Beats appended before this moment (ms) have all been read."""

    @classmethod
    def taken_over(cls, state: PartitionState, now_ms: int) -> HeartbeatLedger:
        """The ledger of a partition this worker just took: its agents that promised heartbeats, none heard."""
        ledger = cls(heard_to_ms=now_ms)
        for tree in state.trees.values():
            for agent in tree.agents.values():
                if agent.active and agent.heartbeat_ms:
                    ledger.agents[tree.root_id, agent.agent_id] = Watched(tree.tenant_id, now_ms)
        return ledger

    def watch(self, root_id: str, agent_id: str, tenant_id: str, since_ms: int) -> None:
        """Start watching an agent whose start promised heartbeats (again: its clock starts over)."""
        self.agents[root_id, agent_id] = Watched(tenant_id, since_ms)

    def beat(self, root_id: str, agent_id: str, appended_ms: int) -> bool:
        """Record a beat; False when the agent is not watched here."""
        watched = self.agents.get((root_id, agent_id))
        if watched is None:
            return False
        if watched.last_ms is None or appended_ms > watched.last_ms:
            watched.last_ms = appended_ms
        return True

    def confirmed(self, at_ms: int) -> None:
        """The reader stood at the partition's end at ``at_ms``: beats appended before it (less the margin) are
        read. After a gap longer than :data:`GAP_MS`, every agent's clock starts again at ``at_ms``."""
        if at_ms - self.heard_to_ms > GAP_MS + READ_MARGIN_MS:
            for watched in self.agents.values():
                watched.since_ms = max(watched.since_ms, at_ms)
        self.heard_to_ms = max(self.heard_to_ms, at_ms - READ_MARGIN_MS)

    def silent(self, state: PartitionState, now_ms: int, policy: Policy | None) -> Silent:
        """The watched agents not heard from for their heartbeat timeout as of ``now_ms`` (as far as beats are
        read), with their last beat in µs; agents that ended or promised nothing any more are dropped."""
        judged_at = min(now_ms, self.heard_to_ms)
        found: dict[tuple[str, str], int | None] = {}
        for key, watched in list(self.agents.items()):
            tree = state.live_tree(key[0])
            agent = tree.agents.get(key[1]) if tree is not None else None
            if agent is None or not agent.active or not agent.heartbeat_ms:
                del self.agents[key]
                continue
            heard = max(watched.last_ms or 0, watched.since_ms)
            if judged_at - heard > agent.heartbeat_ms:
                found[key] = watched.last_ms * 1000 if watched.last_ms is not None else None
        return found


class HeartbeatWatch:
    """Reads the heartbeat topic for the partitions the worker owns and keeps a :class:`HeartbeatLedger` each."""

    def __init__(self, settings: Settings, serde: Serde, keyring: KeyringReader) -> None:
        self._serde = serde
        self._keyring = keyring
        self.topic = settings.topic_prefix + HEARTBEATS.name
        self._consumer = Consumer({**kafka_config.reader(settings), "fetch.wait.max.ms": 100})
        self.ledgers: dict[int, HeartbeatLedger] = {}
        self._next: dict[int, int | None] = {}
        """Per partition, the offset after the last beat read (None: unknown until one is read)."""
        self._asked: dict[int, tuple[int, int]] = {}
        """Per partition, the end the broker named at a tick and when it was asked, until reading reaches it."""
        self.ignored: Counter[str] = Counter()
        """Beats that did not count, by reason."""
        self.beats = 0
        """Beats that counted."""

    def take_over(self, states: Mapping[int, PartitionState]) -> None:
        """Watch the agents of newly owned (or restored) partitions, reading their beats from now on."""
        now_ms = _now_ms()
        fresh = [p for p in states if p not in self.ledgers]
        for partition, state in states.items():
            self.ledgers[partition] = HeartbeatLedger.taken_over(state, now_ms)
        starts = []
        for partition in sorted(fresh):
            self._next[partition] = self._end(partition)
            start = self._next[partition]
            starts.append(TopicPartition(self.topic, partition, start if start is not None else OFFSET_END))
        if starts:
            self._consumer.incremental_assign(starts)

    def give_up(self, partitions: list[int]) -> None:
        """Stop watching revoked partitions."""
        gone = [p for p in partitions if self.ledgers.pop(p, None) is not None]
        for partition in gone:
            self._next.pop(partition, None)
            self._asked.pop(partition, None)
        if gone:
            self._consumer.incremental_unassign([TopicPartition(self.topic, p) for p in sorted(gone)])

    def expect(self, partition: int, fact: ev.AgentRunning) -> None:
        """A start the gate just answered with a heartbeat interval: its clock starts now (however old the start:
        the runtime hears the interval only now)."""
        ledger = self.ledgers.get(partition)
        if ledger is not None:
            ledger.watch(fact.meta.root_id, fact.agent_id, fact.meta.tenant_id, _now_ms())

    def poll(self, policy: Policy | None) -> None:
        """Take in the beats appended since the last call (without waiting)."""
        if not self.ledgers:
            return
        for msg in self._consumer.consume(_BATCH, 0):
            partition = msg.partition()
            if msg.error() is not None or partition is None or partition not in self.ledgers:
                continue  # a broker that is away: the end goes unconfirmed, so no one is judged silent
            record = Record.from_message(msg)
            self._next[partition] = record.offset + 1
            self._take(self.ledgers[partition], record, policy)
        for partition in list(self._asked):
            self._reached(partition)

    def silent(self, state: PartitionState, now_ms: int, policy: Policy | None) -> Silent:
        """The agents of ``state``'s partition whose heartbeats stopped (see :meth:`HeartbeatLedger.silent`),
        after asking the broker whether every beat of the partition is read."""
        ledger = self.ledgers.get(state.partition)
        if ledger is None:
            return {}
        if ledger.agents:
            self._confirm_end(state.partition, ledger)
        return ledger.silent(state, now_ms, policy)

    def _confirm_end(self, partition: int, ledger: HeartbeatLedger) -> None:
        """Ask the broker for the partition's end (unless an earlier answer is still to be reached): once reading
        reaches it, every beat appended before the moment of asking is read. Beats keep coming while the gate
        reads, so the end asked for is reached later, not at once."""
        if partition not in self._asked:
            end = self._end(partition)
            if end is None:
                return  # the broker is away: nothing is confirmed
            self._asked[partition] = (end, _now_ms())
        self._reached(partition)

    def _reached(self, partition: int) -> None:
        end, asked_ms = self._asked[partition]
        read = self._next.get(partition)
        if read is not None and read >= end:
            del self._asked[partition]
            self.ledgers[partition].confirmed(asked_ms)

    def _end(self, partition: int) -> int | None:
        """The partition's end now, from the broker (None: it did not answer within 2 s)."""
        try:
            return watermarks(self._consumer, self.topic, partition, timeout_s=2)[1]
        except AgentlogError:
            return None

    def _take(self, ledger: HeartbeatLedger, record: Record, policy: Policy | None) -> None:
        try:
            beat = decode_record(self._serde, InputRecord.of(0, record), HEARTBEATS)
        except DecodeError as e:  # not a heartbeat, misplaced, too large
            self._ignore("undecodable", record, str(e))
            return
        assert isinstance(beat, ev.AgentHeartbeat)
        watched = ledger.agents.get((beat.meta.root_id, beat.agent_id))
        if watched is None:
            self._ignore("not watched", record, f"agent {beat.agent_id} of {beat.meta.root_id} is not watched here")
            return
        if beat.meta.tenant_id != watched.tenant_id:
            self._ignore("tenant", record, f"tenant {beat.meta.tenant_id} does not own tree {beat.meta.root_id}")
            return
        refused = identity.refusal(beat, self._keyring.attribute(record), policy)
        if refused is not None:
            self._ignore("signature", record, refused.message)
            return
        ledger.beat(beat.meta.root_id, beat.agent_id, record.timestamp_ms)
        self.beats += 1

    def _ignore(self, reason: str, record: Record, detail: str) -> None:
        if not self.ignored[reason]:
            log.warning("ignoring heartbeat %s (%s); further ones are only counted: %s", record, reason, detail)
        self.ignored[reason] += 1


def _now_ms() -> int:
    return int(time.time() * 1000)
