"""The topic catalogue: every agentlog topic, what may appear on it, and how it is keyed.

Topics that hold the audit trail keep their data forever (``retention.ms=-1``): Kafka is
the source of truth that projections are rebuilt from and auditors replay. The topics of
one agent tree's events share a partition count and the ``root_id`` key, so one tree's
events are co-partitioned and processed in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentlog import events as ev
from agentlog.errors import AgentlogError

DEFAULT_TREE_PARTITIONS = 12
"""Partitions of the topics keyed by root_id in a new deployment (``AGENTLOG_TREE_PARTITIONS`` chooses another).

A partition is the unit of parallelism: at most one gate worker decides it, so the count
caps the workers. Twelve lets 1, 2, 3, 4, 6 or 12 workers share the trees evenly, and,
at a few thousand decisions per second per worker, carries a mid-size deployment; a
partition costs the broker little. The count cannot grow in place (see
"Partitions" in the README), so it is chosen with room to spare.
"""
TREE_KEYED = 0
"""The ``partitions`` of a tree-keyed topic in the catalogue: the deployment's count, read from the broker."""
FOREVER = -1


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the catalogue."""

    name: str
    """Base name; the deployed name is ``<AGENTLOG_TOPIC_PREFIX><name>``."""
    partitions: int
    """Its partition count, or :data:`TREE_KEYED` for the deployment's tree partition count."""
    records: tuple[type[ev.Event], ...]
    """Records that may appear on the topic (empty: any bytes, as on the dead-letter topic)."""
    key: str
    """What the Kafka key holds."""
    description: str
    retention_ms: int = FOREVER
    cleanup_policy: str = "delete"
    extra_config: dict[str, str] = field(default_factory=dict)
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", frozenset(r.avro_name for r in self.records))

    def config(self) -> dict[str, str]:
        """Topic-level broker configs.

        Records carry the broker's append time (``LogAppendTime``): one clock per
        partition, which the spawn gate orders its two input topics by and which the audit
        chain covers, instead of whatever clock each producer had.
        """
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "message.timestamp.type": "LogAppendTime",
            **self.extra_config,
        }

    @property
    def tree_keyed(self) -> bool:
        """Whether the topic is co-partitioned with the other tree-keyed ones."""
        return self.partitions == TREE_KEYED

    def accepts(self, full_name: str) -> bool:
        """Whether a record of this Avro full name belongs on the topic."""
        return not self._names or full_name in self._names


SPAWN_REQUESTS = TopicSpec(
    "agentlog.spawn.requests",
    TREE_KEYED,
    (ev.RootAgentRegistered, ev.SpawnRequested),
    "meta.root_id",
    "Spawn directives: root registrations and spawn requests.",
)
LIFECYCLE_REPORTS: tuple[type[ev.Event], ...] = (
    ev.AgentStarted,
    ev.TokensConsumed,
    ev.AgentCompleted,
    ev.AgentFailed,
    ev.TerminationRequested,
)
"""What agent runtimes report about their agents: claims the spawn gate checks and answers with facts."""
AGENT_LIFECYCLE = TopicSpec(
    "agentlog.agent.lifecycle",
    TREE_KEYED,
    (*LIFECYCLE_REPORTS, ev.BudgetTopUpRequested, ev.TreeFreezeRequested, ev.TreeThawRequested),
    "meta.root_id",
    "Lifecycle reports from agent runtimes; freeze requests (the bus's, for a CRITICAL alert) and operators' thaws.",
)
POLICY_DECISIONS = TopicSpec(
    "agentlog.policy.decisions",
    TREE_KEYED,
    (
        ev.SpawnApproved,
        ev.SpawnDenied,
        ev.BudgetExhausted,
        ev.AgentTimedOut,
        ev.AgentTerminated,
        ev.CircuitOpened,
        ev.CircuitClosed,
        ev.RootAdmitted,
        ev.RootRejected,
        ev.BudgetToppedUp,
        ev.TopUpDenied,
        ev.TreeForgotten,
        ev.LifecycleRejected,
        ev.AgentRunning,
        ev.TokensCharged,
        ev.AgentEnded,
        ev.TreeFrozen,
        ev.TreeThawed,
    ),
    "meta.root_id",
    "Decisions of the spawn gate and lifecycle enforcer; each names its policy version.",
)
POLICY_CONFIG = TopicSpec(
    "agentlog.policy.config",
    1,
    (ev.PolicyPublished,),
    "policy_name:version",
    "Versioned spawn policies; compacted by name and version, so every version stays; the newest is in force.",
    cleanup_policy="compact",
    # Every version has a key of its own, so compaction keeps them all (records keyed by the
    # name alone, before 0.2, still compact to the newest of them).
    extra_config={"min.compaction.lag.ms": str(7 * 24 * 3600 * 1000)},
)
KEYRING = TopicSpec(
    "agentlog.keyring",
    1,
    (ev.SigningKeyPublished, ev.SigningKeyRevoked),
    "key_id:published or key_id:revoked",
    "Public keys that input records are signed with, and their revocations; compacted, and every"
    " publication and revocation has a key of its own, so none is ever compacted away.",
    cleanup_policy="compact",
    extra_config={"min.compaction.lag.ms": str(7 * 24 * 3600 * 1000)},
)
MESSAGES = TopicSpec(
    "agentlog.messages",
    TREE_KEYED,
    (
        ev.AgentRequest,
        ev.AgentReply,
        ev.AgentQuestion,
        ev.AgentAlert,
        ev.Handoff,
        ev.DecisionRecorded,
        ev.MessageAcknowledged,
    ),
    "meta.root_id",
    "Agent-to-agent messages: requests and replies, questions and decisions, alerts, handoffs; and inboxes'"
    " acknowledgements.",
)
MISSIONS = TopicSpec(
    "agentlog.missions",
    TREE_KEYED,
    (ev.MissionCreated, ev.DependencyAdded, ev.MissionTransitionRequested, ev.MissionHandoffRequested),
    "meta.root_id",
    "Mission commands: creation, dependencies, transition requests; the bus's handoffs of missions.",
)
MISSION_EVENTS = TopicSpec(
    "agentlog.mission.events",
    TREE_KEYED,
    (
        ev.MissionTransitioned,
        ev.MissionTransitionRejected,
        ev.DependencyAccepted,
        ev.DependencyRejected,
        ev.MissionHandedOff,
        ev.MissionHandoffRejected,
    ),
    "meta.root_id",
    "Mission facts decided by the mission processor: transitions, and every command's acceptance or rejection.",
)
MESSAGE_EVENTS = TopicSpec(
    "agentlog.message.events",
    TREE_KEYED,
    (ev.MessageAccepted, ev.MessageRejected, ev.MessageExpired, ev.QuestionEscalated),
    "meta.root_id",
    "Facts of the consultation bus: every message accepted with its recipients or rejected, expiries and escalations.",
)
DLQ = TopicSpec(
    "agentlog.dlq",
    3,
    (),
    "original key",
    "Dead letters: the original bytes, with headers naming the stage, error and source position.",
    retention_ms=30 * 24 * 3600 * 1000,
)

AUDIT_CHECKPOINTS = TopicSpec(
    "agentlog.audit.checkpoints",
    1,
    (ev.AuditCheckpoint,),
    "topic[partition]",
    "How far each audit chain had grown when the projector attested it (after its commit); kept forever, audited"
    " like every topic but not checkpointed itself, so that a shortened chain is told from lag.",
)

HEARTBEAT_RETENTION_MS = 3600 * 1000
HEARTBEATS = TopicSpec(
    "agentlog.agent.heartbeats",
    TREE_KEYED,
    (ev.AgentHeartbeat,),
    "meta.root_id",
    "Heartbeats of agents whose runtimes send them; kept an hour and never audited (the audit records the"
    " timeouts of missed heartbeats, not the beats).",
    retention_ms=HEARTBEAT_RETENTION_MS,
)

CATALOGUE: tuple[TopicSpec, ...] = (
    SPAWN_REQUESTS,
    AGENT_LIFECYCLE,
    POLICY_DECISIONS,
    POLICY_CONFIG,
    KEYRING,
    MESSAGES,
    MISSIONS,
    MISSION_EVENTS,
    MESSAGE_EVENTS,
    DLQ,
    AUDIT_CHECKPOINTS,
)
"""The audited topics: kept (most of them forever), projected into the audit log, exported and replayed."""
EPHEMERAL: tuple[TopicSpec, ...] = (HEARTBEATS,)
"""Topics kept briefly and never audited: what they say is summed up by facts on the audited ones."""
DEPLOYED: tuple[TopicSpec, ...] = CATALOGUE + EPHEMERAL
"""Every topic of a deployment (``agentlog topics create`` makes them all)."""

_BY_RECORD = {record.avro_name: spec for spec in DEPLOYED for record in spec.records}


def topic_of(event_type: type[ev.Event]) -> TopicSpec:
    """The topic a record is published to."""
    try:
        return _BY_RECORD[event_type.avro_name]
    except KeyError as e:
        raise AgentlogError(f"{event_type.avro_name} has no topic in the catalogue") from e


def key_of(event: ev.Event) -> str:
    """The Kafka key of an event: its tree's ``root_id``, ``name:version`` for policies, ``key_id:action`` for keys."""
    if isinstance(event, ev.PolicyPublished):
        return f"{event.policy_name}:{event.version}"
    if isinstance(event, ev.SigningKeyPublished):
        return f"{event.key_id}:published"
    if isinstance(event, ev.SigningKeyRevoked):
        return f"{event.key_id}:revoked"
    return event.meta.root_id


def by_name(name: str, prefix: str = "") -> TopicSpec | None:
    """The entry of :data:`DEPLOYED` for a base or deployed topic name, if it is one."""
    base = name[len(prefix) :] if prefix and name.startswith(prefix) else name
    return next((spec for spec in DEPLOYED if spec.name == base), None)
