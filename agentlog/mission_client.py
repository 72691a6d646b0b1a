"""Missions from an agent runtime: each command published, and the mission processor's answer returned.

``client.missions.create(root_id, mission_id, "title")`` answers with the ``MissionTransitioned``
that made it (``UNKNOWN → READY``) or a ``MissionTransitionRejected`` with its reason code
and sentence; dependencies with ``DependencyAccepted`` or ``DependencyRejected``; the moves
(``start``, ``complete``, ``fail``, ``cancel``, ``archive``) with the transition or the
rejection, as ``spawn`` returns the gate's approval or denial. A command's later effects
(its dependents becoming READY, a retry) are facts on ``agentlog.mission.events`` too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentlog import events as ev

if TYPE_CHECKING:
    from agentlog.client import AgentlogClient

MISSION_ANSWERS: tuple[type[ev.Event], ...] = (
    ev.MissionTransitioned,
    ev.MissionTransitionRejected,
    ev.DependencyAccepted,
    ev.DependencyRejected,
)
"""The facts that answer a mission command (the first one caused by it)."""

Moved = ev.MissionTransitioned | ev.MissionTransitionRejected
_S = ev.MissionState


class MissionClient:
    """The mission commands of one client's tenant."""

    def __init__(self, client: AgentlogClient) -> None:
        self._client = client

    def create(
        self,
        root_id: str,
        mission_id: str,
        task: ev.TaskSpec | str,
        *,
        parent_mission_id: str | None = None,
        owner_agent_id: str | None = None,
        max_attempts: int = 3,
    ) -> Moved:
        """Create a mission in the agent tree ``root_id``."""
        spec = ev.TaskSpec(title=task) if isinstance(task, str) else task
        return self._moved(
            mission_id,
            lambda: ev.MissionCreated(
                meta=self._client.meta(root_id),
                mission_id=mission_id,
                parent_mission_id=parent_mission_id,
                task=spec,
                owner_agent_id=owner_agent_id,
                max_attempts=max_attempts,
            ),
        )

    def depend(
        self, root_id: str, mission_id: str, depends_on: str, kind: ev.DependencyKind = ev.DependencyKind.HARD
    ) -> ev.DependencyAccepted | ev.DependencyRejected:
        """Make ``mission_id`` depend on ``depends_on`` (of the same tree)."""
        answer = self._client.ask_missions(
            lambda: ev.DependencyAdded(
                meta=self._client.meta(root_id), mission_id=mission_id, depends_on=depends_on, kind=kind
            ),
            mission_id,
        )
        assert isinstance(answer, ev.DependencyAccepted | ev.DependencyRejected), answer
        return answer

    def start(self, root_id: str, mission_id: str, requested_by: str, agent_id: str | None = None) -> Moved:
        """READY → RUNNING under ``agent_id`` (default: the requester), an active agent of the tree."""
        return self._move(root_id, mission_id, _S.RUNNING, requested_by, agent_id=agent_id)

    def complete(
        self,
        root_id: str,
        mission_id: str,
        requested_by: str,
        result_summary: str = "",
        quality_score: float | None = None,
    ) -> Moved:
        """RUNNING → COMPLETED, with what it produced."""
        fields = {"result_summary": result_summary, "quality_score": quality_score}
        return self._move(root_id, mission_id, _S.COMPLETED, requested_by, **fields)

    def fail(
        self, root_id: str, mission_id: str, requested_by: str, reason: str = "", *, retryable: bool = True
    ) -> Moved:
        """RUNNING → FAILED, and back to READY for another attempt if ``retryable`` and attempts remain."""
        return self._move(root_id, mission_id, _S.FAILED, requested_by, reason=reason, retryable=retryable)

    def cancel(self, root_id: str, mission_id: str, requested_by: str, reason: str = "") -> Moved:
        """Cancel a mission that has not finished, and its open descendants."""
        return self._move(root_id, mission_id, _S.CANCELLED, requested_by, reason=reason)

    def archive(self, root_id: str, mission_id: str, requested_by: str) -> Moved:
        """End a finished mission's life."""
        return self._move(root_id, mission_id, _S.ARCHIVED, requested_by)

    def _move(self, root_id: str, mission_id: str, to: ev.MissionState, requested_by: str, **fields: Any) -> Moved:
        return self._moved(
            mission_id,
            lambda: ev.MissionTransitionRequested(
                meta=self._client.meta(root_id),
                mission_id=mission_id,
                to_state=to,
                requested_by=requested_by,
                **fields,
            ),
        )

    def _moved(self, mission_id: str, request: Callable[[], ev.Event]) -> Moved:
        answer = self._client.ask_missions(request, mission_id)
        assert isinstance(answer, ev.MissionTransitioned | ev.MissionTransitionRejected), answer
        return answer
