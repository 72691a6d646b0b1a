"""The part every processor with a pure core over keyed state shares: its topics, changelog, policy and restore.

The mission processor and the consultation bus are such processors: a pure ``decide``
and ``expire`` over one partition's state, facts to one topic, the state in a compacted
changelog of JSON records, and the deployment's policy as a side input. A subclass names
its topics and plugs in its core; the commit protocol, recovery and rebalancing are the
runtime's (:mod:`.runtime`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from agentlog.events import Event
from agentlog.metrics import Gauges
from agentlog.partition_reader import PartitionReadError, read_changelog
from agentlog.processors.errors import GateError
from agentlog.processors.input_merge import InputRecord, MergeOrder
from agentlog.processors.policy import Policy
from agentlog.processors.policy_reader import PolicyReader
from agentlog.processors.runtime import RESTORE_TIMEOUT_S, ChangelogRecord, Decided, Unreadable
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import ensure_topics
from agentlog.topics import TopicSpec, topic_of

S = TypeVar("S")


class CoreProcessor(Generic[S]):
    """A processor of the runtime around a pure core; subclasses set the class attributes and the four hooks."""

    name: str
    stage: str
    order: MergeOrder
    core_version: int
    sources: tuple[TopicSpec, ...]
    output: TopicSpec
    handed_over: tuple[type[Event], ...] = ()
    """Outputs that are other processors' input, each written to its own topic (``Processor.side_topics``)."""
    state_changelog: TopicSpec
    what: str
    """What its state is of, for errors ("mission partitions")."""

    def __init__(self, settings: Settings, policy_name: str) -> None:
        self.settings = settings
        self.serde = Serde.from_settings(settings)
        self.input_topics = tuple(settings.topic_prefix + spec.name for spec in self.sources)
        self.output_topic = settings.topic_prefix + self.output.name
        self.side_topics = {t.avro_name: settings.topic_prefix + topic_of(t).name for t in self.handed_over}
        self.changelog_topic = settings.topic_prefix + self.state_changelog.name
        ensure_topics(settings, (self.state_changelog,))
        self.policies = PolicyReader(settings, policy_name)

    # -- the hooks ----------------------------------------------------------------------

    def decode(self, record: InputRecord) -> Event | None:
        """The event an input holds, or None for one the core ignores; raises for bytes that are not an input."""
        raise NotImplementedError

    def decide_event(self, state: S, event: Event, record: InputRecord, policy: Policy | None) -> Decided:
        raise NotImplementedError

    def expire(self, state: S, now: datetime) -> Decided:
        raise NotImplementedError

    def restore_partition(self, partition: int, records: dict[bytes, bytes | None]) -> S:
        raise NotImplementedError

    def changelog(self, partition: int, state: S, changed: set[str]) -> list[ChangelogRecord]:
        raise NotImplementedError

    # -- the runtime's protocol ---------------------------------------------------------

    def start(self) -> None:
        self.policies.catch_up()

    def poll(self) -> None:
        self.policies.poll()

    def restore(self, partitions: list[int]) -> dict[int, S]:
        try:
            latest = read_changelog(self.settings, self.changelog_topic, partitions, RESTORE_TIMEOUT_S)
        except PartitionReadError as e:
            raise GateError(f"restoring {self.what} {sorted(partitions)}: {e}") from e
        return {p: self.restore_partition(p, records) for p, records in latest.items()}

    def forget(self, partitions: list[int]) -> None:
        """Nothing is kept beside the states."""

    def gauges(self, states: dict[int, S]) -> Gauges:
        """No gauges of its own (the runtime's lag is everyone's)."""
        return {}

    def decide(self, state: S, record: InputRecord) -> Decided:
        try:
            event = self.decode(record)
        except Exception as e:  # any input that is not a valid event is dead-lettered, never retried
            raise Unreadable(str(e)) from e
        if event is None:
            return Decided([], set())
        return self.decide_event(state, event, record, self.policies.current)
