"""Follows the policy topic and keeps the newest version of one policy in force (the first content of each)."""

from __future__ import annotations

import logging

from agentlog.errors import DecodeError
from agentlog.events import PolicyPublished
from agentlog.partition_reader import BEGINNING, PartitionReader, PartitionReadError
from agentlog.processors.errors import GateError, PolicyError
from agentlog.processors.policy import Policy, from_event
from agentlog.records import Record
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import POLICY_CONFIG

log = logging.getLogger("agentlog.policy")


class PolicyReader:
    """Reads ``agentlog.policy.config`` from the beginning; ``current`` is the newest valid version."""

    def __init__(self, settings: Settings, policy_name: str) -> None:
        self.policy_name = policy_name
        self.current: Policy | None = None
        self._serde = Serde.from_settings(settings)
        self._reader = PartitionReader(settings)
        topic = settings.topic_prefix + POLICY_CONFIG.name
        self._reader.assign((topic, p, BEGINNING) for p in range(POLICY_CONFIG.partitions))

    def catch_up(self, timeout_s: float = 60.0) -> None:
        """Read every published version (to the end of the topic) before deciding anything."""
        self._reader.patience_s = timeout_s
        try:
            for record in self._reader.read_to_end():
                self._apply(record)
        except PartitionReadError as e:
            raise GateError(f"could not read the policy topic: {e}") from e
        log.info("policy %s in force: %s", self.policy_name, self.current.version if self.current else "none")

    def close(self) -> None:
        """Close the consumer (a reader used once, to learn the version in force)."""
        self._reader.close()

    def poll(self) -> None:
        """Apply versions published since the last call (non-blocking)."""
        try:
            records = self._reader.follow(100)
        except PartitionReadError as e:
            raise GateError(f"reading the policy topic: {e}") from e
        for record in records:
            self._apply(record)

    def _apply(self, record: Record) -> None:
        try:
            event = self._serde.decode(record.value or b"")
            if not isinstance(event, PolicyPublished) or event.policy_name != self.policy_name:
                return
            policy = from_event(event)
        except (DecodeError, PolicyError, ValueError) as e:
            log.error("ignoring an unusable policy record at %s: %s", record, e)
            return
        if self.current is None or policy.version > self.current.version:
            self.current = policy
            log.info("policy %s version %d now in force", policy.name, policy.version)
        elif policy.version == self.current.version and policy.content_hash() != self.current.content_hash():
            # The first content of a version stands (replay reads it the same way); only a
            # publisher bypassing `agentlog policy publish` can write a second one.
            log.error("ignoring policy %s version %d published again with other content", policy.name, policy.version)
