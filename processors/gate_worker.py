"""The spawn gate as a processor of the runtime: requests and lifecycle reports in, decisions out.

- Inputs: ``agentlog.spawn.requests`` and ``agentlog.agent.lifecycle``, co-partitioned by
  tree (:data:`~agentlog.processors.gate_input.SOURCES`, in the merge's source order).
- Core: :func:`agentlog.processors.spawn_gate.decide` and ``expire`` (timeouts and forgotten trees)
  on the partition's :class:`~agentlog.processors.tree_state.PartitionState`.
- Outputs: ``agentlog.policy.decisions``, same partition.
- State: ``agentlog.spawn-gate.changelog``, a tree record and agent chunks per tree, and a
  partition record naming the policy the deployment enforces
  (:mod:`agentlog.processors.gate_changelog`).
- Side inputs: the deployment's policy (:class:`~agentlog.processors.policy_reader.PolicyReader`);
  a new version is in force from the batch after it is read. The keyring
  (:class:`~agentlog.processors.keyring_reader.KeyringReader`), whose position every output
  names (:data:`~agentlog.keyring.KEYRING_HEADER`) so that replay attributes each input as the
  gate did. The heartbeats of the owned partitions (:mod:`agentlog.processors.heartbeats`),
  read outside the transactions: the timer times out agents whose heartbeats stopped.

The commit protocol, recovery and rebalancing are the runtime's
(:mod:`agentlog.processors.runtime`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agentlog import events as ev
from agentlog.metrics import AGENTS_ACTIVE, AGENTS_LIMIT, Gauges
from agentlog.processors.errors import GateError
from agentlog.processors.gate_changelog import GATE_CHANGELOG, ChangelogWriter, changelog_topic, restore_partitions
from agentlog.processors.gate_input import SOURCES, decode_input
from agentlog.processors.heartbeats import HeartbeatWatch
from agentlog.processors.input_merge import GATE_ORDER, InputRecord
from agentlog.processors.keyring_reader import KeyringReader
from agentlog.processors.policy_reader import PolicyReader
from agentlog.processors.runtime import (
    RESTORE_TIMEOUT_S,
    ChangelogRecord,
    Decided,
    ProcessorRuntime,
    RuntimeConfig,
    Unreadable,
)
from agentlog.processors.spawn_gate import CORE_VERSION, decide, expire
from agentlog.processors.tree_state import PartitionState
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import ensure_topics, tree_partition_count
from agentlog.topics import HEARTBEATS, KEYRING, POLICY_DECISIONS

STAGE = "processors.spawn_gate"


@dataclass
class GateConfig(RuntimeConfig):
    """Tuning of one spawn-gate worker, and the policy it enforces."""

    policy_name: str = "default"


class SpawnGate:
    """The spawn gate's part of a worker: its topics, its core, its changelog and its policy."""

    name = "agentlog.spawn-gate"
    stage = STAGE
    order = GATE_ORDER
    core_version = CORE_VERSION

    def __init__(self, settings: Settings, policy_name: str) -> None:
        self.settings = settings
        self.policy_name = policy_name
        self.serde = Serde.from_settings(settings)
        self.input_topics = tuple(settings.topic_prefix + spec.name for spec in SOURCES)
        self.output_topic = settings.topic_prefix + POLICY_DECISIONS.name
        self.side_topics: dict[str, str] = {}
        self.changelog_topic = changelog_topic(settings)
        self.changelogs: dict[int, ChangelogWriter] = {}
        """What the changelog holds of each owned partition's trees (restored with the state)."""
        self.partitions = tree_partition_count(settings)
        """The deployment's tree partition count (the input topics exist and agree)."""
        # The changelog is created with that count (an existing one that differs raises); the keyring
        # and the heartbeat topic are created for deployments older than they.
        ensure_topics(settings, (GATE_CHANGELOG, KEYRING, HEARTBEATS))
        self.policies = PolicyReader(settings, policy_name)
        self.keyring = KeyringReader(settings)
        self.heartbeats = HeartbeatWatch(settings, self.serde, self.keyring)

    def start(self) -> None:
        self.policies.catch_up()
        self.keyring.catch_up()
        if self.policies.current is None:
            raise GateError(
                f"no version of policy {self.policy_name!r} is published on"
                f" {self.settings.topic_prefix}agentlog.policy.config: publish one with `agentlog policy publish`,"
                " or name a published policy with --policy"
            )

    def poll(self) -> None:
        self.policies.poll()
        self.keyring.poll()
        self.heartbeats.poll(self.policies.current)

    def restore(self, partitions: list[int]) -> dict[int, PartitionState]:
        restored = restore_partitions(self.settings, partitions, self.partitions, RESTORE_TIMEOUT_S)
        enforced = sorted(
            writer.policy_name
            for _, writer in restored.values()
            if writer.policy_name is not None and writer.policy_name != self.policy_name
        )
        if enforced:
            raise GateError(
                f"this deployment's gate enforces policy {enforced[0]!r} (recorded in its state); this worker"
                f" was started with --policy {self.policy_name!r}: start it with --policy"
                f" {enforced[0]}, or give another deployment its own AGENTLOG_TOPIC_PREFIX"
            )
        self.changelogs.update({p: writer for p, (_, writer) in restored.items()})
        states = {p: state for p, (state, _) in restored.items()}
        self.heartbeats.take_over(states)
        return states

    def forget(self, partitions: list[int]) -> None:
        for partition in partitions:
            self.changelogs.pop(partition, None)
        self.heartbeats.give_up(partitions)

    def decide(self, state: PartitionState, record: InputRecord) -> Decided:
        try:
            event = decode_input(self.serde, record)
        except Exception as e:  # any input that is not a valid event is dead-lettered, never retried
            raise Unreadable(str(e)) from e
        outputs = decide(state, event, self.policies.current, attribution=self.keyring.attribute(record))
        for output in outputs:
            if isinstance(output, ev.AgentRunning) and output.heartbeat_interval_ms:
                self.heartbeats.expect(state.partition, output)
        return Decided(outputs, {event.meta.root_id} | {out.meta.root_id for out in outputs}, self.keyring.headers())

    def expire(self, state: PartitionState, now: datetime) -> Decided:
        policy = self.policies.current
        silent = self.heartbeats.silent(state, int(now.timestamp() * 1000), policy)
        outputs = expire(state, now, policy, silent)
        # Timeouts do not depend on the keyring; the position is named so that replay decides the
        # inputs after the tick with the keyring the gate had.
        changed = {out.meta.root_id for out in outputs}  # forgotten trees included
        return Decided(outputs, changed, self.keyring.headers())

    def changelog(self, partition: int, state: PartitionState, changed: set[str]) -> list[ChangelogRecord]:
        writer = self.changelogs[partition]
        records = writer.partition_records(self.policy_name, self.partitions)
        for root_id in sorted(changed):
            records += writer.records(root_id, state.trees.get(root_id))
        return records

    def gauges(self, states: dict[int, PartitionState]) -> Gauges:
        """Active agents of the owned partitions by tenant (and in all), and the policy's caps on them."""
        by_tenant: dict[str, int] = {}
        for state in states.values():
            for tenant, count in state.active_by_tenant.items():
                by_tenant[tenant] = by_tenant.get(tenant, 0) + count
        active: list[tuple[float, dict[str, str]]] = [(n, {"tenant": t}) for t, n in sorted(by_tenant.items())]
        active.append((sum(s.active_total for s in states.values()), {"tenant": "", "scope": "platform"}))
        policy = self.policies.current
        limits = policy.limits if policy is not None else ev.Limits()
        caps: list[tuple[float, dict[str, str]]] = [
            (limits.max_active_platform, {"scope": "platform"}),
            (limits.max_active_per_tenant, {"scope": "tenant"}),
        ]
        return {AGENTS_ACTIVE: active, AGENTS_LIMIT: caps}


def spawn_gate_worker(settings: Settings, config: GateConfig) -> ProcessorRuntime[PartitionState]:
    """One spawn-gate worker process: the gate on the processor runtime."""
    return ProcessorRuntime(settings, SpawnGate(settings, config.policy_name), config)
