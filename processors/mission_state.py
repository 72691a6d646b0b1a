"""The mission processor's state for one partition: per agent tree, its missions, their dependencies and its agents.

A tree is known from the gate's ``RootAdmitted`` on; the agents the gate approved are
remembered with whether they are still active (the gate's facts say when one ends). A
mission keeps its state, attempt, runner, parent and children, the missions it depends on
(with the kind) and those that depend on it, and its place in a topological order of the
tree's dependency graph (:attr:`Mission.order`), which the cycle check maintains
incrementally (:mod:`.mission_graph`).

Changelog records are compact JSON: one per tree (its header, key ``root_id``) and one per
mission (key ``root_id`` NUL ``mission_id``), so a batch writes only what it changed and a
tree of any size stays within the broker's message limit, mission by mission.
"""

from __future__ import annotations

import heapq
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentlog.events import DependencyKind, MissionState
from agentlog.processors.errors import SnapshotError

_S = MissionState
OPEN: frozenset[MissionState] = frozenset({_S.PENDING, _S.READY, _S.RUNNING, _S.BLOCKED})
"""States of a mission that has not finished."""
FINISHED: frozenset[MissionState] = frozenset({_S.COMPLETED, _S.FAILED, _S.CANCELLED})
SEPARATOR = "\x00"
"""Between a tree's root id and a mission id in a changed key and a changelog key (no id holds it)."""


@dataclass(slots=True)
class Mission:
    """One mission of a tree."""

    mission_id: str
    parent: str | None
    state: MissionState
    attempt: int
    max_attempts: int
    order: int
    """Its place in the tree's topological order: every mission comes after the missions it depends on."""
    owner: str | None = None
    runner: str | None = None
    """The agent running the current attempt (RUNNING), else None."""
    ended_as: MissionState | None = None
    """For an ARCHIVED mission: how it finished."""
    finished_us: int | None = None
    """When it finished (COMPLETED, FAILED, CANCELLED; kept when archived), in µs of the deciding input's time."""
    needs: dict[str, DependencyKind] = field(default_factory=dict)
    """The missions it depends on, in the order the dependencies were added, with their kind."""
    needed_by: list[str] = field(default_factory=list)
    """The missions that depend on it, in the order they came to."""
    children: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> MissionState:
        """How it stands for its dependents: its state, or for an archived mission how it finished."""
        return self.ended_as if self.state is _S.ARCHIVED and self.ended_as is not None else self.state

    @property
    def open(self) -> bool:
        return self.state in OPEN

    def to_row(self) -> list[Any]:
        needs = [[m, k.value] for m, k in self.needs.items()]
        ended = self.ended_as.value if self.ended_as is not None else None
        return [
            self.mission_id,
            self.parent,
            self.state.value,
            self.attempt,
            self.max_attempts,
            self.order,
            self.owner,
            self.runner,
            ended,
            needs,
            self.needed_by,
            self.children,
            self.finished_us,
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> Mission:
        mission_id, parent, state, attempt, most, order, owner, runner, ended, needs, needed_by, children = row[:12]
        finished = row[12] if len(row) > 12 else None  # rows of core 1 knew no finishing time
        return cls(
            mission_id=mission_id,
            parent=parent,
            state=_S(state),
            attempt=attempt,
            max_attempts=most,
            order=order,
            owner=owner,
            runner=runner,
            ended_as=_S(ended) if ended is not None else None,
            needs={m: DependencyKind(k) for m, k in needs},
            needed_by=list(needed_by),
            children=list(children),
            finished_us=int(finished) if finished is not None else None,
        )


@dataclass(slots=True)
class MissionTree:
    """The missions of one agent tree, and its agents as the gate decided them."""

    root_id: str
    tenant_id: str
    agents: dict[str, bool] = field(default_factory=dict)
    """Every agent the gate admitted or approved in the tree, and whether it is still active."""
    missions: dict[str, Mission] = field(default_factory=dict)
    running: dict[str, list[str]] = field(default_factory=dict)
    """Per agent, the missions it runs (rebuilt from the missions on load)."""
    next_order: int = 0

    def active(self, agent_id: str) -> bool:
        """Whether ``agent_id`` is an active agent of the tree."""
        return self.agents.get(agent_id, False)

    def header(self) -> dict[str, Any]:
        return {"root": self.root_id, "tenant": self.tenant_id, "agents": self.agents, "next": self.next_order}

    @classmethod
    def from_header(cls, header: dict[str, Any]) -> MissionTree:
        return cls(
            root_id=str(header["root"]),
            tenant_id=sys.intern(str(header["tenant"])),
            agents={str(a): bool(v) for a, v in header["agents"].items()},
            next_order=int(header["next"]),
        )

    def add(self, mission: Mission) -> None:
        """Put a mission (new, or restored) into the tree and its indexes."""
        self.missions[mission.mission_id] = mission
        if mission.runner is not None:
            self.running.setdefault(mission.runner, []).append(mission.mission_id)

    def run(self, mission: Mission, agent_id: str | None) -> None:
        """Record who runs ``mission`` now (None: nobody)."""
        if mission.runner is not None:
            runs = self.running.get(mission.runner, [])
            if mission.mission_id in runs:
                runs.remove(mission.mission_id)
            if not runs:
                self.running.pop(mission.runner, None)
        mission.runner = agent_id
        if agent_id is not None:
            self.running.setdefault(agent_id, []).append(mission.mission_id)


Finished = tuple[int, str, str]
"""``(finished_us, root_id, mission_id)``: an entry of the archiving queue."""


@dataclass
class MissionPartition:
    """Everything the mission processor knows about the trees of one partition."""

    partition: int = 0
    trees: dict[str, MissionTree] = field(default_factory=dict)
    finished: list[Finished] = field(default_factory=list)
    """A heap of the missions finished, by time: what the policy's retention archives first. Entries of missions
    that moved on since (a retry, an archiving, a forgotten tree) are skipped when they come up; not kept in the
    changelog, rebuilt on restore."""
    _compacted: int = 0

    def finish(self, root_id: str, mission: Mission, at_us: int) -> None:
        """Record that ``mission`` finished at ``at_us``."""
        mission.finished_us = at_us
        heapq.heappush(self.finished, (at_us, root_id, mission.mission_id))
        if len(self.finished) > 2 * self._compacted + 1024:
            self.rebuild_finished()

    def still_finished(self, entry: Finished) -> Mission | None:
        """The mission an entry of :attr:`finished` names, if it is still finished as the entry says."""
        at_us, root_id, mission_id = entry
        tree = self.trees.get(root_id)
        mission = tree.missions.get(mission_id) if tree is not None else None
        if mission is None or mission.state not in FINISHED or mission.finished_us != at_us:
            return None
        return mission

    def rebuild_finished(self) -> None:
        """The archiving queue from the missions themselves (on restore, and when stale entries pile up)."""
        self.finished = [
            (m.finished_us, root_id, m.mission_id)
            for root_id, tree in self.trees.items()
            for m in tree.missions.values()
            if m.state in FINISHED and m.finished_us is not None
        ]
        heapq.heapify(self.finished)
        self._compacted = len(self.finished)


def mission_key(root_id: str, mission_id: str) -> str:
    """The changed-state key (and changelog key) of one mission."""
    return f"{root_id}{SEPARATOR}{mission_id}"


def records_of(state: MissionPartition, changed: set[str]) -> list[tuple[bytes, bytes | None]]:
    """Changelog records for the ``changed`` keys: tree headers (``root_id``) and missions (:func:`mission_key`)."""
    records: list[tuple[bytes, bytes | None]] = []
    for key in sorted(changed):
        root_id, _, mission_id = key.partition(SEPARATOR)
        tree = state.trees.get(root_id)
        if not mission_id:
            records.append((key.encode(), _json(tree.header()) if tree is not None else None))
            continue
        mission = tree.missions.get(mission_id) if tree is not None else None
        records.append((key.encode(), _json(mission.to_row()) if mission is not None else None))
    return records


def restore(partition: int, records: Iterable[tuple[bytes, bytes | None]]) -> MissionPartition:
    """The partition state changelog records (in offset order; the newest per key counts) describe."""
    state = MissionPartition(partition=partition)
    latest = dict(records)
    rows: list[tuple[str, list[Any]]] = []
    try:
        for key, value in latest.items():
            if value is None:
                continue
            root_id, _, mission_id = key.decode().partition(SEPARATOR)
            document = json.loads(value)
            if mission_id:
                rows.append((root_id, document))
            else:
                state.trees[root_id] = MissionTree.from_header(document)
        for root_id, row in rows:
            tree = state.trees.get(root_id)
            if tree is not None:  # a mission of a forgotten tree whose tombstone is still to come
                tree.add(Mission.from_row(row))
    except (KeyError, TypeError, ValueError) as e:
        raise SnapshotError(f"malformed mission changelog record: {e!r}") from e
    state.rebuild_finished()
    return state


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
