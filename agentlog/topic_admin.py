"""Creates and updates the catalogue's topics on the broker, idempotently, and reads the deployment's partition count.

The tree-keyed topics are co-partitioned: partition *p* of each holds the same trees (a
tree's partition is murmur2 of its root id modulo the count). Their count is chosen
once, when the first of them is created (``AGENTLOG_TREE_PARTITIONS``, default
:data:`~agentlog.topics.DEFAULT_TREE_PARTITIONS`); later topics get the count the
existing ones have, and components read it from the broker (:func:`tree_partition_count`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType  # type: ignore[attr-defined]  # re-exported at runtime, not in the stubs

from agentlog import kafka_config
from agentlog.errors import AgentlogError
from agentlog.settings import Settings
from agentlog.topics import DEFAULT_TREE_PARTITIONS, DEPLOYED, TopicSpec


@dataclass(frozen=True)
class TopicChange:
    """What ``ensure_topics`` did (or would do) to one topic."""

    topic: str
    action: str
    """``created``, ``updated``, ``unchanged`` or ``mismatch``."""
    detail: str = ""


class TopicAdminError(AgentlogError):
    """The broker refused to create or alter a topic."""


class PartitionCountError(TopicAdminError):
    """The tree-keyed topics do not exist yet, or do not agree on their partition count."""


def _tree_counts(settings: Settings, existing: dict[str, Any], specs: tuple[TopicSpec, ...]) -> dict[str, int]:
    """Partition count of each tree-keyed topic of the deployment and of ``specs`` that exists."""
    names = dict.fromkeys(settings.topic_prefix + s.name for s in (*DEPLOYED, *specs) if s.tree_keyed)
    return {name: len(existing[name].partitions) for name in names if name in existing}


def _agreed(counts: dict[str, int]) -> int | None:
    """The one count of ``counts`` (None when empty); raises when they differ."""
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in sorted(counts.items()))
        raise PartitionCountError(
            f"the tree-keyed topics must have one partition count, but {listed}; a tree's records would be"
            " split across partitions: recreate the odd ones with the common count (see 'Partitions' in the README)"
        )
    return next(iter(counts.values()), None)


def tree_partition_count(settings: Settings, specs: tuple[TopicSpec, ...] = (), timeout: float = 30.0) -> int:
    """The partition count of the deployment's tree-keyed topics (the catalogue's and ``specs``), from the broker.

    Raises :class:`PartitionCountError` when none of them exists or when they disagree.
    """
    admin = AdminClient(kafka_config.base(settings))
    counts = _tree_counts(settings, admin.list_topics(timeout=timeout).topics, specs)
    count = _agreed(counts)
    if count is None:
        raise PartitionCountError(
            f"no agentlog topics exist under the prefix {settings.topic_prefix!r}: create them with"
            " `agentlog topics create`"
        )
    return count


def ensure_topics(
    settings: Settings, specs: tuple[TopicSpec, ...] = DEPLOYED, *, dry_run: bool = False, timeout: float = 30.0
) -> list[TopicChange]:
    """Create missing topics and bring the configs of existing ones to the catalogue's values.

    Partition counts are never changed on an existing topic: that would move keys between
    partitions and break the ordering of agent trees. A difference is reported as
    ``mismatch``. A missing tree-keyed topic gets the count the existing ones have (or
    ``settings.tree_partitions``, or the default, in a new deployment); tree-keyed topics
    that disagree raise :class:`PartitionCountError`.
    """
    admin = AdminClient(kafka_config.base(settings))
    existing = admin.list_topics(timeout=timeout).topics
    deployed = _agreed(_tree_counts(settings, existing, specs))
    tree_count = deployed or settings.tree_partitions or DEFAULT_TREE_PARTITIONS
    changes: list[TopicChange] = []
    to_create: list[NewTopic] = []
    to_check: list[tuple[str, TopicSpec]] = []
    for spec in specs:
        name = settings.topic_prefix + spec.name
        want = tree_count if spec.tree_keyed else spec.partitions
        if name not in existing:
            to_create.append(NewTopic(name, want, 1, config=spec.config()))
            changes.append(TopicChange(name, "created", f"{want} partitions"))
            continue
        to_check.append((name, spec))
        have = len(existing[name].partitions)
        if spec.tree_keyed and settings.tree_partitions not in (None, have):
            detail = f"has {have} partitions, AGENTLOG_TREE_PARTITIONS says {settings.tree_partitions}"
            changes.append(TopicChange(name, "mismatch", detail))
        elif have != want:
            changes.append(TopicChange(name, "mismatch", f"has {have} partitions, catalogue says {want}"))
    if dry_run:
        return changes + [TopicChange(n, "checked") for n, _ in to_check]
    if to_create:
        for name, future in admin.create_topics(to_create, request_timeout=timeout).items():
            try:
                future.result()
            except KafkaException as e:
                code = e.args[0].code()
                if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    raise TopicAdminError(
                        f"cannot create {name}: {kafka_config.principal(settings)} may not (the broker's ACLs);"
                        " where the broker authorizes, the admin creates the topics (`agentlog access bootstrap`)"
                    ) from e
                if code != KafkaError.TOPIC_ALREADY_EXISTS:  # exists: a concurrent creator won
                    raise TopicAdminError(f"cannot create {name}: {e}") from e
        _wait_for_leaders(admin, [t.topic for t in to_create], timeout)
    changes += _align_configs(admin, to_check, timeout)
    return changes


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Return once every partition of ``names`` has a leader, so the topics can be used at once."""
    deadline = time.monotonic() + timeout
    while names:
        topics = admin.list_topics(timeout=timeout).topics
        names = [
            n
            for n in names
            if n not in topics or not topics[n].partitions or any(p.leader < 0 for p in topics[n].partitions.values())
        ]
        if names and time.monotonic() > deadline:
            raise TopicAdminError(f"partitions of {', '.join(names)} have no leader after {timeout}s")
        if names:
            time.sleep(0.1)


def _align_configs(admin: AdminClient, topics: list[tuple[str, TopicSpec]], timeout: float) -> list[TopicChange]:
    if not topics:
        return []
    resources = [ConfigResource(ResourceType.TOPIC, name) for name, _ in topics]
    described = admin.describe_configs(resources, request_timeout=timeout)
    changes = []
    for (name, spec), resource in zip(topics, resources, strict=True):
        current = {k: v.value for k, v in described[resource].result().items()}
        wanted = spec.config()
        differing = {k: v for k, v in wanted.items() if current.get(k) != v}
        if not differing:
            changes.append(TopicChange(name, "unchanged"))
            continue
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in differing.items()]
        update = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
        try:
            admin.incremental_alter_configs([update], request_timeout=timeout)[update].result()
        except KafkaException as e:
            raise TopicAdminError(f"cannot update configs of {name}: {e}") from e
        changes.append(TopicChange(name, "updated", ", ".join(f"{k}={v}" for k, v in differing.items())))
    return changes


def delete_topics(settings: Settings, names: list[str], timeout: float = 30.0) -> None:
    """Delete topics (used by tests to clean up); unknown topics are ignored."""
    admin = AdminClient(kafka_config.base(settings))
    for name, future in admin.delete_topics(names, request_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as e:
            if e.args[0].code() != 3:  # UNKNOWN_TOPIC_OR_PART
                raise TopicAdminError(f"cannot delete {name}: {e}") from e
