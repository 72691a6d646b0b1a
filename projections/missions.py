"""Mission queries: a tree's missions, one mission's story, what is ready, the parallel groups, now or as of a moment.

"Now" reads the ``missions`` table. "As of" a timestamp recomputes each mission from
``mission_transitions`` up to that moment with the merge of
:class:`~agentlog.projections.mission_events.MissionDelta` (newest fact by offset), so as of any
moment after the last fact the answer equals "now". Titles, parents and attempts come from
the ``MissionCreated`` each mission's accepting fact names (``mission_specs``); the owner is the
taker of the latest handoff (a history row that keeps the state), else the creation's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from psycopg.rows import dict_row

from agentlog.projections.db import Conn
from agentlog.projections.errors import AmbiguousMissionError, UnknownMissionError
from agentlog.projections.lineage import Lineage
from agentlog.projections.mission_events import OPEN

_CURRENT_NOW = """
SELECT root_id, mission_id, tenant_id, state, attempt, agent_id, result_summary, quality_score, policy_version,
    spec_event_id, created_at, created_offset, started_at, finished_at, updated_at, partition
FROM missions WHERE {where}
"""
_CURRENT_AS_OF = """
WITH picked AS (
    SELECT * FROM mission_transitions t WHERE {where} AND t.occurred_at <= %(as_of)s
), births AS (
    SELECT root_id, mission_id, max("offset") AS created_offset FROM picked WHERE from_state = 'UNKNOWN'
    GROUP BY root_id, mission_id
), chosen AS (
    SELECT p.*, b.created_offset FROM picked p JOIN births b USING (root_id, mission_id)
    WHERE p."offset" >= b.created_offset
), last AS (
    SELECT DISTINCT ON (root_id, mission_id) * FROM chosen ORDER BY root_id, mission_id, "offset" DESC
), firsts AS (
    SELECT root_id, mission_id,
        (array_agg(occurred_at ORDER BY "offset") FILTER (WHERE from_state = 'UNKNOWN'))[1] AS created_at,
        (array_agg(occurred_at ORDER BY "offset") FILTER (WHERE to_state = 'RUNNING'))[1] AS started_at,
        (array_agg(occurred_at ORDER BY "offset" DESC)
            FILTER (WHERE to_state IN ('COMPLETED', 'FAILED', 'CANCELLED')))[1] AS last_finished_at,
        (array_agg(causation_id ORDER BY "offset")
            FILTER (WHERE from_state = 'UNKNOWN' AND causation_id IS NOT NULL))[1] AS spec_event_id,
        (array_agg(agent_id ORDER BY "offset" DESC)
            FILTER (WHERE agent_id IS NOT NULL AND (from_state <> to_state OR to_state = 'RUNNING')))[1] AS agent_id,
        (array_agg(result_summary ORDER BY "offset" DESC) FILTER (WHERE result_summary <> ''))[1] AS result_summary,
        (array_agg(quality_score ORDER BY "offset" DESC) FILTER (WHERE quality_score IS NOT NULL))[1]
            AS quality_score
    FROM chosen GROUP BY root_id, mission_id
)
SELECT l.root_id, l.mission_id, l.tenant_id, l.to_state AS state, l.attempt, f.agent_id,
    COALESCE(f.result_summary, '') AS result_summary, f.quality_score, l.policy_version, f.spec_event_id,
    f.created_at, l.created_offset, f.started_at,
    CASE WHEN l.to_state IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN l.occurred_at
         WHEN l.to_state = 'ARCHIVED' THEN f.last_finished_at END AS finished_at,
    l.occurred_at AS updated_at, l.partition
FROM last l JOIN firsts f USING (root_id, mission_id)
"""
_WITH_SPEC = """
WITH current AS ({current})
SELECT c.*, s.title, s.description, s.parent_mission_id, COALESCE(h.agent_id, s.owner_agent_id) AS owner_agent_id,
    s.priority, s.max_attempts
FROM current c LEFT JOIN LATERAL (
    SELECT * FROM mission_specs s WHERE s.event_id = c.spec_event_id AND s.root_id = c.root_id
        AND s.mission_id = c.mission_id AND s.tenant_id = c.tenant_id AND s.partition = c.partition
    ORDER BY s."offset" LIMIT 1
) s ON true LEFT JOIN LATERAL (
    SELECT h.agent_id FROM mission_transitions h WHERE h.root_id = c.root_id AND h.mission_id = c.mission_id
        AND h.partition = c.partition AND h.from_state = h.to_state AND h."offset" >= COALESCE(c.created_offset, 0)
        AND (%(as_of)s::timestamptz IS NULL OR h.occurred_at <= %(as_of)s)
    ORDER BY h."offset" DESC LIMIT 1
) h ON true
ORDER BY c.root_id, c.created_at, c.mission_id
"""
"""The command a mission's creation fact names: on the fact's partition (the processor answers on its input's),
in its tree and tenant, the first of that event id (the one the processor read); and its latest handoff."""


@dataclass(frozen=True)
class Mission:
    """One mission as of the moment asked about."""

    root_id: str
    mission_id: str
    tenant_id: str
    title: str | None
    description: str | None
    parent_mission_id: str | None
    state: str
    attempt: int
    max_attempts: int | None
    agent_id: str | None
    """The agent that ran (or runs) its latest attempt."""
    owner_agent_id: str | None
    """Its owner: the taker of its latest handoff, else the one its creation named."""
    priority: str | None
    result_summary: str
    quality_score: float | None
    policy_version: int
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    spec_event_id: Any = field(default=None, repr=False)
    created_offset: int | None = field(default=None, repr=False)
    """Offset of its creation fact: its history starts there (before it, a forgotten tree's mission of that id)."""
    partition: int = field(default=0, repr=False)

    @property
    def open(self) -> bool:
        """Still under way or waiting (not finished, not archived)."""
        return self.state in OPEN


@dataclass(frozen=True)
class Dependency:
    """An accepted dependency: ``mission_id`` waits for ``depends_on`` (hard) or only refers to it (soft)."""

    mission_id: str
    depends_on: str
    kind: str
    policy_version: int
    occurred_at: datetime
    offset: int = field(default=0, repr=False)


@dataclass(frozen=True)
class Transition:
    """One step of a mission's history."""

    from_state: str
    to_state: str
    attempt: int
    agent_id: str | None
    reason: str
    result_summary: str
    quality_score: float | None
    policy_version: int
    occurred_at: datetime

    @property
    def handoff(self) -> bool:
        """A handoff (``agent_id`` took the mission over), not a transition: it keeps the state."""
        return self.from_state == self.to_state


@dataclass(frozen=True)
class Rejection:
    """A command about the mission the processor refused."""

    record_name: str
    from_state: str | None
    to_state: str | None
    depends_on: str | None
    reason_code: str
    reason: str
    cycle: list[str]
    policy_version: int
    occurred_at: datetime


@dataclass(frozen=True)
class Attempt:
    """One run of a mission: who ran it (last, if it was handed off), from when, how it ended, and the tokens that
    agent has spent."""

    attempt: int
    agent_id: str | None
    started_at: datetime
    ended_state: str | None
    ended_at: datetime | None
    reason: str
    agent_tokens_used: int | None


@dataclass(frozen=True)
class MissionStory:
    """Everything about one mission: itself, its history, its edges both ways, its attempts and refusals."""

    mission: Mission
    history: list[Transition]
    dependencies: list[Dependency]
    dependents: list[Dependency]
    children: list[str]
    attempts: list[Attempt]
    rejections: list[Rejection]
    as_of: datetime | None = None


@dataclass(frozen=True)
class Plan:
    """A tree's missions and dependencies: enough to draw the DAG and find the parallel groups."""

    root_id: str
    missions: list[Mission]
    dependencies: list[Dependency]
    as_of: datetime | None = None

    def groups(self) -> list[list[Mission]]:
        """The open missions that can run together, level by level (topological levels over hard dependencies).

        Level 0 holds the open missions whose hard dependencies are all ``COMPLETED``; level k those whose open
        hard dependencies are all in levels below k. ``BLOCKED`` missions (which can never run) are left out.
        """
        by_id = {m.mission_id: m for m in self.missions}
        waiting = {m.mission_id: set[str]() for m in self.missions if m.open and m.state != "BLOCKED"}
        for d in self.dependencies:
            if d.kind == "HARD" and d.mission_id in waiting and d.depends_on in waiting:
                waiting[d.mission_id].add(d.depends_on)
        levels: list[list[Mission]] = []
        while waiting:
            level = sorted(m for m, before in waiting.items() if not before)
            if not level:
                break  # unreachable for the processor's facts (it refuses cycles); never loop on a bad projection
            levels.append([by_id[m] for m in level])
            for m in level:
                del waiting[m]
            for before in waiting.values():
                before.difference_update(level)
        return levels


_NEVER = 2**63
"""An offset no edge reaches (an end not among the tree's missions)."""
R = TypeVar("R", Transition, Dependency, Rejection)
"""A history table's row type."""


class Missions:
    """The mission queries over one connection (whose search path is the projection schema)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def in_tree(self, root_id: str, as_of: datetime | None = None, states: Iterable[str] = ()) -> list[Mission]:
        """The tree's missions, oldest first (only those in ``states``, if given)."""
        wanted = {s.upper() for s in states}
        missions = self._missions("root_id = %(root)s", {"root": root_id}, as_of)
        return [m for m in missions if not wanted or m.state in wanted]

    def ready(self, root_id: str, as_of: datetime | None = None) -> list[Mission]:
        """The tree's missions that may start now (``READY``)."""
        return self.in_tree(root_id, as_of, ["READY"])

    def plan(self, root_id: str, as_of: datetime | None = None) -> Plan:
        """The tree's missions and accepted dependencies."""
        missions = self.in_tree(root_id, as_of)
        return Plan(root_id, missions, self._dependencies(root_id, None, missions, as_of), as_of)

    def find(self, mission_id: str, root_id: str | None = None, as_of: datetime | None = None) -> Mission:
        """One mission; ``root_id`` is needed only if several trees have a mission of that id."""
        where, params = "mission_id = %(mission)s", {"mission": mission_id}
        if root_id is not None:
            where, params = where + " AND root_id = %(root)s", {**params, "root": root_id}
        found = self._missions(where, params, as_of)
        if not found:
            raise UnknownMissionError(mission_id, root_id, as_of)
        if len(found) > 1:
            raise AmbiguousMissionError(mission_id, sorted(m.root_id for m in found))
        return found[0]

    def story(self, mission_id: str, root_id: str | None = None, as_of: datetime | None = None) -> MissionStory:
        """One mission with its history, dependencies both ways, children, attempts and rejections."""
        mission = self.find(mission_id, root_id, as_of)
        root, since = mission.root_id, mission.created_offset or 0
        history = self._rows(
            Transition, "mission_transitions", "mission_id = %(mission)s", root, mission_id, as_of, since
        )
        tree = self.in_tree(root, as_of)
        edges = self._dependencies(root, mission_id, tree, as_of)
        children = [m.mission_id for m in tree if m.parent_mission_id == mission_id]
        return MissionStory(
            mission,
            history,
            [d for d in edges if d.mission_id == mission_id],
            [d for d in edges if d.depends_on == mission_id],
            children,
            self._attempts(history, as_of),
            self._rows(Rejection, "mission_rejections", "mission_id = %(mission)s", root, mission_id, as_of, since),
            as_of,
        )

    def _missions(self, where: str, params: dict[str, Any], as_of: datetime | None) -> list[Mission]:
        current = (_CURRENT_NOW if as_of is None else _CURRENT_AS_OF).format(where=where)
        with self.conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(_WITH_SPEC.format(current=current).encode(), {**params, "as_of": as_of})
            return [Mission(**row) for row in rows]

    def _dependencies(
        self, root_id: str, mission_id: str | None, tree: list[Mission], as_of: datetime | None
    ) -> list[Dependency]:
        """The accepted dependencies (of ``mission_id``, or all) between the missions of ``tree`` as they are now:
        an edge older than either end's creation belongs to a forgotten tree that had the same root id."""
        edges = "(%(mission)s::text IS NULL OR mission_id = %(mission)s OR depends_on = %(mission)s)"
        born = {m.mission_id: m.created_offset or 0 for m in tree}
        return [
            d
            for d in self._rows(Dependency, "mission_dependencies", edges, root_id, mission_id, as_of, 0)
            if d.offset >= born.get(d.mission_id, _NEVER) and d.offset >= born.get(d.depends_on, _NEVER)
        ]

    def _rows(
        self,
        kind: type[R],
        table: str,
        where: str,
        root_id: str,
        mission_id: str | None,
        as_of: datetime | None,
        since: int,
    ) -> list[R]:
        """The rows of a history table (as ``kind``, its columns by field name) of one tree, from offset ``since``
        on, in offset order."""
        columns = ", ".join(f'"{f.name}"' for f in fields(kind))
        query = (
            f'SELECT {columns} FROM {table} WHERE root_id = %(root)s AND {where} AND "offset" >= %(since)s'
            ' AND (%(as_of)s::timestamptz IS NULL OR occurred_at <= %(as_of)s) ORDER BY "offset"'
        )
        values = {"root": root_id, "mission": mission_id, "as_of": as_of, "since": since}
        with self.conn.cursor(row_factory=dict_row) as cur:
            return [kind(**row) for row in cur.execute(query.encode(), values)]

    def _attempts(self, history: list[Transition], as_of: datetime | None) -> list[Attempt]:
        runs: list[dict[str, Any]] = []
        for step in history:
            if step.handoff:
                if step.to_state == "RUNNING" and runs and "ended_state" not in runs[-1]:
                    runs[-1]["agent_id"] = step.agent_id
            elif step.to_state == "RUNNING":
                runs.append({"attempt": step.attempt, "agent_id": step.agent_id, "started_at": step.occurred_at})
            elif step.from_state == "RUNNING" and runs and "ended_state" not in runs[-1]:
                runs[-1].update(ended_state=step.to_state, ended_at=step.occurred_at, reason=step.reason)
        ran = sorted({run["agent_id"] for run in runs if run["agent_id"] is not None})
        agents = Lineage(self.conn).agents(ran, as_of)  # not projected (yet), or another tenant's: no tokens
        return [
            Attempt(
                run["attempt"],
                run["agent_id"],
                run["started_at"],
                run.get("ended_state"),
                run.get("ended_at"),
                run.get("reason", ""),
                agents[run["agent_id"]].tokens_used if run["agent_id"] in agents else None,
            )
            for run in runs
        ]
