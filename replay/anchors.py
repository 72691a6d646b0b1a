"""Which audit checkpoints an audit may hold the log to: the anchors, and the checkpoints it must refuse.

A checkpoint (:mod:`agentlog.projections.checkpoints`) is an *anchor* when the projector's key
signed it: a platform key on the keyring whose principal is the checkpoint signer
(:data:`SIGNER`, ``projector`` unless told otherwise), valid at the checkpoint's append time.

- **Signed mode** (the keyring holds such a key): only checkpoints that key signed are
  anchors. One signed by any other key, whose signature does not verify, or that is
  unsigned though appended after the signer's key was published, is *rejected*: reported,
  never an anchor (an insider who can write the topic cannot make the audit expect less,
  or more). Unsigned checkpoints appended before the key existed are counted, not used.
- **Unsigned mode** (no such key): every checkpoint is an anchor, its trust resting on the
  topic's ACLs (only the projector's principal may write it); one that carries a signature
  that does not verify is still rejected.

The newest anchor of each partition (the highest next offset) is what ``replay verify`` and
``replay check-export`` hold its chain to. The same code decides for both, from the
checkpoint records and the keyring, so that an export is judged as the live log is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentlog import events as ev
from agentlog.errors import DecodeError
from agentlog.keyring import Keyring
from agentlog.records import Record, at
from agentlog.serde import Serde

SIGNER = "projector"
"""The principal whose platform key signs the checkpoints (the projector's Kafka user, by convention)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One attested state of a partition's chain (an ``AuditCheckpoint``), and where it is on Kafka."""

    topic: str
    partition: int
    next_offset: int
    row_count: int
    chain_head: bytes
    projection_schema: str
    at: str
    """The checkpoint record's own position, ``topic[partition]@offset``."""
    signer: str | None
    """The key that signed it (None: unsigned)."""
    record: Record | None = field(default=None, compare=False, repr=False)
    """The checkpoint record itself (an export carries it, to be judged again without Kafka)."""

    def as_json(self) -> dict[str, Any]:
        """The checkpoint as JSON (its head in hex)."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "next_offset": self.next_offset,
            "row_count": self.row_count,
            "chain_head": self.chain_head.hex(),
            "projection_schema": self.projection_schema,
            "at": self.at,
            "signer": self.signer,
        }


@dataclass(frozen=True, slots=True)
class RejectedCheckpoint:
    """A checkpoint record no audit may rely on, and why."""

    topic: str
    partition: int
    offset: int
    detail: str

    def __str__(self) -> str:
        return f"{at(self.topic, self.partition, self.offset)}: {self.detail}"


@dataclass
class Anchors:
    """The newest anchor per (topic, partition), and what was not taken as one."""

    signer: str
    signed_mode: bool
    newest: dict[tuple[str, int], Checkpoint] = field(default_factory=dict)
    rejected: list[RejectedCheckpoint] = field(default_factory=list)
    unsigned: int = 0
    """Unsigned checkpoints: the anchors in unsigned mode; in signed mode those from before the signer's key."""
    signed: Counter[str] = field(default_factory=Counter)
    """Anchoring checkpoints per key that signed them."""

    def describe(self) -> str:
        """One line on how the checkpoints were judged, for reports."""
        if self.signed_mode:
            keys = ", ".join(f"{n} by {key}" for key, n in sorted(self.signed.items())) or "none"
            before = f"; {self.unsigned} unsigned from before the key, not used" if self.unsigned else ""
            return f"checkpoints signed by a {self.signer} key: {keys}{before}"
        return (
            f"checkpoints unsigned ({self.unsigned}): the keyring holds no platform key of {self.signer}, so they"
            " rest on the checkpoint topic's ACLs"
        )


def anchors_of(
    records: Iterable[Record],
    serde: Serde,
    keyring: Keyring,
    *,
    schema: str | None,
    signer: str = SIGNER,
) -> Anchors:
    """The anchors among the checkpoint ``records`` of ``schema`` (None: of any schema), judged by ``keyring``."""
    keys = [k for k in keyring.keys.values() if k.tenant_id is None and k.principal == signer]
    since = min((k.published_at_ms for k in keys if k.published_at_ms is not None), default=None)
    anchors = Anchors(signer, signed_mode=bool(keys))
    for record in records:
        try:
            event = serde.decode(record.value or b"")
        except (DecodeError, ValueError):  # not a checkpoint at all: the projector dead-letters it
            continue
        if not isinstance(event, ev.AuditCheckpoint) or (schema is not None and event.projection_schema != schema):
            continue
        attribution = keyring.attribute(record, audit=True)
        by = attribution.signer
        if by is not None and by.tenant_id is None and by.principal == signer:
            anchors.signed[by.describe()] += 1
        elif attribution.unsigned and not anchors.signed_mode:
            anchors.unsigned += 1
        elif attribution.unsigned and since is not None and record.timestamp_ms < since:
            anchors.unsigned += 1
            continue
        else:
            detail = f"not signed by a {signer} key: " + (
                f"signed by {by.describe()}" if by is not None else attribution.detail.rstrip(".")
            )
            anchors.rejected.append(RejectedCheckpoint(record.topic, record.partition, record.offset, detail))
            continue
        _keep_newest(anchors.newest, record, event, by.key_id if by is not None else None)
    return anchors


def _keep_newest(
    newest: dict[tuple[str, int], Checkpoint], record: Record, event: ev.AuditCheckpoint, by: str | None
) -> None:
    try:
        head = bytes.fromhex(event.chain_head)
    except ValueError:
        head = b""  # a head that is not even hex: reported as a head that does not match
    where = (event.topic, event.partition)
    known = newest.get(where)
    if known is None or event.next_offset > known.next_offset:
        newest[where] = Checkpoint(
            event.topic,
            event.partition,
            event.next_offset,
            event.row_count,
            head,
            event.projection_schema,
            str(record.position),
            by,
            record,
        )
