"""Follows the policy topic and keeps the newest version of one policy in force (the first content of each)."""

from __future__ import annotations

import logging

from agentlog.errors import DecodeError
from agentlog.events import PolicyPublished
from agentlog.processors.errors import PolicyError
from agentlog.processors.policy import Policy, from_event
from agentlog.processors.side_input import SideInput
from agentlog.records import Record
from agentlog.settings import Settings
from agentlog.topics import POLICY_CONFIG

log = logging.getLogger("agentlog.policy")


class PolicyReader(SideInput):
    """Reads ``agentlog.policy.config`` from the beginning; ``current`` is the newest valid version."""

    what = "the policy topic"

    def __init__(self, settings: Settings, policy_name: str) -> None:
        super().__init__(settings, POLICY_CONFIG)
        self.policy_name = policy_name
        self.current: Policy | None = None

    def catch_up(self, timeout_s: float = 60.0) -> None:
        """Read every published version (to the end of the topic) before deciding anything."""
        super().catch_up(timeout_s)
        log.info("policy %s in force: %s", self.policy_name, self.current.version if self.current else "none")

    def apply(self, record: Record) -> None:
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
