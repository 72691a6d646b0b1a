"""``replay verify --signatures``: every signed act in the audit log re-checked against the keyring.

The signature of each audit row (kept inside the hash chain since link version 2, so it
cannot be changed without breaking the chain) is verified against the key it names, with
the row's own topic, key and value bytes: the row is then *attributed* to that key's
tenant, agent and principal. The keyring is the keyring topic's records, and those the
audit table holds (a key is never compacted away, but the audit outlives retention).

What is reported: rows attributed, per key; rows whose signature does not parse, names a
key the keyring never held, or does not verify — ``refused`` when the gate denied the
record for that reason (a forgery that was caught), else ``invalid`` (a failure: an act no
key can be held to, that the gate did not refuse); rows signed with a
key revoked or expired by the row's append time (``late``: the gate refused them, and its
decision says so; reported, not a failure); and unsigned rows per topic, on the topics
agent runtimes write (information: a deployment whose policy does not require signatures
has them). Decisions and other processor outputs are not signed: their authority is the
processor's Kafka principal.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agentlog import events as ev
from agentlog.keyring import Keyring, whole_keyring
from agentlog.projections import DEFAULT_SCHEMA, Conn, connect
from agentlog.records import Record, at
from agentlog.replay.topic_reader import read_optional_topic
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.signing import SIGNATURE_HEADER
from agentlog.topics import AGENT_LIFECYCLE, KEYRING, MESSAGES, MISSIONS, POLICY_DECISIONS, SPAWN_REQUESTS

RUNTIME_TOPICS = (SPAWN_REQUESTS, AGENT_LIFECYCLE, MESSAGES, MISSIONS)
"""The topics agent runtimes write, whose unsigned rows are counted."""
_LATE = frozenset({ev.DenialReason.KEY_REVOKED, ev.DenialReason.KEY_EXPIRED})


@dataclass(frozen=True)
class InvalidSignature:
    """An audit row whose signature cannot be attributed to a key."""

    topic: str
    partition: int
    offset: int
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"invalid   {at(self.topic, self.partition, self.offset)}: {self.reason}: {self.detail}"

    def as_json(self) -> dict[str, Any]:
        """The finding as JSON."""
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset, "reason": self.reason}


@dataclass
class SignatureReport:
    """What re-checking the signatures found."""

    attributed: Counter[str] = field(default_factory=Counter)
    """Rows whose signature verifies, per key (``key id (principal, scope)``)."""
    late: Counter[str] = field(default_factory=Counter)
    """Rows signed with a key revoked or expired by their append time, per key (the gate denied them)."""
    invalid: list[InvalidSignature] = field(default_factory=list)
    refused: list[InvalidSignature] = field(default_factory=list)
    """Rows whose signature does not verify, that the gate denied for it."""
    unsigned: Counter[str] = field(default_factory=Counter)
    """Unsigned rows per runtime topic."""
    keyring_problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Every signature verifies against a key the keyring held."""
        return not self.invalid

    def as_json(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "clean": self.clean,
            "attributed": dict(self.attributed),
            "late": dict(self.late),
            "invalid": [i.as_json() for i in self.invalid],
            "refused": [i.as_json() for i in self.refused],
            "unsigned": dict(self.unsigned),
            "keyring_problems": self.keyring_problems,
        }


def keyring_of(settings: Settings, conn: Conn) -> Keyring:
    """Every key the keyring topic holds or the audit table kept of it, in offset order."""
    topic = settings.topic_prefix + KEYRING.name
    records = {r.offset: r for r in read_optional_topic(settings, topic)}
    rows = conn.execute('SELECT "offset", timestamp_ms, key, raw_value FROM audit_log WHERE topic = %s', (topic,))
    for offset, timestamp_ms, key, value in rows:
        records.setdefault(offset, Record(topic, 0, offset, timestamp_ms, _bytes(key), _bytes(value)))
    return whole_keyring(records.values(), Serde.from_settings(settings))


def verify_signatures(settings: Settings, schema: str = DEFAULT_SCHEMA) -> SignatureReport:
    """Re-check the signature of every audit row (see the module docstring)."""
    runtime_topics = [settings.topic_prefix + spec.name for spec in RUNTIME_TOPICS]
    with connect(settings, schema) as conn:
        keyring = keyring_of(settings, conn)
        report = SignatureReport(keyring_problems=list(keyring.problems))
        refused = _refused_by_the_gate(conn, settings.topic_prefix + POLICY_DECISIONS.name)
        _attribute_rows(conn, keyring, runtime_topics, refused, report)
    report.invalid.sort(key=lambda i: (i.topic, i.partition, i.offset))
    return report


def _attribute_rows(
    conn: Conn, keyring: Keyring, runtime_topics: list[str], refused: set[str], report: SignatureReport
) -> None:
    """Attribute every signed row, and count the unsigned rows of the runtime topics, into ``report``."""
    with conn.transaction(), conn.cursor(name="signature_scan") as cur:
        cur.itersize = 5000
        cur.execute(
            'SELECT topic, partition, "offset", timestamp_ms, key, raw_value, signature, event_id FROM audit_log'
            " WHERE signature IS NOT NULL OR topic = ANY(%s)",
            (runtime_topics,),
        )
        for topic, partition, offset, timestamp_ms, key, value, signature, event_id in cur:
            if signature is None:
                report.unsigned[topic] += 1
                continue
            headers = [(SIGNATURE_HEADER, signature)]
            record = Record(topic, partition, offset, timestamp_ms, _bytes(key), _bytes(value), headers)
            attribution = keyring.attribute(record, audit=True)
            if attribution.signer is not None:
                report.attributed[attribution.signer.describe()] += 1
            elif attribution.reason in _LATE and attribution.key is not None:  # it verifies; the key no longer held
                report.late[attribution.key.describe()] += 1
            else:
                found = report.refused if event_id is not None and str(event_id) in refused else report.invalid
                found.append(_invalid(record, attribution))


_UNATTRIBUTED = [r.value for r in (ev.DenialReason.BAD_SIGNATURE, ev.DenialReason.UNKNOWN_KEY)]


def _refused_by_the_gate(conn: Conn, decisions_topic: str) -> set[str]:
    """The event ids of inputs the gate denied because their signature did not verify or named no key."""
    rows = conn.execute(
        "SELECT value->'meta'->>'causation_id' FROM audit_log WHERE topic = %s AND value->>'reason' = ANY(%s)",
        (decisions_topic, _UNATTRIBUTED),
    ).fetchall()
    return {r[0] for r in rows if r[0] is not None}


def _invalid(record: Record, attribution: Any) -> InvalidSignature:
    reason = attribution.reason.value if attribution.reason is not None else "UNKNOWN"
    return InvalidSignature(record.topic, record.partition, record.offset, reason, attribution.detail)


def _bytes(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None
