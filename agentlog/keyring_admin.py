"""Putting keys on the keyring, taking them off, and reading it: what ``agentlog keys`` does.

Who may write the keyring topic is the trust root of signed input: in the secure stack only
the admin principal may (a Kafka ACL); on a PLAINTEXT stack anyone who can reach the broker can.
Keyring records are signed like any other when the publishing process has a signing key
(``AGENTLOG_SIGNING_KEY``), so the audit attributes each key to whoever put it there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Required, TypedDict, Unpack

from agentlog import events as ev
from agentlog.errors import AgentlogError
from agentlog.keyring import KeyEntry, Keyring
from agentlog.processors.keyring_reader import KeyringReader
from agentlog.producer import Delivery, Producer
from agentlog.settings import Settings
from agentlog.signing import SigningKey, key_id_of
from agentlog.topic_admin import ensure_topics
from agentlog.topics import KEYRING

PLATFORM_TENANT = "*"
"""``meta.tenant_id`` of a platform key's record (it belongs to no tenant)."""


class KeyringError(AgentlogError):
    """A key cannot be revoked (the keyring does not hold it)."""


class KeyScope(TypedDict, total=False):
    """Whose a key is and for how long: the fields of its keyring record besides the key itself."""

    principal: Required[str]
    """Who holds the key: a runtime's name or an operator's identity."""
    tenant_id: Required[str | None]
    """The tenant whose records it signs (None: a platform key)."""
    agent_id: str | None
    """Only this agent of the tenant."""
    expires_at: datetime | None
    published_by: str


def key_published(
    key: SigningKey | bytes, *, producer: str = "agentlog-cli", **scope: Unpack[KeyScope]
) -> ev.SigningKeyPublished:
    """The keyring record of ``key`` (a private key's public half, or a raw public key) in ``scope``."""
    public_raw = key.public_raw if isinstance(key, SigningKey) else key
    key_id = key_id_of(public_raw)
    tenant_id = scope["tenant_id"]
    return ev.SigningKeyPublished(
        meta=ev.Meta(
            tenant_id=tenant_id if tenant_id is not None else PLATFORM_TENANT, root_id=key_id, producer=producer
        ),
        key_id=key_id,
        public_key=public_raw,
        tenant_id=tenant_id,
        agent_id=scope.get("agent_id"),
        principal=scope["principal"],
        expires_at=scope.get("expires_at"),
        published_by=scope.get("published_by", "agentlog-cli"),
    )


def publish_keys(settings: Settings, records: list[ev.SigningKeyPublished]) -> list[Delivery]:
    """Put keys on the keyring (:func:`key_published` makes each record), in one batch."""
    ensure_topics(settings, (KEYRING,))
    with Producer(settings) as producer:
        return producer.publish_many(records)


def publish_key(settings: Settings, key: SigningKey | bytes, **scope: Unpack[KeyScope]) -> Delivery:
    """Put one key on the keyring (see :func:`key_published`)."""
    (delivery,) = publish_keys(settings, [key_published(key, producer=settings.producer_name, **scope)])
    return delivery


def revoke_key(settings: Settings, key_id: str, *, reason: str, revoked_by: str = "agentlog-cli") -> Delivery:
    """Take ``key_id`` off the keyring for good; raises :class:`KeyringError` when the keyring lacks it."""
    entry = read_keyring(settings).keys.get(key_id)
    if entry is None:
        raise KeyringError(f"key {key_id} is not on the keyring (`agentlog keys list` shows the keys)")
    event = ev.SigningKeyRevoked(
        meta=ev.Meta(
            tenant_id=entry.tenant_id if entry.tenant_id is not None else PLATFORM_TENANT,
            root_id=key_id,
            producer=settings.producer_name,
        ),
        key_id=key_id,
        reason=reason,
        revoked_by=revoked_by,
    )
    with Producer(settings) as producer:
        return producer.publish(event)


def read_keyring(settings: Settings) -> Keyring:
    """The keyring as it stands (read to its end)."""
    ensure_topics(settings, (KEYRING,))
    return KeyringReader.read(settings)


def entries(keyring: Keyring) -> list[KeyEntry]:
    """The keyring's keys, by tenant (platform keys first) and key id."""
    return sorted(keyring.keys.values(), key=lambda k: (k.tenant_id or "", k.key_id))
