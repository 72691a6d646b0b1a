"""The exceptions of ``replay``; every one derives from :class:`ReplayError`."""

from __future__ import annotations

from agentlog.errors import AgentlogError


class ReplayError(AgentlogError):
    """Root of every error raised by the replay tools."""


class KafkaReadError(ReplayError):
    """A topic could not be read back from the broker."""

    def __init__(self, topic: str, reason: str) -> None:
        self.topic = topic
        self.reason = reason
        super().__init__(f"cannot read {topic}: {reason}")


class ExportFormatError(ReplayError):
    """An export file (or its manifest) is not in the format ``replay export`` writes."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        where = f" line {line}" if line is not None else ""
        super().__init__(f"{path}{where}: {reason}")


class SelectionError(ReplayError):
    """An export or replay selection names something that does not exist (an agent with no tree)."""


class PolicyNameError(ReplayError):
    """No decision names the policy the gate enforced, and the log holds several."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            f"no decision names its policy and the log holds {len(names)} policies ({', '.join(names)}): "
            "pass --policy-name"
        )
