"""Event models generated from ``schemas/*.avsc`` by ``agentlog schemas generate``. Do not edit."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from agentlog.events.types import Id, Int32, Int64, ShortText, Text, UtcDatetime, utc_now


class AvroRecord(BaseModel):
    """Base of every generated record: immutable, no unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    avro_name: ClassVar[str]


class Event(AvroRecord):
    """Base of every event: a record with a ``meta`` envelope."""

    meta: Meta



class DenialReason(StrEnum):
    """Why a spawn, a root registration, a top-up or a lifecycle report was denied. TENANT_MISMATCH: the input names a tree of another tenant. For lifecycle reports, UNKNOWN_AGENT: the tree does not know the agent (or the tree); AGENT_NOT_ACTIVE: the agent (or its whole tree) already ended; INVALID_REQUEST: a usage report of no tokens. Signed input (policy limits.require_signatures): UNSIGNED, no signature; BAD_SIGNATURE, a signature that does not verify or does not parse; UNKNOWN_KEY, a key id the keyring lacks; KEY_EXPIRED and KEY_REVOKED, a key past its expiry or revoked; SIGNER_NOT_AUTHORIZED, a key of another tenant, of another agent, or a platform key acting for no operator. TREE_FROZEN: a spawn in a tree an alert froze (TreeFrozen), or a freeze of a frozen tree; NOT_AN_OPERATOR: a thaw by someone the policy does not name an operator (or a freeze by someone who is neither an operator, the bus nor an active agent of the tree); NOT_FROZEN: a thaw of a tree that is not frozen."""

    UNKNOWN = "UNKNOWN"
    DEPTH_EXCEEDED = "DEPTH_EXCEEDED"
    SPAWN_BUDGET_EXHAUSTED = "SPAWN_BUDGET_EXHAUSTED"
    TOKEN_BUDGET_EXHAUSTED = "TOKEN_BUDGET_EXHAUSTED"
    CONFIG_NOT_WHITELISTED = "CONFIG_NOT_WHITELISTED"
    NOT_AUTHORIZED = "NOT_AUTHORIZED"
    GRANT_TOO_LARGE = "GRANT_TOO_LARGE"
    PARENT_CONCURRENCY = "PARENT_CONCURRENCY"
    TENANT_CONCURRENCY = "TENANT_CONCURRENCY"
    PLATFORM_CONCURRENCY = "PLATFORM_CONCURRENCY"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    UNKNOWN_PARENT = "UNKNOWN_PARENT"
    PARENT_NOT_ACTIVE = "PARENT_NOT_ACTIVE"
    INVALID_REQUEST = "INVALID_REQUEST"
    DUPLICATE_REQUEST = "DUPLICATE_REQUEST"
    NO_POLICY = "NO_POLICY"
    FORBIDDEN_ACTION = "FORBIDDEN_ACTION"
    UNKNOWN_AGENT = "UNKNOWN_AGENT"
    AGENT_NOT_ACTIVE = "AGENT_NOT_ACTIVE"
    TENANT_MISMATCH = "TENANT_MISMATCH"
    UNSIGNED = "UNSIGNED"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    KEY_EXPIRED = "KEY_EXPIRED"
    KEY_REVOKED = "KEY_REVOKED"
    SIGNER_NOT_AUTHORIZED = "SIGNER_NOT_AUTHORIZED"
    TREE_FROZEN = "TREE_FROZEN"
    NOT_AN_OPERATOR = "NOT_AN_OPERATOR"
    NOT_FROZEN = "NOT_FROZEN"


class DependencyKind(StrEnum):
    """HARD: the mission may not start before the other completes. SOFT: it may, with a warning."""

    HARD = "HARD"
    SOFT = "SOFT"


class EndOutcome(StrEnum):
    """How an agent that reported its own end ended."""

    UNKNOWN = "UNKNOWN"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class MessageKind(StrEnum):
    """What kind of message a fact of the consultation bus is about."""

    UNKNOWN = "UNKNOWN"
    REQUEST = "REQUEST"
    REPLY = "REPLY"
    QUESTION = "QUESTION"
    DECISION = "DECISION"
    ALERT = "ALERT"
    HANDOFF = "HANDOFF"


class MessageRejection(StrEnum):
    """Why the consultation bus rejected a message."""

    UNKNOWN = "UNKNOWN"
    UNKNOWN_TREE = "UNKNOWN_TREE"
    TENANT_MISMATCH = "TENANT_MISMATCH"
    NOT_AN_ACTIVE_AGENT = "NOT_AN_ACTIVE_AGENT"
    UNKNOWN_RECIPIENT = "UNKNOWN_RECIPIENT"
    RECIPIENT_ENDED = "RECIPIENT_ENDED"
    UNKNOWN_MESSAGE = "UNKNOWN_MESSAGE"
    NOT_ADDRESSED = "NOT_ADDRESSED"
    ALREADY_ANSWERED = "ALREADY_ANSWERED"
    EXPIRED = "EXPIRED"
    NOT_ALLOWED = "NOT_ALLOWED"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_LARGE = "TOO_LARGE"
    DUPLICATE_MESSAGE = "DUPLICATE_MESSAGE"
    INVALID_MESSAGE = "INVALID_MESSAGE"


class MissionRejection(StrEnum):
    """Why the mission processor rejected a command."""

    UNKNOWN = "UNKNOWN"
    NOT_ALLOWED = "NOT_ALLOWED"
    UNKNOWN_TREE = "UNKNOWN_TREE"
    TENANT_MISMATCH = "TENANT_MISMATCH"
    UNKNOWN_MISSION = "UNKNOWN_MISSION"
    DUPLICATE_MISSION = "DUPLICATE_MISSION"
    UNKNOWN_PARENT = "UNKNOWN_PARENT"
    PARENT_FINISHED = "PARENT_FINISHED"
    NOT_AN_ACTIVE_AGENT = "NOT_AN_ACTIVE_AGENT"
    OPEN_CHILDREN = "OPEN_CHILDREN"
    INVALID_REQUEST = "INVALID_REQUEST"
    TOO_MANY_MISSIONS = "TOO_MANY_MISSIONS"
    SELF_DEPENDENCY = "SELF_DEPENDENCY"
    UNKNOWN_DEPENDENCY = "UNKNOWN_DEPENDENCY"
    DUPLICATE_DEPENDENCY = "DUPLICATE_DEPENDENCY"
    DEPENDENCY_CYCLE = "DEPENDENCY_CYCLE"
    DEPENDENCY_TOO_LATE = "DEPENDENCY_TOO_LATE"
    NOT_THE_OWNER = "NOT_THE_OWNER"
    MISSION_FINISHED = "MISSION_FINISHED"


class MissionState(StrEnum):
    """States of a mission's life (the table in processors/mission_core.py and the README): PENDING waits for hard dependencies, READY may start, RUNNING under an agent of its tree, then COMPLETED, FAILED or CANCELLED; BLOCKED when a hard dependency can never complete; ARCHIVED ends a finished mission's life."""

    UNKNOWN = "UNKNOWN"
    PENDING = "PENDING"
    READY = "READY"
    RUNNING = "RUNNING"
    BLOCKED = "BLOCKED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    ARCHIVED = "ARCHIVED"


class Priority(StrEnum):
    """Urgency of a task or message, from most to least urgent."""

    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"


class TerminationReason(StrEnum):
    """Why an agent was terminated."""

    UNKNOWN = "UNKNOWN"
    REQUESTED = "REQUESTED"
    ANCESTOR_ENDED = "ANCESTOR_ENDED"
    BUDGET = "BUDGET"
    TIMEOUT = "TIMEOUT"
    CIRCUIT = "CIRCUIT"


class TimeoutCause(StrEnum):
    """Why an agent timed out: its deadline passed, or its runtime stopped sending heartbeats."""

    UNKNOWN = "UNKNOWN"
    DEADLINE = "DEADLINE"
    HEARTBEAT_MISSED = "HEARTBEAT_MISSED"


class Meta(AvroRecord):
    """Envelope carried by every agentlog event. Trace context travels in Kafka headers (W3C traceparent), never here."""

    avro_name: ClassVar[str] = "agentlog.common.Meta"
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, description='Unique id of this event (UUID); consumers use it to recognise a redelivery.')
    occurred_at: UtcDatetime = Field(default_factory=utc_now, description='When the act happened, UTC, microsecond precision.')
    tenant_id: Id = Field(description='Tenant that owns the agent tree; concurrency caps are counted per tenant.')
    root_id: Id = Field(description='Id of the lineage root agent (or root mission). The Kafka key: everything of one tree lands in one partition, in order.')
    producer: Id = Field(description="Who emitted the event: a runtime, a processor or a tool, e.g. 'agentlog-cli' or 'processors.spawn_gate'.")
    causation_id: uuid.UUID | None = Field(default=None, description='event_id of the event that directly caused this one, if any.')
    correlation_id: Id | None = Field(default=None, description='Id shared by every event of one conversation or workflow, if any.')


class TaskSpec(AvroRecord):
    """The work an agent is asked to do."""

    avro_name: ClassVar[str] = "agentlog.common.TaskSpec"
    title: ShortText = Field(description='Short name of the task.')
    description: Text = Field(default='', description='What the task is, in full.')
    acceptance_criteria: list[ShortText] = Field(default_factory=list, max_length=64, description='Conditions the result must meet to count as done.')
    deadline: UtcDatetime | None = Field(default=None, description='Moment by which the task must be finished, UTC; null for none.')
    priority: Priority = Field(default=Priority.NORMAL, description='Urgency of the task.')


class LimitCheck(AvroRecord):
    """One comparison a decision made: the limit in force and the value it was compared with."""

    avro_name: ClassVar[str] = "agentlog.decision.LimitCheck"
    name: Id = Field(description="Which limit, e.g. 'max_depth', 'parent_remaining_tokens', 'max_parallel_children'.")
    limit: Int64 = Field(description='The limit in force.')
    value: Int64 = Field(description='The value compared with the limit (what the request would need or reach).')
    passed: bool = Field(description='Whether the value was within the limit.')


class ConfigRule(AvroRecord):
    """One whitelisted agent config and its authority."""

    avro_name: ClassVar[str] = "agentlog.policy.ConfigRule"
    name: Id = Field(description="Config (role) name, e.g. 'orchestrator'.")
    may_spawn: bool = Field(default=False, description='Whether agents of this config may spawn children at all.')
    spawnable_by: list[Id] = Field(default_factory=list, max_length=1024, description='Configs whose agents may spawn this config; empty means only as a root.')
    max_token_grant: Int64 = Field(description='Largest token budget an agent of this config may be granted.')
    max_spawn_grant: Int32 = Field(default=0, description='Largest spawn budget an agent of this config may be granted.')
    forbidden_actions: list[Id] = Field(default_factory=list, max_length=64, description='Capabilities an agent of this config may never be given.')
    terminable_by: list[Id] = Field(default_factory=list, max_length=1024, description="Configs of ancestors that may terminate agents of this config; empty: any ancestor. The agent itself and the policy's operators always may.")
    can_override_decisions: bool = Field(default=False, description="Whether agents of this config may decide any open question of their tree, besides its recipient and the asker's ancestors.")


class Limits(AvroRecord):
    """The limits of a policy, and who may end agents outside their own line."""

    avro_name: ClassVar[str] = "agentlog.policy.Limits"
    max_depth: Int32 = Field(default=3, description='Deepest allowed agent; the root is depth 0.')
    max_parallel_children: Int32 = Field(default=5, description='Active children one parent may have at once.')
    max_active_per_tenant: Int32 = Field(default=1000, description='Active agents one tenant may have at once.')
    max_active_platform: Int32 = Field(default=100000, description='Active agents on the whole platform, split into per-partition quotas that sum to it.')
    default_max_runtime_ms: Int64 = Field(default=3600000, description='Wall-clock limit of an agent that asks for none, in milliseconds.')
    circuit_denials: Int32 = Field(default=10, description="Denials within circuit_window_ms that open a tree's circuit.")
    circuit_window_ms: Int64 = Field(default=60000, description='Counting window of the circuit breaker, in milliseconds.')
    circuit_cooldown_ms: Int64 = Field(default=300000, description='How long an open circuit stays open, in milliseconds.')
    ended_tree_retention_ms: Int64 = Field(default=86400000, description='How long the gate keeps an ended tree (its spent request ids, its root id taken), in milliseconds; then a timer tick forgets it with a TreeForgotten.')
    operators: list[Id] = Field(default_factory=list, max_length=1024, description="Identities (a TerminationRequested's requested_by) that may terminate any agent; besides them, only the agent itself and its ancestors may.")
    tenant_root_prefix: bool = Field(default=False, description="When true, a root id must begin with its tenant's id and a slash (acme/...): no tenant can register another tenant's root id, not even after an ended tree is forgotten.")
    heartbeat_interval_ms: Int64 = Field(default=10000, description='How often a runtime sends heartbeats for an agent whose start asked for them, in milliseconds (0: no heartbeats; such agents end only by their deadline).')
    heartbeat_misses: Int32 = Field(default=3, description='Intervals without a heartbeat after which the gate times the agent out (AgentTimedOut, cause HEARTBEAT_MISSED).')
    require_signatures: bool = Field(default=False, description='When true, every input of the gate must be signed by a key on the keyring (unsigned input is denied UNSIGNED); when false (development), unsigned input is accepted, but a signature that is present must still verify.')
    mission_retention_ms: Int64 = Field(default=0, description='How long a finished mission (COMPLETED, FAILED for good, CANCELLED) stays as it is before a timer tick of the mission processor archives it, in milliseconds (0: only on request).')
    bus_rate_per_agent: Int32 = Field(default=600, description='Messages one agent may send within bus_rate_window_ms (counted in record time); more are rejected RATE_LIMITED (0: no limit).')
    bus_rate_window_ms: Int64 = Field(default=60000, description='Counting window of the per-agent message rate, in milliseconds.')
    bus_max_message_chars: Int32 = Field(default=65536, description='Largest message the bus accepts, in characters of text (subject, body, question, options, context, rationale, impact together); larger ones are rejected TOO_LARGE.')
    freeze_on_critical_alert: bool = Field(default=False, description="When true, the bus asks the gate to freeze a tree's spawning (TreeFreezeRequested) when it accepts a CRITICAL alert in it; an operator lifts it (TreeThawRequested).")


class ContextInheritance(AvroRecord):
    """Which parts of the parent's context the child receives."""

    avro_name: ClassVar[str] = "agentlog.spawn.ContextInheritance"
    conversation: bool = Field(default=False, description="The child sees the parent's conversation history.")
    memory: bool = Field(default=False, description="The child reads the parent's long-term memory.")
    tools: bool = Field(default=True, description="The child may use the parent's tools (within its own config's limits).")
    files: bool = Field(default=False, description="The child sees the parent's working files.")


class AuditCheckpoint(Event):
    """How far one partition's audit chain had grown in one projection schema when the projector attested it, after the rows were committed: an anchor outside PostgreSQL that a verifier holds the audit log to (a shortened chain is then truncation, not lag). Signed by the projector's key when it has one."""

    avro_name: ClassVar[str] = "agentlog.audit.AuditCheckpoint"
    meta: Meta = Field(description='Event envelope; meta.root_id is the checkpointed partition, topic[partition].')
    projection_schema: Id = Field(description='The PostgreSQL schema whose audit log this attests.')
    topic: Id = Field(description='The audited topic (deployed name).')
    partition: Int32 = Field(description='Its partition.')
    next_offset: Int64 = Field(description="Every record below this offset has its audit row (the projector's committed position).")
    row_count: Int64 = Field(description='Audit rows of the partition below next_offset.')
    chain_head: Id = Field(description="Hex SHA-256 of the last of those rows: the head of the partition's chain.")
    projector: Id = Field(description="The projector's consumer group (and instance id, if it has one).")


class AgentEnded(Event):
    """The spawn gate accepted an agent's completion or failure report: the agent ended (after its active descendants, each AgentTerminated), and its unused tokens returned to its parent."""

    avro_name: ClassVar[str] = "agentlog.decision.AgentEnded"
    meta: Meta = Field(description="Event envelope; the tenant is the tree's, causation_id the report's event_id.")
    agent_id: Id = Field(description='Agent that ended.')
    outcome: EndOutcome = Field(default=EndOutcome.UNKNOWN, description='Completed or failed, as the agent reported.')
    result_summary: Text = Field(default='', description='For a completion: what the agent produced, as reported.')
    quality_score: float | None = Field(default=None, description='For a completion: the quality reported, if any.')
    error: Text = Field(default='', description='For a failure: what went wrong, as reported.')
    retryable: bool = Field(default=False, description='For a failure: whether the task could succeed if tried again.')
    tokens_used: Int64 = Field(description='Tokens the agent used in all, its final report included.')
    returned_tokens: Int64 = Field(default=0, description='Unused tokens returned to the parent.')
    policy_version: Int32 = Field(description='Version of the policy in force (0 when none was).')
    policy_name: Id = Field(default='', description='Name of the policy in force, beside its version.')
    message: Text = Field(description='A sentence an agent can be shown.')


class AgentRunning(Event):
    """The spawn gate accepted an agent's start report: the agent is active in its tree and running."""

    avro_name: ClassVar[str] = "agentlog.decision.AgentRunning"
    meta: Meta = Field(description="Event envelope; the tenant is the tree's, causation_id the report's event_id.")
    agent_id: Id = Field(description='Agent that started.')
    policy_version: Int32 = Field(description='Version of the policy in force (0 when none was).')
    policy_name: Id = Field(default='', description='Name of the policy in force, beside its version.')
    heartbeat_interval_ms: Int64 | None = Field(default=None, description='For a start that asked for heartbeats, under a policy that has them: how often the runtime sends one (null: no heartbeats, only the deadline ends the agent).')
    heartbeat_timeout_ms: Int64 | None = Field(default=None, description='How long the gate waits without a heartbeat before it times the agent out (interval times limits.heartbeat_misses).')
    message: Text = Field(description='A sentence an agent can be shown.')


class AgentTerminated(Event):
    """The platform ended an agent; its unused tokens returned to its parent."""

    avro_name: ClassVar[str] = "agentlog.decision.AgentTerminated"
    meta: Meta = Field(description='Event envelope.')
    agent_id: Id = Field(description='Agent that was ended.')
    reason: TerminationReason = Field(default=TerminationReason.UNKNOWN, description='Why it was ended.')
    ended_by_agent_id: Id | None = Field(default=None, description='For ancestor_ended: the ancestor whose end caused this one.')
    returned_tokens: Int64 = Field(default=0, description='Unused tokens returned to the parent.')
    policy_version: Int32 = Field(description='Version of the policy that was applied.')
    policy_name: Id = Field(default='', description='Name of the policy that was applied, beside its version (empty when none was in force, and in records written before v2).')
    message: Text = Field(description='A sentence an agent can be shown.')


class AgentTimedOut(Event):
    """An agent passed its deadline, or its heartbeats stopped; it ends, and its subtree is terminated."""

    avro_name: ClassVar[str] = "agentlog.decision.AgentTimedOut"
    meta: Meta = Field(description='Event envelope.')
    agent_id: Id = Field(description='Agent that timed out.')
    deadline: UtcDatetime = Field(description="The deadline that passed, UTC: the agent's own, or, for a missed heartbeat, its last beat plus the heartbeat timeout (the tick's time when none was heard).")
    returned_tokens: Int64 = Field(default=0, description='Unused tokens returned to the parent.')
    policy_version: Int32 = Field(description='Version of the policy that was applied.')
    policy_name: Id = Field(default='', description='Name of the policy that was applied, beside its version (empty when none was in force, and in records written before v2).')
    cause: TimeoutCause = Field(default=TimeoutCause.DEADLINE, description="What passed: the agent's deadline, or the heartbeat timeout.")
    last_heartbeat_at: UtcDatetime | None = Field(default=None, description='For a missed heartbeat: when the gate last heard one (null: none since the agent started or the gate took over its partition).')
    message: Text = Field(description='A sentence an agent can be shown.')


class BudgetExhausted(Event):
    """An agent used more tokens than it was granted; it may not spawn until topped up."""

    avro_name: ClassVar[str] = "agentlog.decision.BudgetExhausted"
    meta: Meta = Field(description="Event envelope; causation_id is the usage report's event_id.")
    agent_id: Id = Field(description='Agent over its grant.')
    token_budget: Int64 = Field(description="The agent's grant.")
    tokens_used: Int64 = Field(description='Tokens the agent has used in total.')
    policy_version: Int32 = Field(description='Version of the policy that was applied.')
    policy_name: Id = Field(default='', description='Name of the policy that was applied, beside its version (empty when none was in force, and in records written before v2).')
    message: Text = Field(description='A sentence an agent can be shown.')


class BudgetToppedUp(Event):
    """The spawn gate granted a BudgetTopUpRequested: the agent's grant grew, reserved from its parent's remaining tokens (or added to the tree for a root)."""

    avro_name: ClassVar[str] = "agentlog.decision.BudgetToppedUp"
    meta: Meta = Field(description="Event envelope; causation_id is the request's event_id.")
    request_id: uuid.UUID = Field(description='The top-up request this answers.')
    agent_id: Id = Field(description='Agent whose grant grew.')
    additional_tokens: Int64 = Field(description='Tokens added to the grant.')
    token_budget: Int64 = Field(description="The agent's grant after the top-up.")
    remaining_tokens: Int64 = Field(description='Tokens the agent has left to grant or spend after the top-up (negative while still over budget).')
    parent_remaining_tokens: Int64 | None = Field(default=None, description='Tokens the parent has left after reserving the top-up; null for a root.')
    spawns_unblocked: bool = Field(default=False, description='Whether the agent was blocked by BudgetExhausted and may spawn again.')
    checks: list[LimitCheck] = Field(default_factory=list, max_length=64, description='Every limit evaluated, with the numbers compared.')
    policy_version: Int32 = Field(description='Version of the policy that was applied.')
    policy_name: Id = Field(default='', description='Name of the policy that was applied, beside its version (empty when none was in force, and in records written before v2).')
    message: Text = Field(description='A sentence an agent can be shown.')
    repeat: bool = Field(default=False, description="True when this answers a retry of a top-up request already decided: the outcome is the original decision's (the same approval or child, the same denial reason), the figures are as of this answer. Count decisions without repeats.")


class CircuitClosed(Event):
    """The cool-down of a tree's circuit passed; spawns are evaluated again."""

    avro_name: ClassVar[str] = "agentlog.decision.CircuitClosed"
    meta: Meta = Field(description='Event envelope; meta.root_id names the tree.')
    policy_version: Int32 = Field(description='Version of the policy that was applied.')
    policy_name: Id = Field(default='', description='Name of the policy that was applied, beside its version (empty when none was in force, and in records written before v2).')
    message: Text = Field(description='A sentence an agent can be shown.')


class CircuitOpened(Event):
    """Too many denials in one tree within the window: the tree is frozen to new spawns until open_until."""

    avro_name: ClassVar[str] = "agentlog.decision.CircuitOpened"
    meta: Meta = Field(description='Event envelope; meta.root_id names the frozen tree.')
    denials: Int32 = Field(description='Denials counted within the window.')
    threshold: Int32 = Field(description='Denials that open the circuit.')
    window_ms: Int64 = Field(description='Length of the counting window in milliseconds.')
    open_until: UtcDatetime = Field(description='When the cool-down ends, UTC.')
    policy_version: Int32 = Field(description='Version of the policy that was applied.')
    policy_name: Id = Field(default='', description='Name of the policy that was applied, beside its version (empty when none was in force, and in records written before v2).')
    message: Text = Field(description='A sentence an agent can be shown.')


class LifecycleRejected(Event):
    """The spawn gate rejected a lifecycle report (usage, start, completion, failure, termination request): it changed nothing but, for a late completion or failure, the tokens it reports (charged as a TokensCharged)."""

    avro_name: ClassVar[str] = "agentlog.decision.LifecycleRejected"
    meta: Meta = Field(description="Event envelope; the tenant is the tree's, causation_id the report's event_id.")
    agent_id: Id = Field(description='Agent the report named.')
    report: Id = Field(description='Avro full name of the rejected report.')
    reported_by_tenant: Id = Field(description='Tenant the report claimed to come from.')
    reason: DenialReason = Field(default=DenialReason.UNKNOWN, description='Why the report was rejected.')
    policy_version: Int32 = Field(description='Version of the policy in force (0 when none was).')
    policy_name: Id = Field(default='', description='Name of the policy in force, beside its version.')
    message: Text = Field(description='A sentence an operator can be shown.')


class RootAdmitted(Event):
    """The spawn gate admitted a RootAgentRegistered: a new agent tree exists, holding the whole tree's budgets."""

    avro_name: ClassVar[str] = "agentlog.decision.RootAdmitted"
    meta: Meta = Field(description="Event envelope; causation_id is the registration's event_id, meta.root_id the new root.")
    agent_id: Id = Field(description='Id of the admitted root agent.')
    config: Id = Field(description='Agent config (role) of the root.')
    token_budget: Int64 = Field(description="Tokens the whole tree may consume (the root's grant).")
    spawn_budget: Int32 = Field(description='Spawn budget of the root: the tree never holds more than spawn_budget + 1 agents.')
    deadline: UtcDatetime | None = Field(default=None, description='When the root times out, UTC; null for never.')
    checks: list[LimitCheck] = Field(default_factory=list, max_length=64, description='Every limit evaluated, with the numbers compared.')
    policy_version: Int32 = Field(description='Version of the policy that was applied.')
    policy_name: Id = Field(default='', description='Name of the policy that was applied, beside its version (empty when none was in force, and in records written before v2).')
    message: Text = Field(description='A sentence an agent can be shown.')
    repeat: bool = Field(default=False, description="True when this answers a retry of a registration already decided: the outcome is the original decision's (the same approval or child, the same denial reason), the figures are as of this answer. Count decisions without repeats.")


class RootRejected(Event):
    """The spawn gate rejected a RootAgentRegistered. No tree was created and nothing was reserved."""

    avro_name: ClassVar[str] = "agentlog.decision.RootRejected"
    meta: Meta = Field(description="Event envelope; causation_id is the registration's event_id.")
    agent_id: Id = Field(description='Id the root asked to be registered under.')
    config: Id = Field(description='Agent config (role) that was asked for.')
    reason: DenialReason = Field(default=DenialReason.UNKNOWN, description='Why the registration was rejected.')
    checks: list[LimitCheck] = Field(default_factory=list, max_length=64, description='Every limit evaluated, with the numbers compared; the failing one has passed=false.')
    policy_version: Int32 = Field(description='Version of the policy that was applied (0 when none was in force).')
    policy_name: Id = Field(default='', description='Name of the policy that was applied, beside its version (empty when none was in force, and in records written before v2).')
    message: Text = Field(description='A sentence an agent can be shown.')


class SpawnApproved(Event):
    """The spawn gate approved a SpawnRequested: the child exists, with the budgets reserved for it."""

    avro_name: ClassVar[str] = "agentlog.decision.SpawnApproved"
    meta: Meta = Field(description="Event envelope; causation_id is the request's event_id.")
    request_id: uuid.UUID = Field(description='The request this answers.')
    parent_agent_id: Id = Field(description='The spawning agent.')
    child_agent_id: Id = Field(description='Id of the new agent, derived deterministically from request_id.')
    child_config: Id = Field(description='Agent config (role) of the child.')
    depth: Int32 = Field(description='Depth of the child; the root is 0.')
    granted_token_budget: Int64 = Field(description='Tokens reserved for the child.')
    granted_spawn_budget: Int32 = Field(description='Spawn budget of the child.')
    deadline: UtcDatetime | None = Field(default=None, description='When the child times out, UTC; null for never.')
    parent_remaining_tokens: Int64 = Field(description='Tokens the parent has left to grant or spend after this grant.')
    parent_remaining_spawn_budget: Int32 = Field(description='Spawn budget the parent has left after this grant.')
    checks: list[LimitCheck] = Field(default_factory=list, max_length=64, description='Every limit evaluated, with the numbers compared.')
    policy_version: Int32 = Field(description='Version of the policy that was applied.')
    policy_name: Id = Field(default='', description='Name of the policy that was applied, beside its version (empty when none was in force, and in records written before v2).')
    message: Text = Field(description='A sentence an agent can be shown.')
    repeat: bool = Field(default=False, description="True when this answers a retry of a request already decided: the outcome is the original decision's (the same approval or child, the same denial reason), the figures are as of this answer. Count decisions without repeats.")


class SpawnDenied(Event):
    """The spawn gate denied a SpawnRequested. Nothing was reserved."""

    avro_name: ClassVar[str] = "agentlog.decision.SpawnDenied"
    meta: Meta = Field(description="Event envelope; causation_id is the request's event_id.")
    request_id: uuid.UUID = Field(description='The request this answers.')
    parent_agent_id: Id = Field(description='The agent that asked.')
    child_config: Id = Field(description='Agent config (role) that was asked for.')
    reason: DenialReason = Field(default=DenialReason.UNKNOWN, description='Why the spawn was denied.')
    checks: list[LimitCheck] = Field(default_factory=list, max_length=64, description='Every limit evaluated, with the numbers compared; the failing one has passed=false.')
    policy_version: Int32 = Field(description='Version of the policy that was applied (0 when none was in force).')
    policy_name: Id = Field(default='', description='Name of the policy that was applied, beside its version (empty when none was in force, and in records written before v2).')
    message: Text = Field(description="A sentence an agent can be shown, e.g. 'Cannot spawn: maximum depth 3 reached. Handle this sub-task directly.'")
    repeat: bool = Field(default=False, description="True when this answers a retry of a request already decided: the outcome is the original decision's (the same approval or child, the same denial reason), the figures are as of this answer. Count decisions without repeats.")


class TokensCharged(Event):
    """The spawn gate charged reported tokens to an agent's grant: the reporter's own, or, when the reporter already ended, its nearest active ancestor's."""

    avro_name: ClassVar[str] = "agentlog.decision.TokensCharged"
    meta: Meta = Field(description="Event envelope; the tenant is the tree's, causation_id the report's event_id.")
    agent_id: Id = Field(description='Agent that reported the usage.')
    charged_agent_id: Id = Field(description='Agent whose grant the tokens were charged to.')
    tokens: Int64 = Field(description='Tokens charged.')
    tokens_used: Int64 = Field(description='Tokens the charged agent has used since it was granted, this charge included.')
    remaining_tokens: Int64 = Field(description='What the charged agent has left of its grant after reservations for its children (negative: over budget).')
    partial_result: Text | None = Field(default=None, description='The partial result the report carried, if any (for the reporter, agent_id).')
    policy_version: Int32 = Field(description='Version of the policy in force (0 when none was).')
    policy_name: Id = Field(default='', description='Name of the policy in force, beside its version.')
    message: Text = Field(description='A sentence an agent can be shown.')


class TopUpDenied(Event):
    """The spawn gate denied a BudgetTopUpRequested. Nothing was reserved."""

    avro_name: ClassVar[str] = "agentlog.decision.TopUpDenied"
    meta: Meta = Field(description="Event envelope; causation_id is the request's event_id.")
    request_id: uuid.UUID = Field(description='The top-up request this answers.')
    agent_id: Id = Field(description='Agent whose grant was to grow.')
    additional_tokens: Int64 = Field(description='Tokens that were asked for.')
    reason: DenialReason = Field(default=DenialReason.UNKNOWN, description='Why the top-up was denied.')
    checks: list[LimitCheck] = Field(default_factory=list, max_length=64, description='Every limit evaluated, with the numbers compared; the failing one has passed=false.')
    policy_version: Int32 = Field(description='Version of the policy that was applied (0 when none was in force).')
    policy_name: Id = Field(default='', description='Name of the policy that was applied, beside its version (empty when none was in force, and in records written before v2).')
    message: Text = Field(description='A sentence an agent can be shown.')
    repeat: bool = Field(default=False, description="True when this answers a retry of a top-up request already decided: the outcome is the original decision's (the same approval or child, the same denial reason), the figures are as of this answer. Count decisions without repeats.")


class TreeForgotten(Event):
    """The spawn gate forgot a tree that ended more than its retention period ago: its root id may be registered again. Emitted at a timer tick, so that replay forgets the tree at the same point."""

    avro_name: ClassVar[str] = "agentlog.decision.TreeForgotten"
    meta: Meta = Field(description='Event envelope; meta.root_id names the tree, meta.occurred_at the tick.')
    ended_at: UtcDatetime = Field(description="When the tree's root ended, UTC.")
    policy_version: Int32 = Field(description='Version of the policy in force (0 when none was).')
    policy_name: Id = Field(default='', description='Name of the policy in force, beside its version.')
    message: Text = Field(description='A sentence an operator can be shown.')


class TreeFrozen(Event):
    """The spawn gate froze a tree: every spawn in it is denied TREE_FROZEN until a TreeThawed. Running agents go on."""

    avro_name: ClassVar[str] = "agentlog.decision.TreeFrozen"
    meta: Meta = Field(description="Event envelope; causation_id is the TreeFreezeRequested's event_id.")
    requested_by: Id = Field(description='Who asked for the freeze.')
    alert_id: uuid.UUID | None = Field(default=None, description='The CRITICAL alert behind it, if any.')
    policy_version: Int32 = Field(description='Version of the policy in force (0 when none was).')
    message: Text = Field(description='A sentence an operator can be shown.')


class TreeThawed(Event):
    """The spawn gate lifted a tree's freeze at an operator's request: its agents may spawn again."""

    avro_name: ClassVar[str] = "agentlog.decision.TreeThawed"
    meta: Meta = Field(description="Event envelope; causation_id is the TreeThawRequested's event_id.")
    requested_by: Id = Field(description='The operator who lifted it.')
    policy_version: Int32 = Field(description='Version of the policy in force (0 when none was).')
    message: Text = Field(description='A sentence an operator can be shown.')


class SigningKeyPublished(Event):
    """An Ed25519 public key on the keyring: records signed with it are attributed to its tenant, its agent (when the key is scoped to one) and its principal. meta.root_id is the key id."""

    avro_name: ClassVar[str] = "agentlog.identity.SigningKeyPublished"
    meta: Meta = Field(description="Event envelope; meta.root_id is the key id, meta.tenant_id the key's tenant ('*' for a platform key).")
    key_id: Id = Field(description="The key's id: 'ed25519:' and the first 16 bytes of SHA-256 of the raw public key, in hex. Derived, never chosen: the keyring refuses an entry whose id does not match its key.")
    public_key: bytes = Field(description='The raw 32-byte Ed25519 public key.')
    tenant_id: Id | None = Field(default=None, description='The tenant whose records the key may sign; null for a platform key, which signs only as its principal, and only where the policy names that principal an operator.')
    agent_id: Id | None = Field(default=None, description="When set, the key acts only as this agent (its own reports, its spawns, its terminations); when null, as any agent of its tenant (the tenant's runtime).")
    principal: Id = Field(description="Who holds the key, e.g. a runtime's name or an operator's identity.")
    expires_at: UtcDatetime | None = Field(default=None, description='Records appended (broker time) at or after this moment, UTC, are no longer attributed to the key; null: no expiry.')
    published_by: Id = Field(description='Who put the key on the keyring.')


class SigningKeyRevoked(Event):
    """A key taken off the keyring: from the decision after the gate reads this record, nothing signed with the key is attributed to it. A revocation is final."""

    avro_name: ClassVar[str] = "agentlog.identity.SigningKeyRevoked"
    meta: Meta = Field(description='Event envelope; meta.root_id is the key id.')
    key_id: Id = Field(description='The key revoked.')
    reason: ShortText = Field(description='Why, for the audit.')
    revoked_by: Id = Field(description='Who revoked it.')


class AgentCompleted(Event):
    """An agent finished its task. Its active descendants are terminated and its unused tokens return to its parent."""

    avro_name: ClassVar[str] = "agentlog.lifecycle.AgentCompleted"
    meta: Meta = Field(description='Event envelope.')
    agent_id: Id = Field(description='Agent that completed.')
    result_summary: Text = Field(default='', description='What the agent produced, in a few sentences.')
    tokens_used: Int64 = Field(default=0, description='Tokens spent since the last TokensConsumed report, counted before the agent ends.')
    quality_score: float | None = Field(default=None, description='Self- or reviewer-assessed quality between 0 and 1, if assessed.')


class AgentFailed(Event):
    """An agent gave up or crashed. Its active descendants are terminated and its unused tokens return to its parent."""

    avro_name: ClassVar[str] = "agentlog.lifecycle.AgentFailed"
    meta: Meta = Field(description='Event envelope.')
    agent_id: Id = Field(description='Agent that failed.')
    error: Text = Field(description='What went wrong.')
    retryable: bool = Field(default=False, description='Whether the task could succeed if tried again.')
    tokens_used: Int64 = Field(default=0, description='Tokens spent since the last TokensConsumed report, counted before the agent ends.')


class AgentHeartbeat(Event):
    """A runtime says that an agent it runs is alive. On agentlog.agent.heartbeats, kept briefly and never audited: the gate times out an agent whose heartbeats stop (AgentTimedOut, cause HEARTBEAT_MISSED), and the audit records that, not the beats."""

    avro_name: ClassVar[str] = "agentlog.lifecycle.AgentHeartbeat"
    meta: Meta = Field(description='Event envelope.')
    agent_id: Id = Field(description='Agent that is alive.')


class AgentStarted(Event):
    """A runtime reports that an approved agent began running."""

    avro_name: ClassVar[str] = "agentlog.lifecycle.AgentStarted"
    meta: Meta = Field(description='Event envelope.')
    agent_id: Id = Field(description='Agent that started.')
    runtime: Id | None = Field(default=None, description='Runtime or host that runs the agent, if known.')
    heartbeat: bool = Field(default=False, description="The runtime will send heartbeats for the agent (AgentHeartbeat) at the interval the gate's AgentRunning names; the gate then times the agent out when they stop. False: only the deadline ends it.")


class BudgetTopUpRequested(Event):
    """Asks to add tokens to an agent's grant, taken from its parent's remaining tokens (or added to the tree for a root)."""

    avro_name: ClassVar[str] = "agentlog.lifecycle.BudgetTopUpRequested"
    meta: Meta = Field(description='Event envelope.')
    request_id: uuid.UUID = Field(default_factory=uuid.uuid4, description='Id of this top-up request.')
    agent_id: Id = Field(description='Agent whose grant should grow.')
    additional_tokens: Int64 = Field(description='Tokens to add.')
    requested_by: Id = Field(description='Agent or operator asking.')
    reason: Text = Field(default='', description='Why, in words.')


class TerminationRequested(Event):
    """Someone asks to stop an agent and, with it, its whole subtree."""

    avro_name: ClassVar[str] = "agentlog.lifecycle.TerminationRequested"
    meta: Meta = Field(description='Event envelope.')
    agent_id: Id = Field(description='Agent to terminate.')
    requested_by: Id = Field(description='Agent or operator asking for the termination.')
    reason: Text = Field(default='', description='Why, in words.')


class TokensConsumed(Event):
    """An agent spent tokens; counted against the agent's own grant."""

    avro_name: ClassVar[str] = "agentlog.lifecycle.TokensConsumed"
    meta: Meta = Field(description='Event envelope.')
    agent_id: Id = Field(description='Agent that spent the tokens.')
    tokens: Int64 = Field(description='Tokens spent in this report (not a running total); positive, or 0 with a partial result.')
    model: Id | None = Field(default=None, description='Model that consumed them, if known.')
    input_tokens: Int64 | None = Field(default=None, description='Of tokens, those of the prompt (input), if the runtime counts them apart; traces name them gen_ai.usage.input_tokens.')
    output_tokens: Int64 | None = Field(default=None, description='Of tokens, those generated (output), if the runtime counts them apart; traces name them gen_ai.usage.output_tokens.')
    partial_result: Text | None = Field(default=None, description="What the agent has produced so far, if it says: the parent hears it with the charge, and keeps the latest as the agent's result should it be terminated or time out. With a partial result, tokens may be 0.")


class TreeFreezeRequested(Event):
    """Someone asks the spawn gate to stop all spawning in a tree until an operator lifts the freeze: the consultation bus, for a CRITICAL alert when the policy says so (limits.freeze_on_critical_alert), or an operator."""

    avro_name: ClassVar[str] = "agentlog.lifecycle.TreeFreezeRequested"
    meta: Meta = Field(description="Event envelope; written by the bus, causation_id is the alert's event_id.")
    requested_by: Id = Field(description='Who asks: the bus (agentlog.bus), an operator of the policy or an active agent of the tree.')
    alert_id: uuid.UUID | None = Field(default=None, description='message_id of the CRITICAL alert that caused it, when the bus asks.')
    alerted_by: Id | None = Field(default=None, description='Agent that raised the alert, when the bus asks.')
    reason: Text = Field(default='', description="Why, in words (the alert's text).")


class TreeThawRequested(Event):
    """An operator asks the spawn gate to lift a tree's freeze, so that its agents may spawn again."""

    avro_name: ClassVar[str] = "agentlog.lifecycle.TreeThawRequested"
    meta: Meta = Field(description='Event envelope.')
    requested_by: Id = Field(description="The operator (one of the policy's limits.operators) lifting the freeze.")
    reason: Text = Field(default='', description='Why, in words.')


class AgentAlert(Event):
    """An agent broadcasts something every agent of the tree should know."""

    avro_name: ClassVar[str] = "agentlog.message.AgentAlert"
    meta: Meta = Field(description='Event envelope.')
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4, description='Id of this alert.')
    from_agent_id: Id = Field(description='Sender.')
    priority: Priority = Field(default=Priority.HIGH, description='Urgency.')
    text: Text = Field(description='What happened.')


class AgentQuestion(Event):
    """An agent asks a question that requires a decision, answered by a DecisionRecorded."""

    avro_name: ClassVar[str] = "agentlog.message.AgentQuestion"
    meta: Meta = Field(description='Event envelope.')
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4, description='Id of this question.')
    from_agent_id: Id = Field(description='Agent asking.')
    to_agent_id: Id | None = Field(default=None, description='Agent expected to decide; null for whoever owns the tree.')
    priority: Priority = Field(default=Priority.NORMAL, description='Urgency.')
    question: Text = Field(description='The question.')
    options: list[ShortText] = Field(default_factory=list, max_length=64, description='Choices on offer, if the answer is one of a set.')
    decide_by: UtcDatetime | None = Field(default=None, description='When a decision is needed, UTC, if ever.')


class AgentReply(Event):
    """The answer of an AgentRequest's recipient to that request."""

    avro_name: ClassVar[str] = "agentlog.message.AgentReply"
    meta: Meta = Field(description='Event envelope.')
    message_id: uuid.UUID = Field(description='Id of this reply.')
    request_id: uuid.UUID = Field(description='message_id of the request answered.')
    from_agent_id: Id = Field(description="Agent replying: the request's recipient.")
    priority: Priority = Field(default=Priority.NORMAL, description='Urgency.')
    body: Text = Field(default='', description='The answer.')
    details: dict[Id, Text] = Field(default_factory=dict, max_length=64, description='Structured results (paths, counts, verdicts), as named text.')


class AgentRequest(Event):
    """One agent asks another to do something."""

    avro_name: ClassVar[str] = "agentlog.message.AgentRequest"
    meta: Meta = Field(description='Event envelope.')
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4, description='Id of this message.')
    from_agent_id: Id = Field(description='Sender.')
    to_agent_id: Id = Field(description='Recipient.')
    priority: Priority = Field(default=Priority.NORMAL, description='Urgency.')
    subject: ShortText = Field(description='One line saying what is asked.')
    body: Text = Field(default='', description='The request in full.')
    reply_by: UtcDatetime | None = Field(default=None, description='When an answer is needed, UTC, if ever.')
    max_replies: Int32 = Field(default=1, description='Replies the request accepts (AgentReply records answering it); 0: any number until reply_by.')


class DecisionRecorded(Event):
    """The answer to an AgentQuestion."""

    avro_name: ClassVar[str] = "agentlog.message.DecisionRecorded"
    meta: Meta = Field(description='Event envelope.')
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4, description='Id of this decision.')
    question_id: uuid.UUID = Field(description='message_id of the question answered.')
    decided_by: Id = Field(description='Agent or person who decided.')
    priority: Priority = Field(default=Priority.NORMAL, description='Urgency.')
    choice: ShortText = Field(description='What was decided.')
    rationale: Text = Field(default='', description='Why.')
    impact: Text = Field(default='', description='What the decision changes.')
    impact_details: dict[Id, Text] = Field(default_factory=dict, max_length=64, description='What the decision changes, structured: named effects (e.g. scope_reduction: 15%), beside the sentence in impact.')


class Handoff(Event):
    """An agent transfers a task, with its context, to another agent."""

    avro_name: ClassVar[str] = "agentlog.message.Handoff"
    meta: Meta = Field(description='Event envelope.')
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4, description='Id of this handoff.')
    from_agent_id: Id = Field(description='Agent giving the task away.')
    to_agent_id: Id = Field(description='Agent taking the task over.')
    priority: Priority = Field(default=Priority.NORMAL, description='Urgency.')
    task: TaskSpec = Field(description='The task handed over.')
    context: dict[Id, Text] = Field(default_factory=dict, max_length=64, description='Context the receiver needs (findings, pointers), as named text.')
    mission_id: Id | None = Field(default=None, description='Mission handed over with the task, if any: once the bus accepts the handoff, the mission processor moves it to the receiver (MissionHandedOff).')


class MessageAccepted(Event):
    """The consultation bus accepted a message and resolved who it is for."""

    avro_name: ClassVar[str] = "agentlog.message.MessageAccepted"
    meta: Meta = Field(description="Event envelope; causation_id is the message's event_id, occurred_at the message's append time.")
    message_id: uuid.UUID = Field(description='The message accepted.')
    kind: MessageKind = Field(default=MessageKind.UNKNOWN, description='Request, reply, question, decision, alert or handoff.')
    from_agent_id: Id = Field(description='Sender (for a decision: who decided).')
    recipients: list[Id] = Field(default_factory=list, max_length=64, description="Agents it is delivered to: the addressee; a question's resolved decider (empty: the tree's operators); for a decision, the asker; empty for an alert, which is broadcast.")
    broadcast: bool = Field(default=False, description='True for an alert: delivered to every agent of the tree active when it was accepted, but its sender.')
    priority: Priority = Field(default=Priority.NORMAL, description='Its urgency: the order of an inbox.')
    in_reply_to: uuid.UUID | None = Field(default=None, description='For a reply, the request; for a decision, the question.')
    deadline: UtcDatetime | None = Field(default=None, description='For a request, its reply_by; for a question, its decide_by; past it the bus reports the message expired (a question escalates first).')
    policy_version: Int32 = Field(default=0, description='Version of the policy in force (0 when none was).')


class MessageAcknowledged(Event):
    """An agent's runtime took a message out of its inbox. Not decided by the bus (it is no message); projections record the delivery, and a restarted inbox does not offer the message again."""

    avro_name: ClassVar[str] = "agentlog.message.MessageAcknowledged"
    meta: Meta = Field(description='Event envelope.')
    message_id: uuid.UUID = Field(description='The message acknowledged (its message_id).')
    agent_id: Id = Field(description='The recipient acknowledging it.')


class MessageExpired(Event):
    """A request passed its reply_by unanswered, or a question its last deadline undecided at the root: reported to its sender, and closed."""

    avro_name: ClassVar[str] = "agentlog.message.MessageExpired"
    meta: Meta = Field(description="Event envelope; occurred_at is the timer tick's time, causation_id null.")
    message_id: uuid.UUID = Field(description='The request or question that expired.')
    kind: MessageKind = Field(default=MessageKind.UNKNOWN, description='REQUEST or QUESTION.')
    from_agent_id: Id = Field(description='Its sender, whom this fact is for.')
    deadline: UtcDatetime = Field(description='The deadline that passed.')
    escalations: Int32 = Field(default=0, description='For a question, how many times it was escalated before.')
    replies: Int32 = Field(default=0, description='For a request that accepts several replies, how many it got.')
    message: Text = Field(default='', description='A sentence the sender can be shown.')
    policy_version: Int32 = Field(default=0, description='Version of the policy in force (0 when none was).')


class MessageRejected(Event):
    """The consultation bus refused a message: it is delivered to nobody."""

    avro_name: ClassVar[str] = "agentlog.message.MessageRejected"
    meta: Meta = Field(description="Event envelope; causation_id is the message's event_id.")
    message_id: uuid.UUID = Field(description='The message refused.')
    kind: MessageKind = Field(default=MessageKind.UNKNOWN, description='What kind of message it was.')
    from_agent_id: Id = Field(description='Its sender, as the message named it.')
    reason: MessageRejection = Field(default=MessageRejection.UNKNOWN, description='Why, as a code.')
    message: Text = Field(default='', description='Why, as a sentence the sender can be shown.')
    policy_version: Int32 = Field(default=0, description='Version of the policy in force (0 when none was).')


class QuestionEscalated(Event):
    """A question passed its deadline undecided and goes one level up the asker's line, with a new deadline one original window later."""

    avro_name: ClassVar[str] = "agentlog.message.QuestionEscalated"
    meta: Meta = Field(description="Event envelope; occurred_at is the timer tick's time, causation_id null.")
    question_id: uuid.UUID = Field(description='The question escalated.')
    from_agent_id: Id = Field(description='The asker.')
    previous_recipient: Id = Field(description='Who it was waiting for.')
    to_agent_id: Id = Field(description="Who it waits for now: the previous recipient's nearest active ancestor.")
    level: Int32 = Field(description='Escalations so far, this one included (1 for the first).')
    decide_by: UtcDatetime = Field(description='The new deadline.')
    message: Text = Field(default='', description='A sentence the asker and the new recipient can be shown.')
    policy_version: Int32 = Field(default=0, description='Version of the policy in force (0 when none was).')


class DependencyAccepted(Event):
    """The mission processor accepted a DependencyAdded: the dependency holds (a hard one sends a READY mission back to PENDING, or blocks it when the other can never complete)."""

    avro_name: ClassVar[str] = "agentlog.mission.DependencyAccepted"
    meta: Meta = Field(description="Event envelope; causation_id is the DependencyAdded's event_id.")
    mission_id: Id = Field(description='The dependent mission.')
    depends_on: Id = Field(description='The mission it depends on.')
    kind: DependencyKind = Field(default=DependencyKind.HARD, description='Hard or soft.')
    policy_version: Int32 = Field(default=0, description='Version of the policy in force (0 when none was).')
    message: Text = Field(description='A sentence an agent can be shown.')


class DependencyAdded(Event):
    """A mission comes to depend on another of its tree; answered by DependencyAccepted or DependencyRejected."""

    avro_name: ClassVar[str] = "agentlog.mission.DependencyAdded"
    meta: Meta = Field(description='Event envelope.')
    mission_id: Id = Field(description='The dependent mission.')
    depends_on: Id = Field(description='The mission it depends on.')
    kind: DependencyKind = Field(default=DependencyKind.HARD, description='Hard or soft dependency.')


class DependencyRejected(Event):
    """The mission processor rejected a DependencyAdded: it would close a cycle, points at its own mission, names a mission unknown in this tree (missions depend only on missions of their own agent tree), or comes too late; nothing changed."""

    avro_name: ClassVar[str] = "agentlog.mission.DependencyRejected"
    meta: Meta = Field(description="Event envelope; causation_id is the DependencyAdded's event_id.")
    mission_id: Id = Field(description='The mission that was to depend.')
    depends_on: Id = Field(description='The mission it was to depend on.')
    kind: DependencyKind = Field(default=DependencyKind.HARD, description='Hard or soft.')
    reason_code: MissionRejection = Field(default=MissionRejection.UNKNOWN, description='Why, as a code.')
    cycle: list[Id] = Field(default_factory=list, max_length=64, description='For DEPENDENCY_CYCLE: the cycle it would close, mission by mission, each depending on the next, beginning and ending with mission_id (at most 64 missions: a longer cycle is cut in the middle, and the message says so).')
    policy_version: Int32 = Field(default=0, description='Version of the policy in force (0 when none was).')
    reason: Text = Field(description='Why, as a sentence an agent can be shown.')


class MissionCreated(Event):
    """A mission (a unit of work with a state machine) is created; answered by MissionTransitioned (UNKNOWN to READY) or MissionTransitionRejected."""

    avro_name: ClassVar[str] = "agentlog.mission.MissionCreated"
    meta: Meta = Field(description="Event envelope; meta.root_id is the agent tree's root id: missions live in one agent tree.")
    mission_id: Id = Field(description='Id of the mission.')
    parent_mission_id: Id | None = Field(default=None, description='Mission this one is part of, if any.')
    task: TaskSpec = Field(description='What the mission must achieve.')
    owner_agent_id: Id | None = Field(default=None, description='Agent responsible for the mission, if assigned.')
    max_attempts: Int32 = Field(default=3, description='Attempts the mission may take in all: a failed attempt before the last goes back to READY.')


class MissionHandedOff(Event):
    """The mission processor moved a mission to another agent after a handoff: it is now the mission's owner and, while the mission runs, its runner."""

    avro_name: ClassVar[str] = "agentlog.mission.MissionHandedOff"
    meta: Meta = Field(description="Event envelope; causation_id is the MissionHandoffRequested's event_id.")
    mission_id: Id = Field(description='Mission handed over.')
    state: MissionState = Field(default=MissionState.UNKNOWN, description='Its state, unchanged by the handoff.')
    previous_owner: Id | None = Field(default=None, description='Owner before (null when it had none).')
    owner: Id = Field(description='Owner now: the agent that took it over.')
    handoff_id: uuid.UUID = Field(description='message_id of the Handoff.')
    policy_version: Int32 = Field(default=0, description='Version of the policy in force (0 when none was).')
    message: Text = Field(description='A sentence an agent can be shown.')


class MissionHandoffRejected(Event):
    """The mission processor did not move a mission after a handoff (an unknown or finished mission, a giver that neither owns nor runs it, a taker that is not an active agent)."""

    avro_name: ClassVar[str] = "agentlog.mission.MissionHandoffRejected"
    meta: Meta = Field(description="Event envelope; causation_id is the MissionHandoffRequested's event_id.")
    mission_id: Id = Field(description='Mission that was to move.')
    reason_code: MissionRejection = Field(default=MissionRejection.UNKNOWN, description='Why, as a code.')
    reason: Text = Field(description='Why, a sentence an agent can be shown.')
    handoff_id: uuid.UUID = Field(description='message_id of the Handoff.')
    policy_version: Int32 = Field(default=0, description='Version of the policy in force (0 when none was).')


class MissionHandoffRequested(Event):
    """The consultation bus accepted a Handoff that names a mission and asks the mission processor to move the mission to the agent taking it over."""

    avro_name: ClassVar[str] = "agentlog.mission.MissionHandoffRequested"
    meta: Meta = Field(description="Event envelope; written by the bus, causation_id is the handoff's event_id.")
    mission_id: Id = Field(description='Mission handed over.')
    from_agent_id: Id = Field(description='Agent giving it away: its owner or, while RUNNING, its runner.')
    to_agent_id: Id = Field(description='Agent taking it over.')
    handoff_id: uuid.UUID = Field(description='message_id of the Handoff.')


class MissionTransitionRejected(Event):
    """A requested mission transition was not allowed."""

    avro_name: ClassVar[str] = "agentlog.mission.MissionTransitionRejected"
    meta: Meta = Field(description="Event envelope; causation_id is the request's event_id.")
    mission_id: Id = Field(description='Mission that was to move.')
    from_state: MissionState = Field(default=MissionState.UNKNOWN, description='Current state.')
    to_state: MissionState = Field(default=MissionState.UNKNOWN, description='Requested state.')
    reason: Text = Field(description='Why the transition is not allowed: a sentence an agent can be shown.')
    reason_code: MissionRejection = Field(default=MissionRejection.UNKNOWN, description='Why, as a code.')
    policy_version: Int32 = Field(default=0, description='Version of the policy in force (0 when none was, and in records written before v8).')


class MissionTransitionRequested(Event):
    """Someone asks to move a mission to another state; answered by MissionTransitioned or MissionTransitionRejected."""

    avro_name: ClassVar[str] = "agentlog.mission.MissionTransitionRequested"
    meta: Meta = Field(description='Event envelope.')
    mission_id: Id = Field(description='Mission to move.')
    to_state: MissionState = Field(default=MissionState.UNKNOWN, description='Wanted state.')
    requested_by: Id = Field(description='Agent or operator asking.')
    reason: Text = Field(default='', description='Why, in words.')
    agent_id: Id | None = Field(default=None, description='For RUNNING: the agent that runs the attempt, an active agent of the tree (null: the requester).')
    result_summary: Text = Field(default='', description='For COMPLETED: what the mission produced.')
    quality_score: float | None = Field(default=None, description='For COMPLETED: a quality score, if one was given.')
    retryable: bool = Field(default=True, description='For FAILED: whether another attempt may be made (within max_attempts).')


class MissionTransitioned(Event):
    """A mission moved from one state to another."""

    avro_name: ClassVar[str] = "agentlog.mission.MissionTransitioned"
    meta: Meta = Field(description="Event envelope; causation_id is the request's event_id.")
    mission_id: Id = Field(description='Mission that moved.')
    from_state: MissionState = Field(default=MissionState.UNKNOWN, description='State before.')
    to_state: MissionState = Field(default=MissionState.UNKNOWN, description='State after.')
    reason: Text = Field(default='', description='Why, in words.')
    attempt: Int32 = Field(default=1, description='Attempt number, 1 for the first run.')
    agent_id: Id | None = Field(default=None, description='The agent running the attempt (RUNNING, and the end of a run), else null.')
    result_summary: Text = Field(default='', description='For COMPLETED: what the mission produced.')
    quality_score: float | None = Field(default=None, description='For COMPLETED: its quality score, if given.')
    policy_version: Int32 = Field(default=0, description='Version of the policy in force (0 when none was, and in records written before v8).')


class PolicyPublished(Event):
    """A new version of a spawn policy. The newest version of a policy name is in force; every decision names the version it applied."""

    avro_name: ClassVar[str] = "agentlog.policy.PolicyPublished"
    meta: Meta = Field(description='Event envelope; meta.root_id is the policy name.')
    policy_name: Id = Field(description='Name of the policy; the Kafka key of the compacted policy topic.')
    version: Int32 = Field(description='Version number, increasing by one per publication.')
    content_hash: Id = Field(description='SHA-256 (hex) of the canonical JSON of limits and configs.')
    limits: Limits = Field(description='Numeric limits.')
    configs: list[ConfigRule] = Field(max_length=1024, description='The config whitelist; configs not listed are denied.')
    published_by: Id = Field(description='Who published this version.')


class RootAgentRegistered(Event):
    """A runtime registers the root agent of a new tree, with the budgets the whole tree may spend."""

    avro_name: ClassVar[str] = "agentlog.spawn.RootAgentRegistered"
    meta: Meta = Field(description='Event envelope; meta.root_id equals agent_id.')
    agent_id: Id = Field(description='Id of the root agent.')
    config: Id = Field(description="Agent config (role) of the root; must be in the policy's whitelist.")
    token_budget: Int64 = Field(description='Tokens the whole tree may consume.')
    spawn_budget: Int32 = Field(description='Spawn budget of the root: the tree never holds more than spawn_budget + 1 agents.')
    max_runtime_ms: Int64 | None = Field(default=None, description='Wall-clock limit for the root in milliseconds; null uses the policy default.')
    task: TaskSpec | None = Field(default=None, description='The mission the root works on, if given.')
    capabilities: list[Id] = Field(default_factory=list, max_length=64, description='Capabilities (tools, actions) the root asks for.')


class SpawnRequested(Event):
    """A parent agent asks to spawn a child agent. Answered by exactly one SpawnApproved or SpawnDenied with the same request_id."""

    avro_name: ClassVar[str] = "agentlog.spawn.SpawnRequested"
    meta: Meta = Field(description='Event envelope.')
    request_id: uuid.UUID = Field(default_factory=uuid.uuid4, description='Id of this request; the child agent id is derived from it deterministically.')
    parent_agent_id: Id = Field(description='Agent asking to spawn.')
    child_config: Id = Field(description="Agent config (role) of the child; must be whitelisted and spawnable by the parent's config.")
    task: TaskSpec = Field(description='What the child is asked to do.')
    requested_token_budget: Int64 = Field(description="Tokens to reserve for the child out of the parent's remaining tokens.")
    requested_spawn_budget: Int32 = Field(default=0, description="Spawn budget for the child; the child costs 1 + this out of the parent's spawn budget.")
    max_runtime_ms: Int64 | None = Field(default=None, description='Wall-clock limit for the child in milliseconds; null uses the policy default.')
    capabilities: list[Id] = Field(default_factory=list, max_length=64, description='Capabilities (tools, actions) the child needs.')
    context_inheritance: ContextInheritance = Field(default_factory=lambda: ContextInheritance.model_validate({'conversation': False, 'memory': False, 'tools': True, 'files': False}), description="Which parts of the parent's context the child receives.")


AgentAlert.model_rebuild()
AgentCompleted.model_rebuild()
AgentEnded.model_rebuild()
AgentFailed.model_rebuild()
AgentHeartbeat.model_rebuild()
AgentQuestion.model_rebuild()
AgentReply.model_rebuild()
AgentRequest.model_rebuild()
AgentRunning.model_rebuild()
AgentStarted.model_rebuild()
AgentTerminated.model_rebuild()
AgentTimedOut.model_rebuild()
AuditCheckpoint.model_rebuild()
BudgetExhausted.model_rebuild()
BudgetTopUpRequested.model_rebuild()
BudgetToppedUp.model_rebuild()
CircuitClosed.model_rebuild()
CircuitOpened.model_rebuild()
ConfigRule.model_rebuild()
ContextInheritance.model_rebuild()
DecisionRecorded.model_rebuild()
DependencyAccepted.model_rebuild()
DependencyAdded.model_rebuild()
DependencyRejected.model_rebuild()
Handoff.model_rebuild()
LifecycleRejected.model_rebuild()
LimitCheck.model_rebuild()
Limits.model_rebuild()
MessageAccepted.model_rebuild()
MessageAcknowledged.model_rebuild()
MessageExpired.model_rebuild()
MessageRejected.model_rebuild()
Meta.model_rebuild()
MissionCreated.model_rebuild()
MissionHandedOff.model_rebuild()
MissionHandoffRejected.model_rebuild()
MissionHandoffRequested.model_rebuild()
MissionTransitionRejected.model_rebuild()
MissionTransitionRequested.model_rebuild()
MissionTransitioned.model_rebuild()
PolicyPublished.model_rebuild()
QuestionEscalated.model_rebuild()
RootAdmitted.model_rebuild()
RootAgentRegistered.model_rebuild()
RootRejected.model_rebuild()
SigningKeyPublished.model_rebuild()
SigningKeyRevoked.model_rebuild()
SpawnApproved.model_rebuild()
SpawnDenied.model_rebuild()
SpawnRequested.model_rebuild()
TaskSpec.model_rebuild()
TerminationRequested.model_rebuild()
TokensCharged.model_rebuild()
TokensConsumed.model_rebuild()
TopUpDenied.model_rebuild()
TreeForgotten.model_rebuild()
TreeFreezeRequested.model_rebuild()
TreeFrozen.model_rebuild()
TreeThawRequested.model_rebuild()
TreeThawed.model_rebuild()


EVENT_TYPES: dict[str, type[Event]] = {
    AuditCheckpoint.avro_name: AuditCheckpoint,
    AgentEnded.avro_name: AgentEnded,
    AgentRunning.avro_name: AgentRunning,
    AgentTerminated.avro_name: AgentTerminated,
    AgentTimedOut.avro_name: AgentTimedOut,
    BudgetExhausted.avro_name: BudgetExhausted,
    BudgetToppedUp.avro_name: BudgetToppedUp,
    CircuitClosed.avro_name: CircuitClosed,
    CircuitOpened.avro_name: CircuitOpened,
    LifecycleRejected.avro_name: LifecycleRejected,
    RootAdmitted.avro_name: RootAdmitted,
    RootRejected.avro_name: RootRejected,
    SpawnApproved.avro_name: SpawnApproved,
    SpawnDenied.avro_name: SpawnDenied,
    TokensCharged.avro_name: TokensCharged,
    TopUpDenied.avro_name: TopUpDenied,
    TreeForgotten.avro_name: TreeForgotten,
    TreeFrozen.avro_name: TreeFrozen,
    TreeThawed.avro_name: TreeThawed,
    SigningKeyPublished.avro_name: SigningKeyPublished,
    SigningKeyRevoked.avro_name: SigningKeyRevoked,
    AgentCompleted.avro_name: AgentCompleted,
    AgentFailed.avro_name: AgentFailed,
    AgentHeartbeat.avro_name: AgentHeartbeat,
    AgentStarted.avro_name: AgentStarted,
    BudgetTopUpRequested.avro_name: BudgetTopUpRequested,
    TerminationRequested.avro_name: TerminationRequested,
    TokensConsumed.avro_name: TokensConsumed,
    TreeFreezeRequested.avro_name: TreeFreezeRequested,
    TreeThawRequested.avro_name: TreeThawRequested,
    AgentAlert.avro_name: AgentAlert,
    AgentQuestion.avro_name: AgentQuestion,
    AgentReply.avro_name: AgentReply,
    AgentRequest.avro_name: AgentRequest,
    DecisionRecorded.avro_name: DecisionRecorded,
    Handoff.avro_name: Handoff,
    MessageAccepted.avro_name: MessageAccepted,
    MessageAcknowledged.avro_name: MessageAcknowledged,
    MessageExpired.avro_name: MessageExpired,
    MessageRejected.avro_name: MessageRejected,
    QuestionEscalated.avro_name: QuestionEscalated,
    DependencyAccepted.avro_name: DependencyAccepted,
    DependencyAdded.avro_name: DependencyAdded,
    DependencyRejected.avro_name: DependencyRejected,
    MissionCreated.avro_name: MissionCreated,
    MissionHandedOff.avro_name: MissionHandedOff,
    MissionHandoffRejected.avro_name: MissionHandoffRejected,
    MissionHandoffRequested.avro_name: MissionHandoffRequested,
    MissionTransitionRejected.avro_name: MissionTransitionRejected,
    MissionTransitionRequested.avro_name: MissionTransitionRequested,
    MissionTransitioned.avro_name: MissionTransitioned,
    PolicyPublished.avro_name: PolicyPublished,
    RootAgentRegistered.avro_name: RootAgentRegistered,
    SpawnRequested.avro_name: SpawnRequested,
}
"""Every event model by Avro full name."""


__all__ = [
    "AgentAlert",
    "AgentCompleted",
    "AgentEnded",
    "AgentFailed",
    "AgentHeartbeat",
    "AgentQuestion",
    "AgentReply",
    "AgentRequest",
    "AgentRunning",
    "AgentStarted",
    "AgentTerminated",
    "AgentTimedOut",
    "AuditCheckpoint",
    "AvroRecord",
    "BudgetExhausted",
    "BudgetTopUpRequested",
    "BudgetToppedUp",
    "CircuitClosed",
    "CircuitOpened",
    "ConfigRule",
    "ContextInheritance",
    "DecisionRecorded",
    "DenialReason",
    "DependencyAccepted",
    "DependencyAdded",
    "DependencyKind",
    "DependencyRejected",
    "EVENT_TYPES",
    "EndOutcome",
    "Event",
    "Handoff",
    "LifecycleRejected",
    "LimitCheck",
    "Limits",
    "MessageAccepted",
    "MessageAcknowledged",
    "MessageExpired",
    "MessageKind",
    "MessageRejected",
    "MessageRejection",
    "Meta",
    "MissionCreated",
    "MissionHandedOff",
    "MissionHandoffRejected",
    "MissionHandoffRequested",
    "MissionRejection",
    "MissionState",
    "MissionTransitionRejected",
    "MissionTransitionRequested",
    "MissionTransitioned",
    "PolicyPublished",
    "Priority",
    "QuestionEscalated",
    "RootAdmitted",
    "RootAgentRegistered",
    "RootRejected",
    "SigningKeyPublished",
    "SigningKeyRevoked",
    "SpawnApproved",
    "SpawnDenied",
    "SpawnRequested",
    "TaskSpec",
    "TerminationReason",
    "TerminationRequested",
    "TimeoutCause",
    "TokensCharged",
    "TokensConsumed",
    "TopUpDenied",
    "TreeForgotten",
    "TreeFreezeRequested",
    "TreeFrozen",
    "TreeThawRequested",
    "TreeThawed",
]
