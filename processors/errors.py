"""The exceptions of the processors; each derives from :class:`agentlog.errors.AgentlogError`.

The decision path never raises for bad input (a bad request is answered with a denial);
these errors are for the edges: a policy file or a policy event that cannot be used.
"""

from __future__ import annotations

from agentlog.errors import AgentlogError


class ProcessorError(AgentlogError):
    """Root of the errors raised by the stream processors."""


class PolicyError(ProcessorError):
    """A policy file or ``PolicyPublished`` event is invalid.

    ``source`` names the file (or event) and ``problems`` lists ``(field path, reason)``
    pairs, the path dotted (``limits.max_depth``, ``configs.2.spawnable_by``).
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        detail = "; ".join(f"{path}: {reason}" if path else reason for path, reason in problems)
        super().__init__(f"invalid policy {source}: {detail}")


class SnapshotError(ProcessorError):
    """A state snapshot cannot be read (unknown version or malformed)."""


class WorkerError(ProcessorError):
    """A processor worker cannot go on (fenced, its input misassigned, a transaction it cannot settle)."""


class GateError(ProcessorError):
    """The spawn-gate worker cannot go on (its state cannot be restored, its input is misassigned)."""
