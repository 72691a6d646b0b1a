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

from agentlog.processors.mission_state import MissionTree

CYCLE_NAMED = 64
"""The longest cycle a rejection names in full (the contract's limit on ``DependencyRejected.cycle``)."""


def cycle_if_added(tree: MissionTree, mission_id: str, depends_on: str) -> list[str] | None:
    """The cycle that "``mission_id`` depends on ``depends_on``" would close — missions each depending on the
    next, from ``mission_id`` back to it — or None; when None, the order is updated to admit the edge.

    Call only for two different missions of ``tree``; the caller adds the edge after a None.
    """
    missions = tree.missions
    low, high = missions[mission_id].order, missions[depends_on].order
    if high < low:
        return None  # already in order
    # Forward from the dependent, through the missions that depend on it, within the affected region.
    came_from: dict[str, str | None] = {mission_id: None}
    forward: list[str] = []
    stack = [mission_id]
    while stack:
        current = stack.pop()
        forward.append(current)
        for dependent in missions[current].needed_by:
            if dependent == depends_on:
                return _cycle(came_from, current, mission_id, depends_on)
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
    for mission, place in zip(moved, places, strict=True):
        missions[mission].order = place
    return None


def _cycle(came_from: dict[str, str | None], reached_from: str, mission_id: str, depends_on: str) -> list[str]:
    """``mission_id`` → ``depends_on`` → … → ``mission_id``, each depending on the next."""
    back: list[str] = []  # depends_on's dependencies down to mission_id: reached_from, its predecessor, …
    current: str | None = reached_from
    while current is not None:
        back.append(current)
        current = came_from[current]
    cycle = [mission_id, depends_on, *back]
    if len(cycle) > CYCLE_NAMED:
        half = CYCLE_NAMED // 2
        cycle = [*cycle[:half], *cycle[-half:]]
    return cycle
