"""Publishing a policy version: serialised, so that two publishers can never give one version two contents.

The protocol, for a policy named *n*:

1. Create a producer with the transactional id ``<prefix>agentlog.policy-publisher.<n>``
   and call ``init_transactions``: it fences every other publisher of *n* that is still
   under way (its open transaction is aborted; it can no longer commit) and waits until
   no transaction of that id is pending.
2. Read the policy topic to its end (``read_committed``): the version of *n* in force.
3. The same version with the same content is already published: nothing to do. Any
   other version than the next one (1 first, then one more each time) is refused.
4. Produce the ``PolicyPublished`` record (key ``n:version``) in a transaction and
   commit. A publisher fenced between steps 1 and 4 fails here and has published
   nothing; run again, it then sees the version that won.

Two publishers that both reach step 4 cannot both have read the same version in force
at step 2: the second one's step 1 fenced the first, or came after the first's commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentlog.errors import AgentlogError, DeliveryError
from agentlog.processors.policy import Policy, to_event
from agentlog.processors.policy_reader import PolicyReader
from agentlog.producer import Delivery, Producer
from agentlog.settings import Settings


class PolicyVersionError(AgentlogError):
    """The policy's version is not the one to publish next (or was used with other content)."""


class PolicyPublishRaceError(AgentlogError):
    """Another publisher of the same policy took over while this one was publishing; nothing was published."""


@dataclass(frozen=True)
class Publication:
    """What :func:`publish_policy` did: published at ``delivery``, or found the same version already there."""

    policy: Policy
    delivery: Delivery | None
    """Where the record landed; ``None`` when the same version and content were there already."""


def publisher_id(settings: Settings, name: str) -> str:
    """The transactional id every publisher of policy ``name`` shares."""
    return f"{settings.topic_prefix}agentlog.policy-publisher.{name}"


def publish_policy(settings: Settings, policy: Policy, published_by: str) -> Publication:
    """Publish ``policy`` as the next version of its name, serialised against every other publisher of it."""
    with Producer(settings, transactional_id=publisher_id(settings, policy.name)) as producer:  # step 1
        current = _in_force(settings, policy.name)  # step 2
        if current is not None and current.version == policy.version:  # step 3
            if current.content_hash() == policy.content_hash():
                return Publication(policy, None)
            raise PolicyVersionError(
                f"policy {policy.name} version {policy.version} is already published with other content:"
                f" give the changed file version {policy.version + 1}"
            )
        expected = 1 if current is None else current.version + 1
        if policy.version != expected:
            where = f"is at version {current.version}" if current is not None else "has no published version yet"
            raise PolicyVersionError(
                f"policy {policy.name} {where}: give the file version {expected} (versions start at 1 and go up by one)"
            )
        try:
            with producer.transaction():  # step 4
                producer.send(to_event(policy, published_by=published_by))
                (delivery,) = producer.flush()
        except DeliveryError as e:
            raise PolicyPublishRaceError(
                f"policy {policy.name} was not published: another publisher of it ran at the same time ({e});"
                " run again to see which version is in force"
            ) from e
    return Publication(policy, delivery)


def _in_force(settings: Settings, name: str) -> Policy | None:
    reader = PolicyReader(settings, name)
    try:
        reader.catch_up()
        return reader.current
    finally:
        reader.close()
