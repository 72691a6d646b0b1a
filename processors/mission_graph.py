"""The dependency graph of a tree's missions: an incremental cycle check that keeps a topological order.

Every mission has an ``order``; every dependency points from a mission to one with a lower
order (what it depends on comes first). Adding "A depends on B" when B already comes
before A costs nothing. Otherwise only the missions between the two in the order can be
on a cycle, and only they are searched and re-ordered: the algorithm of Pearce and Kelly
("A dynamic topological sort algorithm for directed acyclic graphs", 2006), so that an
edge costs what its affected region costs, not a search of the whole graph. Searches
follow the dependency lists in the order they were added, so the result (the cycle named,
the new order) is a pure function of the tree's history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentlog.processors.mission_state import MissionTree

CYCLE_NAMED = 64
"""The longest cycle a rejection names in full (the contract's limit on ``DependencyRejected.cycle``)."""


@dataclass(frozen=True)
class Check:
    """What adding a dependency would do: the cycle it closes, or the missions whose order changed to admit it."""

    cycle: list[str] | None = None
    """Missions each depending on the next, from the dependent back to it (None: no cycle)."""
    cut: bool = False
    """The cycle was longer than :data:`CYCLE_NAMED` and is named without its middle."""
    moved: list[str] = field(default_factory=list)
    """Missions given a new place in the order (their state changed)."""


def cycle_if_added(tree: MissionTree, mission_id: str, depends_on: str) -> Check:
    """Whether "``mission_id`` depends on ``depends_on``" would close a cycle; when not, the order is updated to
    admit the edge.

    Call only for two different missions of ``tree``; the caller adds the edge when no cycle is found.
    """
    missions = tree.missions
    low, high = missions[mission_id].order, missions[depends_on].order
    if high < low:
        return Check()  # already in order
    # Forward from the dependent, through the missions that depend on it, within the affected region.
    came_from: dict[str, str | None] = {mission_id: None}
    forward: list[str] = []
    stack = [mission_id]
    while stack:
        current = stack.pop()
        forward.append(current)
        for dependent in missions[current].needed_by:
            if dependent == depends_on:
                cycle = _cycle(came_from, current, mission_id, depends_on)
                if len(cycle) <= CYCLE_NAMED:
                    return Check(cycle)
                half = CYCLE_NAMED // 2
                return Check([*cycle[:half], *cycle[-half:]], cut=True)
            if dependent not in came_from and missions[dependent].order < high:
                came_from[dependent] = current
                stack.append(dependent)
    # Backward from the dependency, through what it depends on, within the region.
    seen = {depends_on}
    backward: list[str] = []
    stack = [depends_on]
    while stack:
        current = stack.pop()
        backward.append(current)
        for needed in missions[current].needs:
            if needed not in seen and missions[needed].order > low:
                seen.add(needed)
                stack.append(needed)
    # The dependency's side takes the lower places, the dependent's the higher, each keeping its own order.
    moved = sorted(backward, key=lambda m: missions[m].order) + sorted(forward, key=lambda m: missions[m].order)
    places = sorted(missions[m].order for m in moved)
    changed = []
    for mission, place in zip(moved, places, strict=True):
        if missions[mission].order != place:
            missions[mission].order = place
            changed.append(mission)
    return Check(moved=changed)


def _cycle(came_from: dict[str, str | None], reached_from: str, mission_id: str, depends_on: str) -> list[str]:
    """``mission_id`` → ``depends_on`` → … → ``mission_id``, each depending on the next."""
    back: list[str] = []  # depends_on's dependencies down to mission_id: reached_from, its predecessor, …
    current: str | None = reached_from
    while current is not None:
        back.append(current)
        current = came_from[current]
    return [mission_id, depends_on, *back]
