"""The exceptions of the projections; every one derives from :class:`ProjectionError`."""

from __future__ import annotations

from datetime import datetime

from agentlog.errors import AgentlogError


class ProjectionError(AgentlogError):
    """Root of every error raised by the projections."""


class MigrationError(ProjectionError):
    """The database's schema cannot be brought to this agentlog's migrations."""

    def __init__(self, schema: str, version: int | None, reason: str) -> None:
        self.schema = schema
        self.version = version
        self.reason = reason
        where = f" (version {version})" if version is not None else ""
        super().__init__(f"schema {schema!r}{where}: {reason}")


class NotMigratedError(ProjectionError):
    """The target schema has no projection tables yet."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        super().__init__(
            f"schema {schema!r} lacks projection tables (none, or not the newest);"
            f" run `agentlog db migrate --schema {schema}`"
        )


class DatabaseUnavailableError(ProjectionError):
    """PostgreSQL did not answer or dropped the connection."""


class StalePositionsError(ProjectionError):
    """Another projector moved a partition on since this one read its position."""

    def __init__(
        self, topic: str | None, partition: int | None, expected: int | None = None, found: int | None = None
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.expected = expected
        self.found = found
        if topic is None:
            message = "another projector wrote the same records first"
        else:
            message = f"{topic}[{partition}]: expected next offset {expected}, the database has {found}"
        super().__init__(message)


class UnknownAgentError(ProjectionError):
    """No agent (or root) with this id exists, or did not yet exist at the moment asked about."""

    def __init__(self, agent_id: str, as_of: datetime | None = None) -> None:
        self.agent_id = agent_id
        self.as_of = as_of
        when = f" as of {as_of.isoformat()}" if as_of is not None else ""
        super().__init__(f"unknown agent {agent_id!r}{when}")


class UnknownMissionError(ProjectionError):
    """No mission of this id (in the tree named, if one is), or none yet at the moment asked about."""

    def __init__(self, mission_id: str, root_id: str | None = None, as_of: datetime | None = None) -> None:
        self.mission_id = mission_id
        self.root_id = root_id
        self.as_of = as_of
        where = f" in tree {root_id!r}" if root_id is not None else ""
        when = f" as of {as_of.isoformat()}" if as_of is not None else ""
        super().__init__(f"unknown mission {mission_id!r}{where}{when}")


class AmbiguousMissionError(ProjectionError):
    """Several trees have a mission of this id: the question must name the tree."""

    def __init__(self, mission_id: str, roots: list[str]) -> None:
        self.mission_id = mission_id
        self.roots = roots
        super().__init__(f"mission {mission_id!r} is in {len(roots)} trees ({', '.join(roots)}); name one with --root")
