"""Follows the policy topic and keeps the newest version of one policy in force (the first content of each)."""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from agentlog import kafka_config
from agentlog.errors import DecodeError
from agentlog.events import PolicyPublished
from agentlog.processors.errors import GateError, PolicyError
from agentlog.processors.policy import Policy, from_event
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
        self._consumer = Consumer({**kafka_config.reader(settings), "enable.partition.eof": True})
        topic = settings.topic_prefix + POLICY_CONFIG.name
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(POLICY_CONFIG.partitions)])

    def catch_up(self, timeout_s: float = 60.0) -> None:
        """Read every published version (to the end of the topic) before deciding anything."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self._consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                log.info("policy %s in force: %s", self.policy_name, self.current.version if self.current else "none")
                return
            self._apply(msg)
        raise GateError(f"could not read the policy topic within {timeout_s}s")

    def close(self) -> None:
        """Close the consumer (a reader used once, to learn the version in force)."""
        self._consumer.close()

    def poll(self) -> None:
        """Apply versions published since the last call (non-blocking)."""
        for msg in self._consumer.consume(100, 0):
            self._apply(msg)

    def _apply(self, msg: object) -> None:
        error = msg.error()  # type: ignore[attr-defined]
        if error is not None:
            if error.fatal():
                raise GateError(f"reading the policy topic: {error.str()}")
            return  # the end of the topic, or a broker that is away: the next poll reads on
        try:
            event = self._serde.decode(msg.value() or b"")  # type: ignore[attr-defined]
            if not isinstance(event, PolicyPublished) or event.policy_name != self.policy_name:
                return
            policy = from_event(event)
        except (DecodeError, PolicyError, ValueError) as e:
            log.error("ignoring an unusable policy record: %s", e)
            return
        if self.current is None or policy.version > self.current.version:
            self.current = policy
            log.info("policy %s version %d now in force", policy.name, policy.version)
        elif policy.version == self.current.version and policy.content_hash() != self.current.content_hash():
            # The first content of a version stands (replay reads it the same way); only a
            # publisher bypassing `agentlog policy publish` can write a second one.
            log.error("ignoring policy %s version %d published again with other content", policy.name, policy.version)
