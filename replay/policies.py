"""Every recorded version of a policy, so that each decision is re-run under the version it names.

Versions come from the compacted ``agentlog.policy.config`` topic, and — for versions that
compaction has since removed — from the audit table, which keeps every record's bytes.
Each version is validated and its content hash checked (:func:`agentlog.processors.policy.from_event`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from agentlog.errors import DecodeError
from agentlog.events import PolicyPublished
from agentlog.processors import Policy, PolicyError, from_event
from agentlog.projections import DEFAULT_SCHEMA, ProjectionError, connect
from agentlog.records import Record
from agentlog.replay.errors import PolicyNameError
from agentlog.replay.log_source import LogSource
from agentlog.replay.topic_reader import read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import POLICY_CONFIG


@dataclass
class PolicyHistory:
    """The versions of one policy, and when each was published (broker append time)."""

    name: str
    versions: dict[int, Policy] = field(default_factory=dict)
    published: list[tuple[int, int]] = field(default_factory=list)
    """(append time ms, version), sorted."""
    problems: list[str] = field(default_factory=list)
    """Policy records that could not be used, and why."""

    def add_records(self, records: Iterable[Record], serde: Serde) -> None:
        """Take every valid ``PolicyPublished`` of this policy among ``records``."""
        for record in records:
            try:
                event = serde.decode(record.value or b"")
            except (DecodeError, ValueError) as e:
                self.problems.append(f"{record}: {e}")
                continue
            if not isinstance(event, PolicyPublished) or event.policy_name != self.name:
                continue
            try:
                policy = from_event(event)
            except PolicyError as e:
                self.problems.append(f"{record}: {e}")
                continue
            if policy.version not in self.versions:
                self.versions[policy.version] = policy
                bisect.insort(self.published, (record.timestamp_ms, policy.version))

    def get(self, version: int) -> Policy | None:
        """The policy of ``version`` (None for version 0: no policy was in force)."""
        return self.versions.get(version)

    def has(self, version: int) -> bool:
        """Whether ``version`` is known (0, "no policy", always is)."""
        return version == 0 or version in self.versions

    def in_force_at(self, timestamp_ms: int) -> Policy | None:
        """The newest version published at or before ``timestamp_ms`` (what the gate then had)."""
        best: Policy | None = None
        for published_at, version in self.published:
            if published_at > timestamp_ms:
                break
            if best is None or version > best.version:
                best = self.versions[version]
        return best


def from_kafka(settings: Settings, name: str, serde: Serde | None = None) -> PolicyHistory:
    """Every version of policy ``name`` still on the policy topic."""
    serde = serde or Serde.from_settings(settings)
    history = PolicyHistory(name)
    topic = settings.topic_prefix + POLICY_CONFIG.name
    history.add_records(read_topic(settings, topic), serde)
    return history


def add_from_audit(history: PolicyHistory, settings: Settings, schema: str = DEFAULT_SCHEMA) -> bool:
    """Add the versions the audit table holds (compaction may have removed them from Kafka).

    Returns False when the database cannot be read (the versions from Kafka are then all there is).
    """
    topic = settings.topic_prefix + POLICY_CONFIG.name
    try:
        with connect(settings, schema) as conn:
            rows = conn.execute(
                'SELECT partition, "offset", timestamp_ms, key, raw_value FROM audit_log'
                ' WHERE topic = %s AND record_name = %s ORDER BY partition, "offset"',
                (topic, PolicyPublished.avro_name),
            ).fetchall()
    except (ProjectionError, psycopg.Error) as e:  # unreachable or not migrated: Kafka's versions stand
        history.problems.append(f"audit table not read: {type(e).__name__}: {e}")
        return False
    records = (Record(topic, p, o, ts, bytes(k) if k else None, bytes(v) if v else None) for p, o, ts, k, v in rows)
    history.add_records(records, Serde.from_settings(settings))
    return True


DECISIONS_LOOKED_AT = 1000
"""How many decisions per partition :func:`enforced_policy` reads before giving up on that partition."""


def enforced_policy(source: LogSource, serde: Serde) -> str | None:
    """The policy the gate enforced, as its decisions name it (decisions written before v3 name none).

    One policy per deployment: the first decision that names a policy decides.
    """
    for partition in source.partitions():
        for looked, record in enumerate(source.decisions(partition)):
            if looked >= DECISIONS_LOOKED_AT:
                break
            try:
                name = serde.decode_value(record.value or b"").value.get("policy_name")
            except DecodeError:
                continue
            if name:
                return str(name)
    return None


def policy_names(records: Iterable[Record], serde: Serde) -> list[str]:
    """The names of the policies published among ``records``, sorted."""
    names: set[str] = set()
    for record in records:
        try:
            event = serde.decode(record.value or b"")
        except (DecodeError, ValueError):
            continue
        if isinstance(event, PolicyPublished):
            names.add(event.policy_name)
    return sorted(names)


def resolve_policy_name(
    source: LogSource, serde: Serde, override: str | None, published: Iterable[Record] | None = None
) -> str:
    """The policy to replay under: ``override``, else the one the decisions name, else the only one published.

    ``published`` are the policy records when the caller has read them already (else they
    are read from ``source``). Raises :class:`PolicyNameError` when the log holds several
    policies and no decision names one.
    """
    if override:
        return override
    named = enforced_policy(source, serde)
    if named is not None:
        return named
    names = policy_names(source.policy_records() if published is None else published, serde)
    if len(names) <= 1:
        return names[0] if names else ""
    raise PolicyNameError(names)
