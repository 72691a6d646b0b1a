"""The mission processor's pure core: ``decide(state, event, policy)`` over one partition's missions.

Missions live in one agent tree, keyed by its ``root_id``. The core reads two kinds of
input: mission commands (``agentlog.missions``) and the spawn gate's facts
(``agentlog.policy.decisions``: which agents the tree has and when each ends), never raw
lifecycle reports. Every command gets exactly one answer; facts about agents move the
missions they ran. The lifecycle:

==================  ==========================  =========================================================
from                to                          how
==================  ==========================  =========================================================
(new)               READY                       ``MissionCreated`` (no dependencies yet)
READY               PENDING                     a hard dependency added on a mission not ``COMPLETED``
PENDING             READY                       automatic: the last hard dependency ``COMPLETED``
PENDING, READY      BLOCKED                     automatic: a hard dependency can never complete (it
                                                ``FAILED`` for good, was ``CANCELLED``, or is ``BLOCKED``)
READY               RUNNING                     requested, naming an active agent of the tree to run it
RUNNING             COMPLETED                   requested, with a result summary and a quality score;
                                                not while a child mission is open
RUNNING             FAILED                      requested, or automatic when its agent ends without
                                                completing it (failed, terminated, timed out)
FAILED              READY                       automatic retry: a retryable failure before the last
                                                attempt, with ``attempt + 1`` (``max_attempts`` in all)
PENDING, READY,     CANCELLED                   requested; its open child missions are cancelled first,
RUNNING, BLOCKED                                deepest first
COMPLETED, FAILED,  ARCHIVED                    requested: the end of a finished mission's life; or automatic:
CANCELLED                                       a timer tick once the policy's ``mission_retention_ms`` has
                                                passed since it finished (0: never)
==================  ==========================  =========================================================

Anything else is a ``MissionTransitionRejected`` with a :class:`~agentlog.events.MissionRejection`
code and a sentence; a dependency is answered by ``DependencyAccepted`` or
``DependencyRejected`` (a cycle, named mission by mission; itself; a mission unknown in this
tree; a mission already running or finished). Soft dependencies never block: they are
recorded, checked for cycles, and shown. A command may come from an active agent of the
tree or from an operator the policy names.

A ``MissionHandoffRequested`` (the consultation bus's, for an accepted ``Handoff`` naming a
mission; core 3 on) moves the mission to another agent without changing its state: a
``MissionHandedOff`` makes the taker its owner and, while it is ``RUNNING``, its runner (so
the taker's end, not the giver's, then fails it), or a ``MissionHandoffRejected`` says why
not: the tree's and the mission's checks as for transitions, a giver handing to itself
(``INVALID_REQUEST``), a giver that neither owns nor runs it (``NOT_THE_OWNER``), a mission
``COMPLETED``, ``FAILED``, ``CANCELLED`` or ``ARCHIVED`` (``MISSION_FINISHED``), a taker that is
not an active agent of the tree (``NOT_AN_ACTIVE_AGENT``).

Deterministic like the gate's core: "now" is the input's time, output ids derive from the
input's event id, and several missions affected at once are taken in a fixed order.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Sized
from datetime import datetime
from typing import Any

from agentlog import events as ev
from agentlog.limits import MAX_CHARS, quote
from agentlog.processors.clock import to_micros
from agentlog.processors.emitter import Emitter
from agentlog.processors.mission_graph import cycle_if_added
from agentlog.processors.mission_state import (
    FINISHED,
    SEPARATOR,
    Mission,
    MissionPartition,
    MissionTree,
    mission_key,
)
from agentlog.processors.policy import Policy

__all__ = ["CORE_VERSION", "HANDLED", "MAX_MISSIONS_PER_TREE", "PRODUCER", "decide", "expire"]

CORE_VERSION = 3
"""1: the first; 2: finished missions archived by timer ticks after the policy's ``mission_retention_ms`` (core 1
kept no finishing time), a quality score that is not a finite number refused, and a transition refused to another
tenant naming no state of the mission; 3: the bus's handoffs of missions decided (cores 1 and 2 ignore a
``MissionHandoffRequested``: no answer, no change; the logs they decided hold none)."""
MAX_ARCHIVED_PER_TICK = 1_000
"""Missions one timer tick archives at most (one fact and one changelog record each); the rest wait for the next."""
PRODUCER = "agentlog.missions"
MAX_MISSIONS_PER_TREE = 100_000
"""Missions one tree may hold (a runaway planner is refused, ``TOO_MANY_MISSIONS``)."""
MAX_EDGES = 256
"""Children, dependencies and dependents one mission may have (``TOO_MANY_MISSIONS``): a mission is one changelog
record, and three lists of 256 ids of at most 256 characters keep it under the broker's 1 MB."""

_S = ev.MissionState
_R = ev.MissionRejection
_HARD = ev.DependencyKind.HARD

REQUESTABLE: dict[ev.MissionState, frozenset[ev.MissionState]] = {
    _S.RUNNING: frozenset({_S.READY}),
    _S.COMPLETED: frozenset({_S.RUNNING}),
    _S.FAILED: frozenset({_S.RUNNING}),
    _S.CANCELLED: frozenset({_S.PENDING, _S.READY, _S.RUNNING, _S.BLOCKED}),
    _S.ARCHIVED: frozenset({_S.COMPLETED, _S.FAILED, _S.CANCELLED}),
}
"""The transitions a request may ask for: wanted state → the states it may be asked from."""


class _Run:
    """What deciding one input needs: its emitter, the tree, the changed keys, the policy version."""

    def __init__(self, state: MissionPartition, event: ev.Event, policy: Policy | None, core: int) -> None:
        self.state = state
        self.event = event
        self.policy = policy
        self.core = core
        self.version = policy.version if policy is not None else 0
        self.tree = state.trees.get(event.meta.root_id)
        tenant = self.tree.tenant_id if self.tree is not None else None
        self.out = Emitter.caused_by(event, tenant_id=tenant, producer=PRODUCER)
        self.changed: set[str] = set()

    def touch(self, mission: Mission) -> None:
        self.changed.add(mission_key(self.event.meta.root_id, mission.mission_id))

    def move(self, mission: Mission, to: ev.MissionState, reason: str, **fields: Any) -> None:
        """Emit the transition and apply it."""
        self.out.emit(
            ev.MissionTransitioned,
            mission_id=mission.mission_id,
            from_state=mission.state,
            to_state=to,
            reason=clip(reason),
            attempt=mission.attempt,
            policy_version=self.version,
            **fields,
        )
        mission.state = to
        if to in FINISHED and self.core >= 2:  # core 1 kept no finishing time
            self.state.finish(self.event.meta.root_id, mission, to_micros(self.event.meta.occurred_at))
        elif to is not _S.ARCHIVED:
            mission.finished_us = None
        self.touch(mission)


def decide(
    state: MissionPartition, event: ev.Event, policy: Policy | None, core: int = CORE_VERSION
) -> tuple[list[ev.Event], set[str]]:
    """The facts ``event`` causes under ``policy`` and the state keys it changed; mutates ``state``.

    ``core``: the version of the core to decide as (replay decides each input as the worker that recorded it).
    """
    handler = _HANDLERS.get(type(event))
    if handler is None:
        return [], set()
    run = _Run(state, event, policy, core)
    handler(run, event)
    return run.out.events, run.changed


def expire(state: MissionPartition, now: datetime, policy: Policy | None) -> tuple[list[ev.Event], set[str]]:
    """A timer tick at ``now``: archive every mission finished at least the policy's ``mission_retention_ms`` ago,
    oldest first (ties by tree and mission id); returns the facts and the changed keys. Mutates ``state``."""
    retention_ms = policy.limits.mission_retention_ms if policy is not None else 0
    if retention_ms <= 0:
        return [], set()
    version = policy.version if policy is not None else 0
    limit_us = to_micros(now) - retention_ms * 1000
    events: list[ev.Event] = []
    changed: set[str] = set()
    while state.finished and state.finished[0][0] <= limit_us and len(events) < MAX_ARCHIVED_PER_TICK:
        entry = heapq.heappop(state.finished)
        mission = state.still_finished(entry)
        if mission is None:
            continue
        finished_us, root_id, _ = entry
        tree = state.trees[root_id]
        out = Emitter(archive_source(root_id, mission.mission_id, finished_us), now, tree.tenant_id, root_id,
                      producer=PRODUCER)  # fmt: skip
        out.emit(
            ev.MissionTransitioned,
            mission_id=mission.mission_id,
            from_state=mission.state,
            to_state=_S.ARCHIVED,
            reason=f"Archived: it finished ({mission.state.value}) at least {retention_ms} ms ago, the policy's"
            " mission_retention_ms.",
            attempt=mission.attempt,
            policy_version=version,
        )
        mission.ended_as, mission.state = mission.state, _S.ARCHIVED
        changed.add(mission_key(root_id, mission.mission_id))
        events += out.events
    return events, changed


def clip(text: str) -> str:
    """A generated sentence within the contract's limit for text (it quotes inputs that may be that long)."""
    return quote(text, MAX_CHARS["text"])


def archive_source(root_id: str, mission_id: str, finished_us: int) -> str:
    """The source name of the fact that archives a mission after the retention (a timer tick has no input)."""
    return f"archive:{root_id}{SEPARATOR}{mission_id}@{finished_us}"


# -- the gate's facts ---------------------------------------------------------------------


def _root_admitted(run: _Run, fact: ev.RootAdmitted) -> None:
    if fact.repeat or SEPARATOR in fact.meta.root_id:  # such a root id cannot key a tree's records: no missions
        return
    root_id = fact.meta.root_id
    tree = run.state.trees.get(root_id)
    if tree is None:
        tree = run.state.trees[root_id] = MissionTree(root_id, fact.meta.tenant_id)
    tree.agents[fact.agent_id] = True
    run.changed.add(root_id)


def _spawn_approved(run: _Run, fact: ev.SpawnApproved) -> None:
    if fact.repeat or run.tree is None:
        return
    run.tree.agents[fact.child_agent_id] = True
    run.changed.add(run.tree.root_id)


def _agent_ended(run: _Run, fact: ev.AgentEnded | ev.AgentTerminated | ev.AgentTimedOut) -> None:
    """An agent ended: the missions it was running fail (and retry, within their attempts)."""
    tree = run.tree
    if tree is None or fact.agent_id not in tree.agents:
        return
    tree.agents[fact.agent_id] = False
    run.changed.add(tree.root_id)
    if isinstance(fact, ev.AgentEnded):
        if fact.outcome is ev.EndOutcome.COMPLETED:
            how, retryable = "completed without completing the mission", True
        else:
            how, retryable = f"failed ({quote(fact.error)})", fact.retryable
    elif isinstance(fact, ev.AgentTerminated):
        how, retryable = f"was terminated ({fact.reason.value})", True
    else:
        how, retryable = f"timed out ({fact.cause.value})", True
    for mission_id in sorted(tree.running.get(fact.agent_id, ())):
        _fail(run, tree.missions[mission_id], f"its agent {fact.agent_id} {how}", retryable)


def _tree_forgotten(run: _Run, fact: ev.TreeForgotten) -> None:
    tree = run.state.trees.pop(fact.meta.root_id, None)
    if tree is not None:
        run.changed.add(tree.root_id)
        run.changed.update(mission_key(tree.root_id, m) for m in tree.missions)


# -- commands -----------------------------------------------------------------------------


def _created(run: _Run, command: ev.MissionCreated) -> None:
    def reject(code: ev.MissionRejection, why: str) -> None:
        _reject_transition(run, command.mission_id, _S.UNKNOWN, _S.READY, code, why)

    tree = _tree_of(run, command, reject)
    if tree is None:
        return
    if not command.mission_id or SEPARATOR in command.mission_id:
        reject(_R.INVALID_REQUEST, "a mission id must be a non-empty text without NUL characters.")
        return
    if command.mission_id in tree.missions:
        reject(_R.DUPLICATE_MISSION, f"mission {quote(command.mission_id)} already exists in this tree.")
        return
    if len(tree.missions) >= MAX_MISSIONS_PER_TREE:
        reject(_R.TOO_MANY_MISSIONS, f"the tree already holds {MAX_MISSIONS_PER_TREE} missions, the most it may.")
        return
    if command.max_attempts < 1:
        reject(_R.INVALID_REQUEST, f"max_attempts is {command.max_attempts}; a mission takes at least 1 attempt.")
        return
    parent = tree.missions.get(command.parent_mission_id) if command.parent_mission_id is not None else None
    if command.parent_mission_id is not None:
        if parent is None:
            reject(_R.UNKNOWN_PARENT, f"its parent mission {quote(command.parent_mission_id)} is not in this tree.")
            return
        if not parent.open:
            reject(_R.PARENT_FINISHED, f"its parent mission {parent.mission_id} is {parent.state.value}.")
            return
        crowded = _crowded(parent.children, f"its parent mission {parent.mission_id} already has children:")
        if crowded:
            reject(_R.TOO_MANY_MISSIONS, crowded)
            return
    if command.owner_agent_id is not None and not tree.active(command.owner_agent_id):
        reject(_R.NOT_AN_ACTIVE_AGENT, f"its owner {quote(command.owner_agent_id)} is not an active agent of the tree.")
        return
    mission = Mission(
        mission_id=command.mission_id,
        parent=command.parent_mission_id,
        state=_S.UNKNOWN,
        attempt=1,
        max_attempts=command.max_attempts,
        order=tree.next_order,
        owner=command.owner_agent_id,
    )
    tree.next_order += 1
    tree.add(mission)
    run.changed.add(tree.root_id)
    if parent is not None:
        parent.children.append(mission.mission_id)
        run.touch(parent)
    run.move(mission, _S.READY, "Created; it depends on nothing yet, so it may start.")


def _dependency(run: _Run, command: ev.DependencyAdded) -> None:
    def reject(code: ev.MissionRejection, why: str, cycle: list[str] | None = None) -> None:
        run.out.emit(
            ev.DependencyRejected,
            mission_id=command.mission_id,
            depends_on=command.depends_on,
            kind=command.kind,
            reason_code=code,
            cycle=cycle or [],
            policy_version=run.version,
            reason=clip(f"Cannot add the dependency: {why}"),
        )

    found = _mission_of(run, command, reject)
    if found is None:
        return
    tree, mission = found
    if command.depends_on == command.mission_id:
        reject(_R.SELF_DEPENDENCY, f"mission {mission.mission_id} cannot depend on itself.")
        return
    needed = tree.missions.get(command.depends_on)
    if needed is None:
        reject(
            _R.UNKNOWN_DEPENDENCY,
            f"mission {quote(command.depends_on)} is not in this tree (missions depend only on missions of their"
            " own agent tree).",
        )
        return
    if needed.mission_id in mission.needs:
        kind = mission.needs[needed.mission_id].value
        why = f"mission {mission.mission_id} already depends on {needed.mission_id} ({kind})."
        reject(_R.DUPLICATE_DEPENDENCY, why)
        return
    if not mission.open or mission.state is _S.RUNNING:
        reject(_R.DEPENDENCY_TOO_LATE, f"mission {mission.mission_id} is already {mission.state.value}.")
        return
    crowded = _crowded(mission.needs, f"mission {mission.mission_id} already depends on") or _crowded(
        needed.needed_by, f"{needed.mission_id} already has dependents:"
    )
    if crowded:
        reject(_R.TOO_MANY_MISSIONS, crowded)
        return
    check = cycle_if_added(tree, mission.mission_id, needed.mission_id)
    for moved in check.moved:
        run.touch(tree.missions[moved])
    if check.cycle is not None:
        cut = " (cut in the middle)" if check.cut else ""
        path = " → ".join(check.cycle)
        reject(_R.DEPENDENCY_CYCLE, f"it would close the cycle {path}{cut}.", check.cycle)
        return
    mission.needs[needed.mission_id] = command.kind
    needed.needed_by.append(mission.mission_id)
    run.touch(mission)
    run.touch(needed)
    kind = command.kind.value.lower()
    run.out.emit(
        ev.DependencyAccepted,
        mission_id=mission.mission_id,
        depends_on=needed.mission_id,
        kind=command.kind,
        policy_version=run.version,
        message=f"Mission {mission.mission_id} now depends on {needed.mission_id} ({kind}).",
    )
    if command.kind is not _HARD or mission.state is _S.BLOCKED:
        return
    if _never_completes(needed):
        _block(run, mission, needed)
        _block_dependents(run, mission)
    elif needed.outcome is not _S.COMPLETED and mission.state is _S.READY:
        run.move(mission, _S.PENDING, f"It now waits for its hard dependency {needed.mission_id}.")


def _transition(run: _Run, command: ev.MissionTransitionRequested) -> None:
    def reject(code: ev.MissionRejection, why: str) -> None:
        known = run.tree.missions.get(command.mission_id) if run.tree is not None else None
        if code is _R.TENANT_MISMATCH and run.core >= 2:
            known = None  # another tenant learns nothing of the tree's missions, not even whether one exists
        current = known.state if known is not None else _S.UNKNOWN
        _reject_transition(run, command.mission_id, current, command.to_state, code, why)

    found = _mission_of(run, command, reject)
    if found is None:
        return
    tree, mission = found
    operators = run.policy.limits.operators if run.policy is not None else []
    if not tree.active(command.requested_by) and command.requested_by not in operators:
        reject(
            _R.NOT_AN_ACTIVE_AGENT,
            f"{quote(command.requested_by)} is neither an active agent of the tree nor an operator of the policy.",
        )
        return
    wanted = command.to_state
    allowed = REQUESTABLE.get(wanted)
    if allowed is None:
        reject(_R.NOT_ALLOWED, f"{wanted.value} is reached by the mission processor, never by request.")
        return
    if mission.state not in allowed:
        reject(_R.NOT_ALLOWED, _not_from(tree, mission, wanted, allowed))
        return
    if wanted is _S.RUNNING:
        runner = command.agent_id or command.requested_by
        if not tree.active(runner):
            reject(_R.NOT_AN_ACTIVE_AGENT, f"{quote(runner)} is not an active agent of the tree and cannot run it.")
            return
        tree.run(mission, runner)
        said = _why(command, f"Attempt {mission.attempt} runs under agent {runner}.")
        run.move(mission, _S.RUNNING, said, agent_id=runner)
    elif wanted is _S.COMPLETED:
        children = [c for c in mission.children if tree.missions[c].open]
        if children:
            named = ", ".join(children[:5]) + (f" and {len(children) - 5} more" if len(children) > 5 else "")
            reject(_R.OPEN_CHILDREN, f"its child missions are still open: {named}.")
            return
        score = command.quality_score
        if score is not None and not math.isfinite(score) and run.core >= 2:
            reject(_R.INVALID_REQUEST, f"the quality score is {score}; it must be a finite number.")
            return
        fields: dict[str, Any] = {
            "agent_id": mission.runner,
            "result_summary": command.result_summary,
            "quality_score": command.quality_score,
        }
        tree.run(mission, None)
        run.move(mission, _S.COMPLETED, _why(command, f"Completed at attempt {mission.attempt}."), **fields)
        _release_dependents(run, mission)
    elif wanted is _S.FAILED:
        _fail(run, mission, _why(command, f"{command.requested_by} reported it failed"), command.retryable)
    elif wanted is _S.CANCELLED:
        _cancel(run, tree, mission, command)
    else:
        mission.ended_as = mission.state
        run.move(mission, _S.ARCHIVED, _why(command, f"Archived; it had {mission.state.value.lower()}."))


def _handoff(run: _Run, command: ev.MissionHandoffRequested) -> None:
    """Move a mission to the agent a handoff names: its owner, and its runner while it runs (core 3 on)."""
    if run.core < 3:
        return  # cores 1 and 2 read no handoffs: what they decided stays as recorded
    giver, taker = command.from_agent_id, command.to_agent_id

    def reject(code: ev.MissionRejection, why: str) -> None:
        run.out.emit(
            ev.MissionHandoffRejected,
            mission_id=command.mission_id,
            reason_code=code,
            reason=clip(f"Cannot hand mission {quote(command.mission_id)} over to {quote(taker)}: {why}"),
            handoff_id=command.handoff_id,
            policy_version=run.version,
        )

    found = _mission_of(run, command, reject)
    if found is None:
        return
    tree, mission = found
    if giver == taker:
        reject(_R.INVALID_REQUEST, f"{quote(giver)} would hand it to itself.")
    elif giver not in (mission.owner, mission.runner):
        reject(_R.NOT_THE_OWNER, f"{quote(giver)} neither owns nor runs it.")
    elif not mission.open:
        reject(_R.MISSION_FINISHED, f"it is {mission.state.value}; only an open mission changes hands.")
    elif not tree.active(taker):
        reject(_R.NOT_AN_ACTIVE_AGENT, f"{quote(taker)} is not an active agent of the tree.")
    else:
        previous = mission.owner
        mission.owner = taker
        running = mission.state is _S.RUNNING
        if running:
            tree.run(mission, taker)
        run.touch(mission)
        runs = f" and runs attempt {mission.attempt}" if running else ""
        said = f"Mission {mission.mission_id} ({mission.state.value}) handed off by {giver}: {taker} owns it{runs}."
        run.out.emit(
            ev.MissionHandedOff,
            mission_id=mission.mission_id,
            state=mission.state,
            previous_owner=previous,
            owner=taker,
            handoff_id=command.handoff_id,
            policy_version=run.version,
            message=clip(said),
        )


# -- moving missions ----------------------------------------------------------------------


def _fail(run: _Run, mission: Mission, why: str, retryable: bool) -> None:
    """RUNNING → FAILED, then back to READY for another attempt, or for good (its hard dependents are blocked)."""
    assert run.tree is not None
    runner = mission.runner
    run.tree.run(mission, None)
    last = mission.attempt >= mission.max_attempts
    run.move(mission, _S.FAILED, f"Attempt {mission.attempt} of {mission.max_attempts} failed: {why}.", agent_id=runner)
    if retryable and not last:
        mission.attempt += 1
        run.move(mission, _S.READY, f"Attempt {mission.attempt} of {mission.max_attempts} may start.")
        return
    _block_dependents(run, mission)


def _cancel(run: _Run, tree: MissionTree, mission: Mission, command: ev.MissionTransitionRequested) -> None:
    """Cancel a mission and, first, its open descendants, deepest first (ties by id)."""
    found: list[tuple[int, str]] = []
    seen = {mission.mission_id}
    stack = [(mission, 0)]
    while stack:  # through finished children too: an open mission may sit below one
        current, depth = stack.pop()
        for child_id in current.children:
            child = tree.missions.get(child_id)
            if child is None or child_id in seen:
                continue
            seen.add(child_id)
            if child.open:
                found.append((depth + 1, child_id))
            stack.append((child, depth + 1))
    found.sort(key=lambda pair: (-pair[0], pair[1]))
    for _, child_id in found:
        child = tree.missions[child_id]
        runner = child.runner
        tree.run(child, None)
        run.move(child, _S.CANCELLED, f"Its ancestor mission {mission.mission_id} was cancelled.", agent_id=runner)
    runner = mission.runner
    tree.run(mission, None)
    run.move(mission, _S.CANCELLED, _why(command, f"Cancelled by {command.requested_by}."), agent_id=runner)
    for _, child_id in found:
        _block_dependents(run, tree.missions[child_id])
    _block_dependents(run, mission)


def _release_dependents(run: _Run, mission: Mission) -> None:
    """Missions waiting for ``mission`` whose last hard dependency it was become READY."""
    assert run.tree is not None
    missions = run.tree.missions
    for dependent_id in mission.needed_by:
        dependent = missions[dependent_id]
        if dependent.state is not _S.PENDING or dependent.needs[mission.mission_id] is not _HARD:
            continue
        if all(missions[m].outcome is _S.COMPLETED for m, kind in dependent.needs.items() if kind is _HARD):
            run.move(dependent, _S.READY, f"Its last hard dependency, {mission.mission_id}, completed.")


def _block_dependents(run: _Run, mission: Mission) -> None:
    """Missions that hard-depend on ``mission`` (which can never complete) are blocked, and theirs in turn."""
    assert run.tree is not None
    missions = run.tree.missions
    queue = deque([mission])
    while queue:
        current = queue.popleft()
        for dependent_id in current.needed_by:
            dependent = missions[dependent_id]
            if dependent.needs[current.mission_id] is _HARD and dependent.state in (_S.PENDING, _S.READY):
                _block(run, dependent, current)
                queue.append(dependent)


def _block(run: _Run, mission: Mission, cause: Mission) -> None:
    how = cause.outcome.value
    run.move(mission, _S.BLOCKED, f"Its hard dependency {cause.mission_id} can never complete ({how}).")


def _crowded(edges: Sized, said: str) -> str | None:
    """Why a mission's list of children, dependencies or dependents may not grow (None: it may)."""
    if len(edges) < MAX_EDGES:
        return None
    return f"{said} {len(edges)}, the most one may (a mission's record must stay within the broker's limit)."


def _never_completes(mission: Mission) -> bool:
    return mission.outcome in (_S.FAILED, _S.CANCELLED) or mission.state is _S.BLOCKED


# -- answers ------------------------------------------------------------------------------


def _tree_of(run: _Run, command: ev.Event, reject: Callable[..., None]) -> MissionTree | None:
    """The command's tree, or None after rejecting it (unknown tree, another tenant's)."""
    tree = run.tree
    if tree is None:
        reject(
            _R.UNKNOWN_TREE,
            f"no agent tree {quote(command.meta.root_id)} is known (missions live in an agent tree the spawn gate"
            " admitted, keyed by its root id).",
        )
        return None
    if tree.tenant_id != command.meta.tenant_id:
        reject(_R.TENANT_MISMATCH, f"the agent tree {quote(tree.root_id)} belongs to another tenant.")
        return None
    return tree


def _mission_of(
    run: _Run,
    command: ev.DependencyAdded | ev.MissionTransitionRequested | ev.MissionHandoffRequested,
    reject: Callable[..., None],
) -> tuple[MissionTree, Mission] | None:
    """The command's tree and mission, or None after rejecting it (see :func:`_tree_of`; an unknown mission)."""
    tree = _tree_of(run, command, reject)
    if tree is None:
        return None
    mission = tree.missions.get(command.mission_id)
    if mission is None:
        reject(_R.UNKNOWN_MISSION, f"mission {quote(command.mission_id)} is not in this tree.")
        return None
    return tree, mission


def _reject_transition(
    run: _Run,
    mission_id: str,
    current: ev.MissionState,
    wanted: ev.MissionState,
    code: ev.MissionRejection,
    why: str,
) -> None:
    run.out.emit(
        ev.MissionTransitionRejected,
        mission_id=mission_id,
        from_state=current,
        to_state=wanted,
        reason=clip(f"Cannot move mission {quote(mission_id)} to {wanted.value}: {why}"),
        reason_code=code,
        policy_version=run.version,
    )


def _not_from(tree: MissionTree, mission: Mission, wanted: ev.MissionState, allowed: frozenset[ev.MissionState]) -> str:
    """Why ``mission`` cannot go to ``wanted`` from where it is, in words."""
    if wanted is _S.RUNNING and mission.state is _S.PENDING:
        waiting = [
            f"{m} ({tree.missions[m].state.value})"
            for m, kind in mission.needs.items()
            if kind is _HARD and tree.missions[m].outcome is not _S.COMPLETED
        ]
        return f"it is PENDING, waiting for its hard dependencies {', '.join(waiting[:5])}."
    if wanted is _S.RUNNING and mission.state is _S.BLOCKED:
        return "it is BLOCKED: a hard dependency can never complete; cancel it."
    froms = ", ".join(sorted(s.value for s in allowed))
    return f"it is {mission.state.value}, and only a mission that is {froms} may go to {wanted.value}."


def _why(command: ev.MissionTransitionRequested, said: str) -> str:
    return f"{said} {command.reason}".strip() if command.reason else said


_HANDLERS: dict[type[ev.Event], Callable[[_Run, Any], None]] = {
    ev.RootAdmitted: _root_admitted,
    ev.SpawnApproved: _spawn_approved,
    ev.AgentEnded: _agent_ended,
    ev.AgentTerminated: _agent_ended,
    ev.AgentTimedOut: _agent_ended,
    ev.TreeForgotten: _tree_forgotten,
    ev.MissionCreated: _created,
    ev.DependencyAdded: _dependency,
    ev.MissionTransitionRequested: _transition,
    ev.MissionHandoffRequested: _handoff,
}
HANDLED: frozenset[type[ev.Event]] = frozenset(_HANDLERS)
"""The inputs the core reads; others (the gate's other facts) change nothing."""
