"""The spawn gate's state for one partition: its agent trees, their agents, and the counters of active agents.

Compact on purpose (a partition may hold 100,000 live trees): slotted dataclasses,
integers for time (microseconds since the epoch) and status, interned config and tenant
names, agent ids shared between the dict key and the parent's child list, optional
containers left ``None`` until needed.

Token accounting of an agent: ``token_grant`` is what it was given; ``tokens_spent`` is
its own usage plus what its ended children spent (charged to it when they end);
``tokens_reserved`` is the sum of the grants of its active children. What it may still
grant or spend is ``token_grant - tokens_spent - tokens_reserved``.

Snapshots are compact JSON (``to_bytes``/``from_bytes`` for a partition, ``tree_to_dict``
/ ``TreeState.from_dict`` for one tree); counters and the deadline heap are rebuilt from
the trees on load.
"""

from __future__ import annotations

import heapq
import json
import sys
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from agentlog.events import DenialReason
from agentlog.processors.errors import SnapshotError

SNAPSHOT_VERSION = 1
ENDED_TREE_RETENTION_US = 24 * 3600 * 1_000_000
"""How long an ended tree is remembered (so its root id cannot be registered again), in µs."""
REMEMBERED_REQUESTS = 4096
"""Denied-spawn and top-up request ids a tree remembers, with their outcome, to answer retries (the newest)."""

_ROW_BEFORE_HEARTBEATS = 14
"""An agent row with its child list, as written before ``heartbeat_ms`` was added to the end of it (gate workers
from before it cannot read the rows written since: upgrade a deployment's workers together)."""

Outcome = DenialReason | None
"""How a remembered request was decided: denied for this reason, or None (a top-up granted).

``DUPLICATE_REQUEST`` stands for an outcome not recorded (state written before outcomes were kept).
"""


class Status(IntEnum):
    """Where an agent is in its life: active, or ended and how."""

    ACTIVE = 0
    COMPLETED = 1
    FAILED = 2
    TERMINATED = 3
    TIMED_OUT = 4


@dataclass(slots=True)
class AgentState:
    """One agent of a tree."""

    agent_id: str
    parent: str | None
    depth: int
    config: str
    token_grant: int
    spawn_budget: int
    spawn_remaining: int
    deadline: int | None
    """Microseconds since the epoch; None for never."""
    tokens_spent: int = 0
    tokens_reserved: int = 0
    active_children: int = 0
    status: Status = Status.ACTIVE
    exhausted: bool = False
    """Over budget (BudgetExhausted emitted); spawning is blocked until a top-up is granted."""
    heartbeat_ms: int = 0
    """How long it may go without a heartbeat, fixed when its start promised them (0: it promised none; only its
    deadline ends it)."""
    children: list[str] | None = None

    @property
    def active(self) -> bool:
        """Whether the agent has not ended."""
        return self.status is Status.ACTIVE

    @property
    def remaining_tokens(self) -> int:
        """Tokens the agent may still grant or spend (negative when over budget)."""
        return self.token_grant - self.tokens_spent - self.tokens_reserved

    def live_at(self, now: int) -> bool:
        """Active and not past its deadline at ``now`` (µs): may act (spawn, be topped up)."""
        return self.status is Status.ACTIVE and (self.deadline is None or now < self.deadline)


@dataclass(slots=True)
class TreeState:
    """One agent tree (everything under one root), or the tombstone of an ended one."""

    root_id: str
    tenant_id: str
    agents: dict[str, AgentState] = field(default_factory=dict)
    """Every agent of the live tree, ended ones included, in creation order; empty once the tree ended."""
    seen_requests: dict[int, Outcome] | None = None
    """Decided request ids (``uuid.int``) in the order they came, at most REMEMBERED_REQUESTS, with their outcome.

    Denied spawns and all top-ups; approved spawns are found by their child id. The outcome
    is the denial reason, or None for a granted top-up (see :data:`Outcome`).
    """
    denials: list[int] | None = None
    """Times (µs) of recent denials counted by the circuit breaker."""
    open_until: int | None = None
    """While set, the circuit is open until this time (µs)."""
    ended_at: int | None = None
    """When the root ended (µs); the tree is then a tombstone."""
    frozen_by: str | None = None
    """While set, the tree's spawning is frozen at this requester's request (:mod:`.freeze`, core version 5)."""

    @property
    def root(self) -> AgentState | None:
        """The root agent, unless the tree ended."""
        return self.agents.get(self.root_id)

    def remember(self, request_id: int, outcome: Outcome) -> None:
        """Record how a request (denied spawn or top-up) was decided, forgetting the oldest past the cap.

        The cap keeps a tree's changelog record far below Kafka's message size limit even
        when a runaway agent sends denied requests for ever; a retry of a request more
        than :data:`REMEMBERED_REQUESTS` requests old is decided again.
        """
        if self.seen_requests is None:
            self.seen_requests = {}
        self.seen_requests[request_id] = outcome
        if len(self.seen_requests) > REMEMBERED_REQUESTS:
            del self.seen_requests[next(iter(self.seen_requests))]

    def has_seen(self, request_id: int) -> bool:
        """Whether a denied spawn or a top-up with this id was already decided (recently)."""
        return self.seen_requests is not None and request_id in self.seen_requests

    def outcome_of(self, request_id: int) -> Outcome:
        """How a request :meth:`has_seen` was decided."""
        assert self.seen_requests is not None
        return self.seen_requests[request_id]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot of the tree: its :meth:`header` and its agents with their child lists."""
        agents = [[*row, a.children or []] for row, a in zip(self.agent_rows(), self.agents.values(), strict=True)]
        return {**self.header(), "agents": agents}

    def header(self) -> dict[str, Any]:
        """Everything of the tree but its agents, JSON-able (the changelog's tree record)."""
        return {
            "root": self.root_id,
            "tenant": self.tenant_id,
            # oldest first: [request id, denial reason or None for a granted top-up]
            "seen": [[r, o.value if o is not None else None] for r, o in self.seen_requests.items()]
            if self.seen_requests
            else [],
            "denials": self.denials or [],
            "open_until": self.open_until,
            "ended_at": self.ended_at,
            **({"frozen_by": self.frozen_by} if self.frozen_by is not None else {}),  # absent before core 5
        }

    def agent_rows(self) -> list[list[Any]]:
        """One JSON-able row per agent in creation order, without child lists (the parents rebuild them)."""
        return [
            [
                a.agent_id,
                a.parent,
                a.depth,
                a.config,
                a.token_grant,
                a.spawn_budget,
                a.spawn_remaining,
                a.deadline,
                a.tokens_spent,
                a.tokens_reserved,
                a.active_children,
                int(a.status),
                a.exhausted,
                a.heartbeat_ms,
            ]
            for a in self.agents.values()
        ]

    @classmethod
    def from_parts(cls, header: dict[str, Any], rows: list[list[Any]]) -> TreeState:
        """The tree a :meth:`header` and its :meth:`agent_rows` describe.

        Child lists are rebuilt from the parents in creation order: that is the order in
        which approvals appended them.
        """
        children_of: dict[str | None, list[str]] = {}
        for row in rows:
            children_of.setdefault(row[1], []).append(row[0])
        agents = [[*row, children_of.get(row[0], [])] for row in rows]
        return cls.from_dict({**header, "agents": agents})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TreeState:
        """The tree a :meth:`to_dict` snapshot describes."""
        tree = cls(
            root_id=str(data["root"]),
            tenant_id=sys.intern(str(data["tenant"])),
            seen_requests=_outcomes(data["seen"]) or None,
            denials=list(data["denials"]) or None,
            open_until=data["open_until"],
            ended_at=data["ended_at"],
            frozen_by=data.get("frozen_by"),
        )
        for stored in data["agents"]:
            # a row written before heartbeats promised none
            row = [*stored[:-1], 0, stored[-1]] if len(stored) == _ROW_BEFORE_HEARTBEATS else stored
            (
                agent_id,
                parent,
                depth,
                config,
                grant,
                spawn_budget,
                spawn_remaining,
                deadline,
                spent,
                reserved,
                active_children,
                status,
                exhausted,
                heartbeat_ms,
                children,
            ) = row
            agent_id = tree.root_id if agent_id == tree.root_id else agent_id
            tree.agents[agent_id] = AgentState(
                agent_id=agent_id,
                parent=tree.agents[parent].agent_id if parent in tree.agents else parent,
                depth=depth,
                config=sys.intern(config),
                token_grant=grant,
                spawn_budget=spawn_budget,
                spawn_remaining=spawn_remaining,
                deadline=deadline,
                tokens_spent=spent,
                tokens_reserved=reserved,
                active_children=active_children,
                status=Status(status),
                exhausted=exhausted,
                heartbeat_ms=heartbeat_ms,
                children=list(children) or None,
            )
        for agent in tree.agents.values():
            if agent.children:
                # Share the id strings of the dict keys instead of keeping second copies.
                agent.children = [tree.agents[c].agent_id if c in tree.agents else c for c in agent.children]
        return tree


def partition_quota(cap: int, partition: int, partitions: int) -> int:
    """The share of a cap one partition enforces; the shares of all partitions sum to ``cap``."""
    return cap // partitions + (1 if partition < cap % partitions else 0)


@dataclass(slots=True)
class PartitionState:
    """Everything the spawn gate knows about the trees of one partition."""

    partition: int = 0
    partitions: int = 1
    trees: dict[str, TreeState] = field(default_factory=dict)
    active_total: int = 0
    """Active agents in this partition."""
    active_by_tenant: dict[str, int] = field(default_factory=dict)
    """Active agents in this partition per tenant (tenants with none are absent)."""
    deadlines: list[tuple[int, str, str]] = field(default_factory=list)
    """Heap of (deadline µs, root id, agent id); entries of agents that ended are skipped lazily."""

    def quota(self, cap: int) -> int:
        """This partition's share of a platform- or tenant-wide cap."""
        return partition_quota(cap, self.partition, self.partitions)

    def active_of(self, tenant_id: str) -> int:
        """Active agents of a tenant in this partition."""
        return self.active_by_tenant.get(tenant_id, 0)

    def live_tree(self, root_id: str) -> TreeState | None:
        """The tree of ``root_id`` if it is known and has not ended."""
        tree = self.trees.get(root_id)
        return tree if tree is not None and tree.ended_at is None else None

    def count_started(self, tree: TreeState, agent: AgentState) -> None:
        """Account for a newly active agent: counters and deadline heap."""
        self.active_total += 1
        self.active_by_tenant[tree.tenant_id] = self.active_by_tenant.get(tree.tenant_id, 0) + 1
        if agent.deadline is not None:
            heapq.heappush(self.deadlines, (agent.deadline, tree.root_id, agent.agent_id))

    def count_ended(self, tree: TreeState) -> None:
        """Account for an agent of ``tree`` that stopped being active."""
        self.active_total -= 1
        left = self.active_by_tenant[tree.tenant_id] - 1
        if left:
            self.active_by_tenant[tree.tenant_id] = left
        else:
            del self.active_by_tenant[tree.tenant_id]

    def put_tree(self, tree: TreeState) -> None:
        """Add (or replace) a tree, e.g. restored from a snapshot, updating counters and deadlines."""
        self.drop_tree(tree.root_id)
        self.trees[tree.root_id] = tree
        for agent in tree.agents.values():
            if agent.active:
                self.count_started(tree, agent)

    def drop_tree(self, root_id: str) -> None:
        """Forget a tree entirely (its heap entries are skipped lazily)."""
        tree = self.trees.pop(root_id, None)
        if tree is not None:
            for agent in tree.agents.values():
                if agent.active:
                    self.count_ended(tree)

    def compact_deadlines(self) -> None:
        """Rebuild the deadline heap from the active agents, dropping entries of ended ones."""
        self.deadlines = [
            (a.deadline, tree.root_id, a.agent_id)
            for tree in self.trees.values()
            for a in tree.agents.values()
            if a.active and a.deadline is not None
        ]
        heapq.heapify(self.deadlines)

    def to_bytes(self) -> bytes:
        """A snapshot of the whole partition (compact JSON)."""
        document = {
            "v": SNAPSHOT_VERSION,
            "partition": self.partition,
            "partitions": self.partitions,
            "trees": [tree.to_dict() for tree in self.trees.values()],
        }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> PartitionState:
        """The partition state a :meth:`to_bytes` snapshot describes."""
        try:
            document = json.loads(data)
        except ValueError as e:
            raise SnapshotError(f"spawn-gate snapshot is not valid JSON: {e}") from e
        if not isinstance(document, dict):
            raise SnapshotError("spawn-gate snapshot is not a JSON object")
        if document.get("v") != SNAPSHOT_VERSION:
            raise SnapshotError(f"unsupported spawn-gate snapshot version {document.get('v')!r}")
        try:
            state = cls(partition=document["partition"], partitions=document["partitions"])
            for tree_data in document["trees"]:
                state.put_tree(TreeState.from_dict(tree_data))
        except (KeyError, TypeError, ValueError) as e:
            raise SnapshotError(f"malformed spawn-gate snapshot: {e!r}") from e
        state.compact_deadlines()
        return state


def _outcomes(seen: list[Any]) -> dict[int, Outcome]:
    """Remembered requests from a snapshot: ``[id, reason]`` pairs, or bare ids from before outcomes were kept."""
    if seen and not isinstance(seen[0], list):
        return dict.fromkeys(seen, DenialReason.DUPLICATE_REQUEST)
    return {r: DenialReason(o) if o is not None else None for r, o in seen}
