"""What part of the log an export or a replay report is about: a tree, a subtree, a tenant, a time range."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentlog import events as ev
from agentlog.errors import DecodeError
from agentlog.partitioning import partition_of
from agentlog.replay.errors import SelectionError
from agentlog.replay.topic_reader import partitions_of, read_partition
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import POLICY_DECISIONS

AGENT_FIELDS = ("agent_id", "child_agent_id", "parent_agent_id", "from_agent_id", "to_agent_id", "ended_by_agent_id")
"""Fields that name an agent (the same the audit table's ``agent_ids`` collects)."""


@dataclass(frozen=True)
class Selection:
    """Which records to take; every given criterion must hold. Nothing given: everything."""

    root_id: str | None = None
    agent_id: str | None = None
    """The subtree under this agent (the agent included)."""
    tenant_id: str | None = None
    since: datetime | None = None
    """Broker append time from (included)."""
    until: datetime | None = None
    """Broker append time up to (excluded)."""

    @property
    def everything(self) -> bool:
        """True when nothing is filtered out: the export holds every record of every partition it read."""
        return not (self.root_id or self.agent_id or self.tenant_id or self.since or self.until)

    def as_json(self) -> dict[str, Any]:
        """The request as recorded in a manifest."""
        return {
            "root_id": self.root_id,
            "agent_id": self.agent_id,
            "tenant_id": self.tenant_id,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }

    def tree_partition(self, partitions: int) -> int | None:
        """The one partition of the tree-keyed topics the selection lives in, if it names a tree."""
        return partition_of(self.root_id, partitions) if self.root_id else None

    def in_time(self, timestamp_ms: int) -> bool:
        """Whether an append time falls in ``[since, until)``."""
        if self.since is not None and timestamp_ms < self.since.timestamp() * 1000:
            return False
        return self.until is None or timestamp_ms < self.until.timestamp() * 1000


def names_any(value: dict[str, Any], agents: set[str] | frozenset[str]) -> bool:
    """Whether a decoded record names one of ``agents`` in any agent role."""
    return any(value.get(name) in agents for name in AGENT_FIELDS)


def find_root(settings: Settings, agent_id: str) -> str:
    """The root of the tree ``agent_id`` belongs to, from the recorded decisions (one pass, flat memory)."""
    serde = Serde.from_settings(settings)
    topic = settings.topic_prefix + POLICY_DECISIONS.name
    needle = agent_id.encode()
    for partition in partitions_of(settings, topic):
        for record in read_partition(settings, topic, partition):
            if record.value is None or needle not in record.value:
                continue
            try:
                event = serde.decode(record.value)
            except (DecodeError, ValueError):
                continue
            if isinstance(event, ev.RootAdmitted) and event.agent_id == agent_id:
                return event.meta.root_id
            if isinstance(event, ev.SpawnApproved) and event.child_agent_id == agent_id:
                return event.meta.root_id
    raise SelectionError(f"no recorded decision admits or approves agent {agent_id!r}: it belongs to no known tree")


def subtree(settings: Settings, root_id: str, agent_id: str) -> frozenset[str]:
    """``agent_id`` and every agent approved below it, from the tree's recorded decisions."""
    serde = Serde.from_settings(settings)
    topic = settings.topic_prefix + POLICY_DECISIONS.name
    partition = partition_of(root_id, len(partitions_of(settings, topic)))
    children: dict[str, list[str]] = defaultdict(list)
    key = root_id.encode()
    for record in read_partition(settings, topic, partition):
        if record.key != key or record.value is None:
            continue
        try:
            event = serde.decode(record.value)
        except (DecodeError, ValueError):
            continue
        if isinstance(event, ev.SpawnApproved) and event.meta.root_id == root_id:
            children[event.parent_agent_id].append(event.child_agent_id)
    found = {agent_id}
    stack = [agent_id]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return frozenset(found)
