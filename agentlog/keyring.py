"""The keyring: which public keys sign for whom, and who signed a record.

The keyring is the ``agentlog.keyring`` topic read in offset order; :class:`Keyring` is its
state after the first :attr:`Keyring.position` records. The gate records that position on
every decision (:data:`KEYRING_HEADER`), and replay rebuilds the keyring to the same
position, so that whether a record was attributed to a key is a pure function of the
record and the keyring prefix, wherever it is decided.

Rules, applied in offset order:

- a ``SigningKeyPublished`` whose ``key_id`` is not derived from its public key, or whose
  key is not 32 bytes, is ignored (and reported);
- the first publication of a key id stands; a later one with other content is ignored;
- a ``SigningKeyRevoked`` is final: the key signs nothing from then on.

:meth:`Keyring.attribute` says who signed a record, or why nobody can be said to have:
no signature, a header that does not parse, a key id the keyring lacks, a revoked key, a
key expired at the record's append time, or a signature or proof that does not verify.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agentlog import events as ev
from agentlog.errors import DecodeError
from agentlog.limits import quote
from agentlog.records import Headers, Record, int_header
from agentlog.serde import Serde
from agentlog.signing import BatchVerifier, Signature, SignatureFormatError, key_id_of, leaf_hash, root_from_path
from agentlog.signing import signature_header as find_signature_header

log = logging.getLogger("agentlog.keyring")

KEYRING_HEADER = "agentlog-keyring"
"""The header of every gate output naming how many keyring records the gate had applied (absent: none)."""

_R = ev.DenialReason


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One key of the keyring."""

    key_id: str
    public: Ed25519PublicKey
    tenant_id: str | None
    """None: a platform key (signs only as its principal, where the policy names it an operator)."""
    agent_id: str | None
    """When set, the key acts only as this agent."""
    principal: str
    expires_at_ms: int | None
    revoked_at_ms: int | None = None
    """The append time of the key's revocation (None: not revoked)."""
    published_at_ms: int | None = None
    """The append time of the key's (first) publication on the keyring."""

    @property
    def revoked(self) -> bool:
        """Whether the keyring revoked the key."""
        return self.revoked_at_ms is not None

    def describe(self) -> str:
        """``ed25519:… (principal, tenant acme)`` for messages."""
        scope = f"tenant {self.tenant_id}" if self.tenant_id is not None else "platform"
        if self.agent_id is not None:
            scope += f", agent {self.agent_id}"
        return f"{self.key_id} ({self.principal}, {scope})"


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who signed a record (``signer``), or why no one can be said to have (``reason`` and ``detail``)."""

    signer: KeyEntry | None = None
    reason: ev.DenialReason | None = None
    detail: str = ""
    key: KeyEntry | None = None
    """The keyring's entry for the key the signature names, when it has one (also when it no longer signs)."""

    @property
    def unsigned(self) -> bool:
        """The record carries no signature at all."""
        return self.reason is _R.UNSIGNED


UNSIGNED = Attribution(reason=_R.UNSIGNED, detail="the record is not signed.")


def _timestamp_ms(event: ev.SigningKeyPublished) -> int | None:
    if event.expires_at is None:
        return None
    return int(event.expires_at.timestamp() * 1000)


@dataclass
class Keyring:
    """The keys of the keyring's first :attr:`position` records."""

    keys: dict[str, KeyEntry] = field(default_factory=dict)
    position: int = 0
    """The offset of the next keyring record to apply (records below it are applied)."""
    problems: list[str] = field(default_factory=list)
    """Keyring records that were ignored, and why."""
    verifier: BatchVerifier = field(default_factory=BatchVerifier)

    def apply(self, record: Record, serde: Serde) -> None:
        """Apply the keyring record at ``record.offset`` (records must come in offset order)."""
        self.position = record.offset + 1
        try:
            event = serde.decode(record.value or b"")
        except (DecodeError, ValueError) as e:
            self._ignore(record, f"undecodable: {e}")
            return
        if isinstance(event, ev.SigningKeyPublished):
            self._publish(record, event)
        elif isinstance(event, ev.SigningKeyRevoked):
            entry = self.keys.get(event.key_id)
            if entry is None:
                self._ignore(record, f"revokes {event.key_id}, which the keyring does not hold")
            elif not entry.revoked:
                self.keys[event.key_id] = replace(entry, revoked_at_ms=record.timestamp_ms)
                log.info("key %s revoked by %s: %s", event.key_id, event.revoked_by, event.reason)
        else:
            self._ignore(record, f"{event.avro_name} does not belong on the keyring")

    def _publish(self, record: Record, event: ev.SigningKeyPublished) -> None:
        if len(event.public_key) != 32:
            self._ignore(record, f"an Ed25519 public key is 32 bytes, not {len(event.public_key)}")
            return
        derived = key_id_of(event.public_key)
        if event.key_id != derived:
            self._ignore(record, f"key id {event.key_id} is not the key's own id {derived}")
            return
        entry = KeyEntry(
            event.key_id,
            Ed25519PublicKey.from_public_bytes(event.public_key),
            event.tenant_id,
            event.agent_id,
            event.principal,
            _timestamp_ms(event),
            published_at_ms=record.timestamp_ms,
        )
        known = self.keys.get(event.key_id)
        if known is None:
            self.keys[event.key_id] = entry
        elif _content(known) != _content(entry):
            self._ignore(record, f"publishes {event.key_id} again with other scope or expiry; the first stands")

    def _ignore(self, record: Record, problem: str) -> None:
        self.problems.append(f"{record}: {problem}")
        log.error("ignoring keyring record %s: %s", record, problem)

    def attribute(self, record: Record, *, audit: bool = False) -> Attribution:
        """Who signed ``record`` (its topic, key, value, signature header and append time).

        The gate asks whether the key is valid *now* (a revocation it has read counts). With
        ``audit``, validity is judged at the record's append time (a key revoked later still
        signed it), and a signature that does not verify is reported before a key's expiry.
        """
        header = find_signature_header(record.headers)
        if header is None:
            return UNSIGNED
        try:
            signature = Signature.parse(header)
        except SignatureFormatError as e:
            return Attribution(reason=_R.BAD_SIGNATURE, detail=f"its signature header does not parse ({e}).")
        entry = self.keys.get(signature.key_id)
        if entry is None:
            return Attribution(reason=_R.UNKNOWN_KEY, detail=f"key {quote(signature.key_id)} is not on the keyring.")
        if audit:
            return self._verified(entry, signature, record) or self._invalid(entry, record, audit) or _signed(entry)
        return self._invalid(entry, record, audit) or self._verified(entry, signature, record) or _signed(entry)

    def _invalid(self, entry: KeyEntry, record: Record, audit: bool) -> Attribution | None:
        """Why ``entry`` no longer signs ``record``, or None."""
        revoked_at = entry.revoked_at_ms
        if revoked_at is not None and (not audit or record.timestamp_ms >= revoked_at):
            return Attribution(reason=_R.KEY_REVOKED, detail=f"key {entry.describe()} has been revoked.", key=entry)
        if entry.expires_at_ms is not None and record.timestamp_ms >= entry.expires_at_ms:
            return Attribution(reason=_R.KEY_EXPIRED, detail=f"key {entry.describe()} had expired.", key=entry)
        return None

    def _verified(self, entry: KeyEntry, signature: Signature, record: Record) -> Attribution | None:
        """None when ``signature`` by ``entry`` covers ``record``; else the ``BAD_SIGNATURE`` attribution."""
        leaf = leaf_hash(record.topic, record.key, record.value)
        root = root_from_path(signature.index, signature.size, leaf, signature.path)
        if root is not None and self.verifier.verify(entry.public, signature, root):
            return None
        detail = f"its signature by key {entry.describe()} does not verify."
        return Attribution(reason=_R.BAD_SIGNATURE, detail=detail, key=entry)


def _signed(entry: KeyEntry) -> Attribution:
    return Attribution(signer=entry, key=entry)


def _content(entry: KeyEntry) -> tuple[object, ...]:
    return (entry.tenant_id, entry.agent_id, entry.principal, entry.expires_at_ms)


def keyring_position(headers: Headers | None) -> int:
    """The keyring position ``headers`` name (0 when they name none: decided without a keyring)."""
    return int_header(headers, KEYRING_HEADER, 0)


class KeyringHistory:
    """The keyring at any recorded position, from its records (replay: the position each decision names)."""

    def __init__(self, records: Iterable[Record], serde: Serde) -> None:
        self._records = sorted(records, key=lambda r: r.offset)
        self._serde = serde
        self._current = Keyring()
        self._applied = 0

    def at(self, position: int) -> Keyring:
        """The keyring after every record below offset ``position``."""
        if self._applied and self._records[self._applied - 1].offset >= position:
            self._current, self._applied = Keyring(verifier=self._current.verifier), 0  # behind: start again
        while self._applied < len(self._records) and self._records[self._applied].offset < position:
            self._current.apply(self._records[self._applied], self._serde)
            self._applied += 1
        return self._current

    @property
    def problems(self) -> list[str]:
        """Keyring records ignored so far, and why."""
        return self._current.problems


def whole_keyring(records: Iterable[Record], serde: Serde) -> Keyring:
    """The keyring after every one of ``records`` (a keyring topic's, in any order)."""
    ordered = sorted(records, key=lambda r: r.offset)
    return KeyringHistory(ordered, serde).at(ordered[-1].offset + 1 if ordered else 0)
