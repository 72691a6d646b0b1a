"""One consumer per client on the decisions partitions of the trees it serves: replies and signals.

The client asks the follower to *serve* a tree before it publishes anything about it: the
follower assigns the tree's partition of the decisions topic (every tree-keyed topic has
the same partition for a tree), from an explicit offset so that no answer can slip past,
and from then on reads it. Each record's key is its tree's root id, so records of trees it
does not serve are skipped without being decoded. A decoded fact goes to

- the waiter of the request it answers (``meta.causation_id``), and
- the handle of the agent it names (``agent_id``), or, for a circuit fact, every handle of
  the tree (:mod:`agentlog.handles`).

**Positions.** A client with a ``client_id`` keeps, in the consumer group
``<prefix>agentlog-sdk-<client_id>``, the offset per partition below which no handle it
holds needs anything: the lowest of its handles' next offsets (an ended handle holds its
final fact until released), or what it has read when it holds none. A restarted client with
the same id re-attaches its agents from there (``AgentlogClient.attach``) and receives every
signal they missed. A client without an id keeps nothing; ``attach`` then needs the
position (``since``), which a handle reports as ``next_offset``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Message, TopicPartition

from agentlog import events as ev
from agentlog import kafka_config
from agentlog.errors import AgentlogError
from agentlog.handles import SIGNAL_FACTS, TREE_SIGNAL_FACTS, AgentHandle
from agentlog.partitioning import partition_of
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import POLICY_DECISIONS, TopicSpec
from agentlog.watermarks import watermarks

log = logging.getLogger(__name__)

COMMIT_EVERY_S = 1.0
"""How often a client with a ``client_id`` stores its positions."""


def run_on_follower(
    commands: queue.SimpleQueue[Callable[[], None]], command: Callable[[], object], timeout: float, what: str
) -> None:
    """Run ``command`` on a follower thread that runs what ``commands`` holds between two reads, and wait for it
    (re-raising its failure here); ``what`` the follower follows, for the errors."""
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            command()
        except BaseException as e:  # re-raised in the caller's thread
            failure.append(e)
        finally:
            done.set()

    commands.put(run)
    if not done.wait(timeout):
        raise AgentlogError(f"the client's follower of {what} did not answer within {timeout:g}s")
    if failure:
        raise AgentlogError(f"following {what}: {failure[0]}") from failure[0]


def next_reads(consumer: Consumer, commands: queue.SimpleQueue[Callable[[], None]]) -> list[Message]:
    """One turn of a follower thread: run the commands waiting for it, then what the consumer has (none when it
    failed: a closing consumer, or a broker problem it retries itself).

    ``poll`` returns on the first record (``consume`` would wait out its timeout for a full batch); what else has
    arrived is then taken without waiting.
    """
    while not commands.empty():
        commands.get()()
    try:
        first = consumer.poll(0.02)
        return [] if first is None else [first, *consumer.consume(999, 0)]
    except KafkaException as e:
        log.debug("consume: %s", e)
        return []


@dataclass
class Slot:
    """What a request waits on: the decisions it caused, and whether an answer came."""

    answers: tuple[type[ev.Event], ...]
    about: str | None = None
    """Only a fact naming this mission (``mission_id``) answers: a command may cause facts about others first
    (a cancellation ends the descendants before the mission)."""
    done: threading.Event = field(default_factory=threading.Event)
    replies: list[tuple[ev.Event, int]] = field(default_factory=list)
    """Each decision with its offset."""

    def answers_with(self, fact: ev.Event) -> bool:
        """Whether ``fact`` is the answer."""
        if not isinstance(fact, self.answers):
            return False
        return self.about is None or getattr(fact, "mission_id", None) == self.about

    def answer(self) -> tuple[ev.Event, int] | None:
        """The answer and its offset, once there is one."""
        return next(((d, o) for d, o in self.replies if self.answers_with(d)), None)


class FactFollower:
    """Reads the decisions partitions of the served trees on one thread and routes each fact (another tree-keyed
    topic of facts with ``spec``: the mission processor's, whose answers have no handles to go to)."""

    def __init__(
        self, settings: Settings, serde: Serde, client_id: str | None = None, spec: TopicSpec = POLICY_DECISIONS
    ) -> None:
        self.topic = settings.topic_prefix + spec.name
        self.keeps_positions = client_id is not None
        group = f"{settings.topic_prefix}{kafka_config.SDK_GROUP}{client_id}" if client_id is not None else None
        self._serde = serde
        self._consumer = Consumer(kafka_config.reader(settings, group))
        # Positions are looked up with a second client: a consumer busy in consume() on the follower
        # thread does not answer watermark queries from another thread.
        self._lookup = Consumer(kafka_config.reader(settings, group))
        metadata = self._lookup.list_topics(self.topic, timeout=10).topics[self.topic]
        if metadata.error is not None:
            raise AgentlogError(f"topic {self.topic} is not available: {metadata.error.str()}")
        self.partitions = len(metadata.partitions)
        self._lock = threading.Lock()
        self._assigned: dict[int, int] = {}
        """Each assigned partition and the offset after the last record read there."""
        self._roots: set[bytes] = set()
        self._waiters: dict[uuid.UUID, Slot] = {}
        self._asking: dict[uuid.UUID, str] = {}
        """The tree each awaited request is about."""
        self._handles: dict[tuple[str, str], AgentHandle] = {}
        self._tree_handles: dict[str, set[AgentHandle]] = defaultdict(set)
        self._kept = self._committed()
        """Per partition the position kept in the group: read at the start, then what this client commits."""
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wanted: dict[int, int] = {}
        """Starts asked for and not yet applied by the follower, per partition."""
        self._live: set[int] = set()
        """Partitions the consumer is assigned (the follower thread's view)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentlog-facts", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ serving trees

    def partition(self, root_id: str) -> int:
        """The decisions partition of a tree."""
        return partition_of(root_id, self.partitions)

    def serve(self, root_id: str, since: int | None = None) -> int:
        """Follow ``root_id``'s partition from ``since`` (or the kept position, or the end) if not already; the
        offset from which its facts will be seen.

        Every start asked for is recorded per partition (the lowest one wins) and the follower
        thread reconciles: it assigns a partition it does not read yet from the lowest start,
        and reads one it does read again from a start below its position (handles skip what
        they had), in whatever order the requests of several threads arrive.
        """
        partition = self.partition(root_id)
        with self._lock:
            self._roots.add(root_id.encode())
            read = self._assigned.get(partition)
        if read is None:
            start = since if since is not None else self._kept_position(partition)
            if start is None:
                start = watermarks(self._lookup, self.topic, partition)[1]
        elif since is not None and since < read:
            start = since
        else:
            return since if since is not None else read
        with self._lock:
            self._wanted[partition] = min(start, self._wanted.get(partition, start))
            self._assigned[partition] = min(start, self._assigned.get(partition, start))
        try:
            self._on_follower(lambda: self._reconcile(partition))
        except AgentlogError:
            with self._lock:
                if partition not in self._live:  # not followed after all: the next request tries again
                    self._assigned.pop(partition, None)
                    self._wanted.pop(partition, None)
            raise
        return start

    def _reconcile(self, partition: int) -> None:
        """On the follower thread: read ``partition`` from the lowest start asked for."""
        with self._lock:
            wanted = self._wanted.pop(partition, None)
        if wanted is None:
            return  # an earlier command did it
        if partition not in self._live:
            self._consumer.incremental_assign([TopicPartition(self.topic, partition, wanted)])
            self._live.add(partition)
            return
        (position,) = self._consumer.position([TopicPartition(self.topic, partition)])
        if position.offset < 0 or wanted < position.offset:
            try:
                self._consumer.seek(TopicPartition(self.topic, partition, wanted))
            except KafkaException:  # a partition assigned a moment ago cannot seek yet: assign it again
                self._consumer.incremental_unassign([TopicPartition(self.topic, partition)])
                self._consumer.incremental_assign([TopicPartition(self.topic, partition, wanted)])

    def _on_follower(self, command: Callable[[], object], timeout: float = 30.0) -> None:
        """Run ``command`` on the follower thread between two reads (the consumer is not shared across threads)."""
        if threading.current_thread() is self._thread:  # called from a signal callback
            command()
            return
        run_on_follower(self._commands, command, timeout, self.topic)

    @property
    def on_follower_thread(self) -> bool:
        """Whether the caller is the follower thread (a signal callback), which cannot wait for a decision."""
        return threading.current_thread() is self._thread

    def position(self, partition: int) -> int | None:
        """The offset after the last record read on ``partition`` (None: not followed)."""
        with self._lock:
            return self._assigned.get(partition)

    def kept_position(self, root_id: str) -> int | None:
        """The position this client kept for the tree's partition (None without a ``client_id`` or a commit)."""
        return self._kept_position(self.partition(root_id))

    def _kept_position(self, partition: int) -> int | None:
        with self._lock:
            return self._kept.get(partition)

    def _committed(self) -> dict[int, int]:
        """The positions kept in this client's group, every partition in one request (read once, at the start)."""
        if not self.keeps_positions:
            return {}
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        committed = self._lookup.committed(tps, timeout=10)
        return {tp.partition: tp.offset for tp in committed if tp.offset != OFFSET_INVALID and tp.offset >= 0}

    # ------------------------------------------------------------------ waiters and handles

    def expect(self, event_id: uuid.UUID, root_id: str, slot: Slot) -> None:
        """Put the decisions caused by ``event_id`` (about tree ``root_id``) into ``slot`` (attempts may share one)."""
        with self._lock:
            self._waiters[event_id] = slot
            self._asking[event_id] = root_id

    def forget(self, event_id: uuid.UUID) -> None:
        with self._lock:
            self._waiters.pop(event_id, None)
            self._asking.pop(event_id, None)

    def add(self, handle: AgentHandle) -> None:
        """Route the facts about ``handle``'s agent (and its tree's circuit) to it."""
        with self._lock:
            self._handles[(handle.root_id, handle.agent_id)] = handle
            self._tree_handles[handle.root_id].add(handle)
            self._roots.add(handle.root_id.encode())

    def remove(self, handle: AgentHandle) -> None:
        with self._lock:
            if self._handles.get((handle.root_id, handle.agent_id)) is handle:
                del self._handles[(handle.root_id, handle.agent_id)]
            tree = self._tree_handles.get(handle.root_id)
            if tree is not None:
                tree.discard(handle)
                if not tree:
                    del self._tree_handles[handle.root_id]
                    if handle.root_id not in self._asking.values():  # nothing more to hear of the tree
                        self._roots.discard(handle.root_id.encode())

    def handle(self, root_id: str, agent_id: str) -> AgentHandle | None:
        with self._lock:
            return self._handles.get((root_id, agent_id))

    @property
    def handle_count(self) -> int:
        with self._lock:
            return len(self._handles)

    # ------------------------------------------------------------------ the follower thread

    def _run(self) -> None:
        last_commit = time.monotonic()
        while not self._stop.is_set():
            for msg in next_reads(self._consumer, self._commands):
                error = msg.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.debug("decisions: %s", error.str())
                    continue
                appended = msg.timestamp()[1]
                self._route(msg.key(), msg.value(), msg.partition() or 0, msg.offset() or 0, appended)
            if self.keeps_positions and time.monotonic() - last_commit >= COMMIT_EVERY_S:
                last_commit = time.monotonic()
                self._keep_positions()

    def _route(self, key: bytes | None, value: bytes | None, partition: int, offset: int, appended_ms: int) -> None:
        with self._lock:
            if partition in self._assigned:
                self._assigned[partition] = max(self._assigned[partition], offset + 1)
            if key not in self._roots:
                return
        try:
            fact = self._serde.decode(value or b"")
        except Exception:  # a record this client cannot read is no answer and no signal: keep following
            return
        cause = fact.meta.causation_id
        with self._lock:
            slot = self._waiters.get(cause) if cause is not None else None
            if isinstance(fact, TREE_SIGNAL_FACTS):
                targets = list(self._tree_handles.get(fact.meta.root_id, ()))
            elif isinstance(fact, ev.TokensCharged):  # the agent that pays, which may not be the reporter
                found = self._handles.get((fact.meta.root_id, fact.charged_agent_id))
                targets = [found] if found is not None else []
            elif isinstance(fact, (*SIGNAL_FACTS, ev.AgentRunning)):  # a start's answer names the heartbeat interval
                found = self._handles.get((fact.meta.root_id, fact.agent_id))  # type: ignore[attr-defined]
                targets = [found] if found is not None else []
            else:
                targets = []
        if slot is not None and all(o != offset for _, o in slot.replies):
            slot.replies.append((fact, offset))
            if slot.answers_with(fact):
                slot.done.set()
        for handle in targets:
            handle.deliver(fact, offset, appended_ms)

    def _keep_positions(self) -> None:
        """Store per partition the lowest offset a held handle needs, or what was read if none is held."""
        with self._lock:
            low = dict(self._assigned)
            for handle in self._handles.values():
                holds = handle.holds
                if holds is not None and handle.partition in low:
                    low[handle.partition] = min(low[handle.partition], holds)
        changed = [TopicPartition(self.topic, p, o) for p, o in low.items() if self._kept.get(p) != o]
        if not changed:
            return
        try:
            self._consumer.commit(offsets=changed, asynchronous=True)  # never holds up the signals
        except KafkaException as e:  # kept next time; a restart then reads a little more again
            log.warning("could not keep the positions of the decisions partitions: %s", e.args[0].str())
            return
        with self._lock:
            self._kept.update({tp.partition: tp.offset for tp in changed})

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self.keeps_positions:
            self._keep_positions()
        self._consumer.close()
        self._lookup.close()
