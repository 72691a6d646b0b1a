"""Who may do what on the brokers: the Kafka ACLs of each role, granted to a SCRAM user.

The secure stack (``AGENTLOG_SECURITY=sasl_ssl make up``) runs Kafka's StandardAuthorizer
with ``allow.everyone.if.no.acl.found=false``: a principal may do only what an ACL allows.
Each role is a least-privilege set of bindings over the deployment's topics (under the
topic prefix), its consumer groups and its transactional ids:

- ``gate``: reads the requests and lifecycle reports, the policy and the keyring; writes
  the decisions, its changelog (which it may create) and dead letters, in transactions
  under its own ids.
- ``missions``: the mission processor: reads the mission commands, the gate's decisions and
  the policy; writes the mission facts, its changelog (which it may create) and dead
  letters, in transactions under its own ids.
- ``bus``: the consultation bus: reads the messages, the gate's decisions and the policy;
  writes the message facts, the freeze requests and mission handoffs it hands to the gate
  and the mission processor, its changelog (which it may create) and dead letters, in
  transactions under its own ids.
- ``projector``: reads every topic; writes only dead letters and the audit checkpoints.
- ``auditor``: reads every topic and the processors' committed positions; writes nothing.
- ``tenant``: writes requests, lifecycle reports, messages and missions; reads the facts
  (decisions, mission and message events). Kafka ACLs are per topic, not per record: every tenant
  principal may read the facts of every tenant on the shared topics; the signatures decide
  which tenant an input speaks for, and PostgreSQL's row-level security whose rows a tenant
  reads.

The admin principal is a super user of the broker (it creates topics, ACLs and users) and
the only one that publishes the policy and the keyring: no role has WRITE on them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported at runtime, not in the stubs
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from agentlog import kafka_config
from agentlog.errors import AgentlogError
from agentlog.settings import Settings
from agentlog.topics import (
    AGENT_LIFECYCLE,
    AUDIT_CHECKPOINTS,
    CATALOGUE,
    DLQ,
    HEARTBEATS,
    KEYRING,
    MESSAGE_EVENTS,
    MESSAGES,
    MISSION_EVENTS,
    MISSIONS,
    POLICY_CONFIG,
    POLICY_DECISIONS,
    SPAWN_REQUESTS,
)

PROJECTOR_GROUP = "agentlog-projector"
"""The projectors' default consumer group (``agentlog.projections.projector``), under the prefix."""
GATE_NAME = "agentlog.spawn-gate"
"""The gate's consumer group, transactional ids and changelog start with it (under the prefix)."""
MISSIONS_NAME = "agentlog.missions-processor"
"""The mission processor's consumer group, transactional ids and changelog start with it (under the prefix)."""
BUS_NAME = "agentlog.bus"
"""The consultation bus's consumer group, transactional ids and changelog start with it (under the prefix)."""
SCRAM_ITERATIONS = 8192
"""PBKDF2 iterations of a SCRAM credential this module creates (Kafka's minimum is 4096)."""


class AccessError(AgentlogError):
    """An ACL or a user could not be created, listed or removed."""


class BadUserError(AccessError):
    """A user name or password that the broker would refuse or that is too weak; nothing was changed."""


class Role(StrEnum):
    """What a principal is for; each has its own least-privilege bindings."""

    gate = "gate"
    missions = "missions"
    bus = "bus"
    projector = "projector"
    auditor = "auditor"
    tenant = "tenant"


@dataclass(frozen=True)
class Rule:
    """One allowed operation on a resource (literal name or name prefix)."""

    resource: ResourceType
    name: str
    operation: AclOperation
    prefixed: bool = False

    def binding(self, principal: str) -> AclBinding:
        """The ALLOW binding of this rule for ``principal`` from any host."""
        pattern = ResourcePatternType.PREFIXED if self.prefixed else ResourcePatternType.LITERAL
        return AclBinding(self.resource, self.name, pattern, principal, "*", self.operation, AclPermissionType.ALLOW)


def _topics(settings: Settings, operation: AclOperation, *names: str) -> list[Rule]:
    return [Rule(ResourceType.TOPIC, settings.topic_prefix + name, operation) for name in names]


def _every_topic(settings: Settings) -> list[Rule]:
    return _topics(settings, AclOperation.READ, *(spec.name for spec in CATALOGUE))


def rules(role: Role, settings: Settings) -> list[Rule]:
    """The rules of ``role`` in the deployment ``settings`` names (its topic prefix), each once."""
    return list(dict.fromkeys(_rules(role, settings)))


def _rules(role: Role, settings: Settings) -> list[Rule]:
    prefix = settings.topic_prefix
    gate = prefix + GATE_NAME
    # Every name is under the deployment's prefix: revoking a role in one deployment leaves the others' rules.
    readers = Rule(ResourceType.GROUP, prefix + kafka_config.READER_GROUP, AclOperation.READ, prefixed=True)
    if role is Role.gate:
        return [
            *_topics(settings, AclOperation.READ, SPAWN_REQUESTS.name, AGENT_LIFECYCLE.name, HEARTBEATS.name),
            *_topics(settings, AclOperation.READ, POLICY_CONFIG.name, KEYRING.name),
            *_topics(settings, AclOperation.WRITE, POLICY_DECISIONS.name, DLQ.name),
            *_processor(gate),
            *_topics(settings, AclOperation.DESCRIBE_CONFIGS, KEYRING.name, HEARTBEATS.name),
            readers,
        ]
    if role is Role.missions:
        return [
            *_topics(settings, AclOperation.READ, MISSIONS.name, POLICY_DECISIONS.name, POLICY_CONFIG.name),
            *_topics(settings, AclOperation.WRITE, MISSION_EVENTS.name, DLQ.name),
            *_processor(prefix + MISSIONS_NAME),
            readers,
        ]
    if role is Role.bus:
        return [
            *_topics(settings, AclOperation.READ, MESSAGES.name, POLICY_DECISIONS.name, POLICY_CONFIG.name),
            # the lifecycle and mission topics: the freezes and mission handoffs it hands to the gate and the
            # mission processor (bus core 2)
            *_topics(settings, AclOperation.WRITE, MESSAGE_EVENTS.name, AGENT_LIFECYCLE.name, MISSIONS.name, DLQ.name),
            *_processor(prefix + BUS_NAME),
            readers,
        ]
    if role is Role.projector:
        return [
            *_every_topic(settings),
            *_topics(settings, AclOperation.WRITE, DLQ.name, AUDIT_CHECKPOINTS.name),
            Rule(ResourceType.GROUP, prefix + PROJECTOR_GROUP, AclOperation.READ, prefixed=True),
            readers,
        ]
    if role is Role.auditor:
        return [
            *_every_topic(settings),
            # the processors' committed positions tell replay which inputs they have decided
            Rule(ResourceType.GROUP, gate, AclOperation.DESCRIBE),
            Rule(ResourceType.GROUP, prefix + MISSIONS_NAME, AclOperation.DESCRIBE),
            Rule(ResourceType.GROUP, prefix + BUS_NAME, AclOperation.DESCRIBE),
            Rule(ResourceType.TOPIC, prefix + "agentlog.spawn-gate.changelog", AclOperation.READ),
            # a rebuild projects the log into a scratch schema under a group of its own
            Rule(ResourceType.GROUP, prefix + "agentlog-rebuild-", AclOperation.READ, prefixed=True),
            readers,
        ]
    return [
        *_topics(settings, AclOperation.WRITE, SPAWN_REQUESTS.name, AGENT_LIFECYCLE.name, HEARTBEATS.name),
        *_topics(settings, AclOperation.WRITE, MESSAGES.name, MISSIONS.name),
        *_topics(settings, AclOperation.READ, POLICY_DECISIONS.name, MISSION_EVENTS.name, MESSAGE_EVENTS.name),
        Rule(ResourceType.TRANSACTIONAL_ID, prefix + kafka_config.CLI_TRANSACTIONAL_ID, AclOperation.WRITE, True),
        # a client with a client_id keeps its positions on the decisions topic in a group of its own
        Rule(ResourceType.GROUP, prefix + kafka_config.SDK_GROUP, AclOperation.READ, prefixed=True),
        readers,
    ]


def _processor(name: str) -> list[Rule]:
    """What a processor of the runtime needs under its name (prefixed): its changelog, which it creates on its first
    start and whose configs it checks, its consumer group and its transactional ids."""
    return [
        *(
            Rule(ResourceType.TOPIC, name, operation, prefixed=True)
            for operation in (AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DESCRIBE_CONFIGS)
        ),
        Rule(ResourceType.GROUP, name, AclOperation.READ, prefixed=True),
        Rule(ResourceType.TRANSACTIONAL_ID, name, AclOperation.WRITE, prefixed=True),
    ]


def unwritable(settings: Settings, topics: Iterable[str], timeout: float = 30.0) -> list[str]:
    """The topics among ``topics`` that this client's principal may not write (the broker says, per topic).

    A transaction that writes where it may not fails as a whole with a purged record and no
    word of why; asking first gives the reason.
    """
    names = sorted(set(topics))
    admin = _admin(settings)
    described = admin.describe_topics(
        TopicCollection(names), request_timeout=timeout, include_authorized_operations=True
    )
    refused = []
    for name, future in described.items():
        try:
            operations = future.result(timeout).authorized_operations or []
        except KafkaException as e:
            if e.args[0].code() not in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.UNKNOWN_TOPIC_OR_PART):
                raise AccessError(f"describing {name}: {e.args[0].str()}") from e
            operations = []
        if AclOperation.WRITE not in operations and AclOperation.ALL not in operations:
            refused.append(name)
    return sorted(refused)


def user_principal(user: str) -> str:
    """The Kafka principal of a SCRAM user."""
    return f"User:{user}"


def role_of_user(user: str) -> Role | None:
    """The role the naming convention gives a user: a role's own name, or ``tenant-<name>``."""
    if user.startswith("tenant-"):
        return Role.tenant
    return Role(user) if user in Role.__members__ and user != Role.tenant else None


def _admin(settings: Settings) -> AdminClient:
    # log_level 4: no info line about purged background events when the client is destroyed
    return AdminClient({**kafka_config.base(settings), "log_level": 4})


def _wait(futures: Mapping[Any, Future[Any]], what: str, timeout: float) -> None:
    for future in futures.values():
        try:
            future.result(timeout)
        except KafkaException as e:
            raise AccessError(f"{what}: {e.args[0].str()}") from e


def bindings(settings: Settings, role: Role, user: str) -> list[AclBinding]:
    """The ACL bindings of ``role`` for ``user`` in the deployment ``settings`` names."""
    return [rule.binding(user_principal(user)) for rule in rules(role, settings)]


def grant(settings: Settings, role: Role, user: str, timeout: float = 30.0) -> list[AclBinding]:
    """Allow ``user`` what ``role`` may do (creating an ACL that exists is a no-op); the bindings."""
    wanted = bindings(settings, role, user)
    admin = _admin(settings)  # kept alive until the futures resolve: a destroyed client fails them
    _wait(admin.create_acls(wanted, request_timeout=timeout), f"granting {role} to {user}", timeout)
    return wanted


def revoke(settings: Settings, role: Role, user: str, timeout: float = 30.0) -> int:
    """Remove the bindings ``grant`` made; the number of ACLs deleted."""
    filters = [
        AclBindingFilter(
            b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type
        )
        for b in bindings(settings, role, user)
    ]
    deleted = 0
    admin = _admin(settings)
    for future in admin.delete_acls(filters, request_timeout=timeout).values():
        try:
            deleted += len(future.result(timeout))
        except KafkaException as e:
            raise AccessError(f"revoking {role} from {user}: {e.args[0].str()}") from e
    return deleted


def acls(settings: Settings, user: str | None = None, timeout: float = 30.0) -> list[AclBinding]:
    """The ALLOW and DENY bindings on the broker, for one user or everyone, sorted."""
    # None matches any name, principal and host (the stubs say str)
    anything = cast(str, None)
    who = user_principal(user) if user else anything
    any_filter = AclBindingFilter(
        ResourceType.ANY, anything, ResourcePatternType.ANY, who, anything, AclOperation.ANY, AclPermissionType.ANY
    )
    try:
        admin = _admin(settings)
        found = admin.describe_acls(any_filter, request_timeout=timeout).result(timeout)
    except KafkaException as e:
        raise AccessError(f"listing ACLs: {e.args[0].str()}") from e
    return sorted(found, key=lambda b: (b.principal, str(b.restype), b.name, str(b.operation)))


def users(settings: Settings, timeout: float = 30.0) -> list[str]:
    """The SCRAM users the broker knows, sorted."""
    admin = _admin(settings)
    try:
        pending = cast("Future[dict[str, Any]]", admin.describe_user_scram_credentials(request_timeout=timeout))
        described = pending.result(timeout)
    except KafkaException as e:
        raise AccessError(f"listing SCRAM users: {e.args[0].str()}") from e
    return sorted(described)


def add_user(settings: Settings, user: str, password: str, timeout: float = 30.0) -> None:
    """Create (or set the password of) a SCRAM-SHA-512 user."""
    if not user or any(c.isspace() or c in ",=" for c in user):
        raise BadUserError(f"user {user!r}: expected a name without spaces, ',' or '='")
    if len(password) < 16:
        raise BadUserError(f"the password of {user} has {len(password)} characters; at least 16 are needed")
    upsert = UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS), password.encode()
    )
    admin = _admin(settings)
    added = admin.alter_user_scram_credentials([upsert], request_timeout=timeout)
    _wait(added, f"adding {user}", timeout)


def remove_user(settings: Settings, user: str, timeout: float = 30.0) -> None:
    """Delete a user's SCRAM-SHA-512 credential (its ACLs stay until revoked)."""
    deletion = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)
    admin = _admin(settings)
    removed = admin.alter_user_scram_credentials([deletion], request_timeout=timeout)
    _wait(removed, f"removing {user}", timeout)


def new_password() -> str:
    """A random password for a new user (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)
