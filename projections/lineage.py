"""Lineage queries: trees, ancestors, descendants, paths and denied spawns, now or as of a moment.

"Now" reads the ``agents`` table. "As of" a timestamp keeps the agents created by then
(``created_at``, event time) and recomputes their state from ``agent_events`` up to that
moment, with the merge rules of :mod:`agentlog.projections.lineage_events` — so as of any moment
after the last event, the answer equals "now".

Subtrees use the GIN index on ``agents.path`` (``path @> ARRAY[id]``); ancestors are the
ids of the agent's own path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from agentlog.events import BudgetExhausted
from agentlog.projections.db import Conn
from agentlog.projections.errors import UnknownAgentError

_NOW_COLUMNS = """
    a.agent_id, a.root_id, a.tenant_id, a.parent_id, a.depth, a.path, a.config, a.policy_version,
    a.token_budget + a.tokens_topped_up AS token_budget, a.spawn_budget,
    GREATEST(a.tokens_consumed, a.tokens_reported) AS tokens_used, a.tokens_returned,
    COALESCE(a.status, 'unknown') AS status, a.created_at, a.started_at,
    CASE WHEN a.status_rank = 3 THEN a.status_at END AS ended_at, a.budget_exhausted_at
"""
_NOW = f"SELECT {_NOW_COLUMNS} FROM agents a WHERE a.path IS NOT NULL AND {{where}} ORDER BY a.depth, a.path"
_AS_OF = """
WITH chosen AS (
    SELECT * FROM agents a WHERE a.path IS NOT NULL AND a.created_at <= %(as_of)s AND {where}
), sums AS (
    SELECT e.agent_id,
        sum(e.tokens_consumed)::bigint AS tokens_consumed, max(e.tokens_reported) AS tokens_reported,
        sum(e.tokens_returned)::bigint AS tokens_returned, sum(e.tokens_topped_up)::bigint AS tokens_topped_up,
        min(e.occurred_at) FILTER (WHERE e.status = 'running') AS started_at,
        min(e.occurred_at) FILTER (WHERE e.record_name = %(exhausted)s) AS budget_exhausted_at
    FROM agent_events e WHERE e.agent_id IN (SELECT agent_id FROM chosen) AND e.occurred_at <= %(as_of)s
    GROUP BY e.agent_id
), states AS (
    SELECT DISTINCT ON (e.agent_id) e.agent_id, e.status, e.status_rank, e.occurred_at
    FROM agent_events e
    WHERE e.agent_id IN (SELECT agent_id FROM chosen) AND e.occurred_at <= %(as_of)s AND e.status IS NOT NULL
    ORDER BY e.agent_id, e.status_rank DESC, e.occurred_at, e.topic, e.partition, e."offset"
)
SELECT a.agent_id, a.root_id, a.tenant_id, a.parent_id, a.depth, a.path, a.config, a.policy_version,
    a.token_budget + COALESCE(s.tokens_topped_up, 0) AS token_budget, a.spawn_budget,
    GREATEST(COALESCE(s.tokens_consumed, 0), COALESCE(s.tokens_reported, 0)) AS tokens_used,
    COALESCE(s.tokens_returned, 0) AS tokens_returned,
    COALESCE(st.status, 'unknown') AS status, a.created_at, s.started_at,
    CASE WHEN st.status_rank = 3 THEN st.occurred_at END AS ended_at, s.budget_exhausted_at
FROM chosen a LEFT JOIN sums s USING (agent_id) LEFT JOIN states st USING (agent_id)
ORDER BY a.depth, a.path
"""


@dataclass(frozen=True)
class Agent:
    """One agent as of the moment asked about."""

    agent_id: str
    root_id: str
    tenant_id: str | None
    parent_id: str | None
    depth: int
    path: list[str]
    config: str | None
    policy_version: int | None
    token_budget: int | None
    spawn_budget: int | None
    tokens_used: int
    tokens_returned: int
    status: str
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    budget_exhausted_at: datetime | None


@dataclass(frozen=True)
class DeniedSpawn:
    """A spawn the gate denied (or a root it rejected): a node of its own under the asking agent."""

    request_id: Any
    root_id: str
    parent_agent_id: str | None
    agent_id: str | None
    child_config: str
    reason: str
    checks: list[dict[str, Any]]
    policy_version: int
    message: str
    occurred_at: datetime


@dataclass(frozen=True)
class HandoffEdge:
    """Work handed from one agent to another."""

    from_agent_id: str
    to_agent_id: str
    title: str
    priority: str
    occurred_at: datetime


@dataclass(frozen=True)
class Tree:
    """An agent and everything under it: agents, denied spawns and handoffs between them."""

    top: Agent
    agents: list[Agent]
    denied: list[DeniedSpawn]
    handoffs: list[HandoffEdge]
    as_of: datetime | None = None
    _children: dict[str | None, list[Agent]] = field(default_factory=dict, repr=False, compare=False)

    def children(self, agent_id: str) -> list[Agent]:
        """The direct children of ``agent_id`` in this tree, in path order."""
        if not self._children:
            for agent in self.agents:
                self._children.setdefault(agent.parent_id, []).append(agent)
        return self._children.get(agent_id, [])

    def denied_under(self, agent_id: str) -> list[DeniedSpawn]:
        """Spawns ``agent_id`` asked for and was denied."""
        return [d for d in self.denied if d.parent_agent_id == agent_id]


class Lineage:
    """The lineage queries over one connection (whose search path is the projection schema)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def agent(self, agent_id: str, as_of: datetime | None = None) -> Agent:
        """One agent; raises :class:`UnknownAgentError` if it does not exist (yet)."""
        found = self._agents("a.agent_id = %(id)s", agent_id, as_of)
        if not found:
            raise UnknownAgentError(agent_id, as_of)
        return found[0]

    def descendants(self, agent_id: str, as_of: datetime | None = None) -> list[Agent]:
        """Every agent under ``agent_id`` (not itself), shallowest first."""
        self.agent(agent_id, as_of)
        return [a for a in self._subtree(agent_id, as_of) if a.agent_id != agent_id]

    def ancestors(self, agent_id: str, as_of: datetime | None = None) -> list[Agent]:
        """The agents above ``agent_id``, the root first, its parent last."""
        return self.path(agent_id, as_of)[:-1]

    def path(self, agent_id: str, as_of: datetime | None = None) -> list[Agent]:
        """The agents from the root down to ``agent_id`` (both included)."""
        agent = self.agent(agent_id, as_of)
        found = self.agents(agent.path, as_of)
        return [found[i] for i in agent.path if i in found]

    def agents(self, agent_ids: list[str], as_of: datetime | None = None) -> dict[str, Agent]:
        """The agents of ``agent_ids`` that exist (as of the moment), by id; one query."""
        return {a.agent_id: a for a in self._agents("a.agent_id = ANY(%(ids)s)", "", as_of, ids=agent_ids)}

    def tree(self, agent_id: str, as_of: datetime | None = None) -> Tree:
        """``agent_id`` with its whole subtree, the spawns denied in it and its handoffs."""
        top = self.agent(agent_id, as_of)
        agents = self._subtree(agent_id, as_of)
        ids = [a.agent_id for a in agents]
        return Tree(top, agents, self._denied(ids, as_of), self._handoffs(ids, as_of), as_of)

    def denied(self, agent_id: str, as_of: datetime | None = None) -> list[DeniedSpawn]:
        """Spawns denied anywhere under ``agent_id`` (usually a root), its own rejection included."""
        self.agent(agent_id, as_of)
        return self._denied([a.agent_id for a in self._subtree(agent_id, as_of)], as_of)

    def _subtree(self, agent_id: str, as_of: datetime | None) -> list[Agent]:
        return self._agents("a.path @> ARRAY[%(id)s]::text[]", agent_id, as_of)

    def _agents(self, where: str, agent_id: str, as_of: datetime | None, **params: Any) -> list[Agent]:
        query = (_NOW if as_of is None else _AS_OF).format(where=where)
        values = {"id": agent_id, "as_of": as_of, "exhausted": BudgetExhausted.avro_name, **params}
        with self.conn.cursor(row_factory=dict_row) as cur:
            return [Agent(**row) for row in cur.execute(query.encode(), values)]

    def _denied(self, ids: list[str], as_of: datetime | None) -> list[DeniedSpawn]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                "SELECT request_id, root_id, parent_agent_id, agent_id, child_config, reason, checks,"
                " policy_version, message, occurred_at FROM denied_spawns"
                " WHERE (parent_agent_id = ANY(%(ids)s) OR agent_id = ANY(%(ids)s))"
                " AND (%(as_of)s::timestamptz IS NULL OR occurred_at <= %(as_of)s)"
                ' ORDER BY occurred_at, topic, partition, "offset"',
                {"ids": ids, "as_of": as_of},
            )
            return [DeniedSpawn(**row) for row in rows]

    def _handoffs(self, ids: list[str], as_of: datetime | None) -> list[HandoffEdge]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                "SELECT from_agent_id, to_agent_id, title, priority, occurred_at FROM handoffs"
                " WHERE (from_agent_id = ANY(%(ids)s) OR to_agent_id = ANY(%(ids)s))"
                " AND (%(as_of)s::timestamptz IS NULL OR occurred_at <= %(as_of)s)"
                ' ORDER BY occurred_at, topic, partition, "offset"',
                {"ids": ids, "as_of": as_of},
            )
            return [HandoffEdge(**row) for row in rows]
