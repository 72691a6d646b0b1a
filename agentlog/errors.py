"""The exceptions of the agentlog core; every one derives from :class:`AgentlogError`."""

from __future__ import annotations


class AgentlogError(Exception):
    """Root of every error raised by agentlog."""


class SchemaError(AgentlogError):
    """A schema file is missing, malformed or refers to an unknown type."""


class UnknownRecordError(AgentlogError):
    """A record name matches no schema of the contract."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown record {name!r}; known records: {', '.join(known)}")


class PayloadError(AgentlogError):
    """An event payload does not satisfy its schema.

    ``problems`` lists ``(field path, reason)`` pairs, the field path dotted
    (``meta.root_id``, ``task.acceptance_criteria.0``).
    """

    def __init__(self, record: str, problems: list[tuple[str, str]], line: int | None = None) -> None:
        self.record = record
        self.problems = problems
        self.line = line
        where = f" (input line {line})" if line is not None else ""
        detail = "; ".join(f"{path}: {reason}" for path, reason in problems)
        super().__init__(f"invalid {record}{where}: {detail}")


class DecodeError(AgentlogError):
    """Bytes on a topic could not be decoded into an event of the contract."""


class DeliveryError(AgentlogError):
    """The broker did not acknowledge a record: it may not be published, or it may still be delivered.

    librdkafka cannot prove that a record in flight was not written, so publish again only
    what is idempotent: a request with the *same* request id (the gate answers a repeat
    with its original outcome), never a new one. ``retriable`` says whether trying again
    can help (a timeout or a transient broker error), as opposed to a record that can
    never be written (too large, unknown topic, not authorised).
    """

    def __init__(self, message: str, *, topic: str | None = None, retriable: bool = False) -> None:
        self.topic = topic
        self.retriable = retriable
        super().__init__(message)


class CompatibilityError(AgentlogError):
    """A schema change breaks backward or forward compatibility."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("incompatible schema change:\n  " + "\n  ".join(problems))


class TelemetryConfigError(AgentlogError):
    """An ``OTEL_*`` or ``AGENTLOG_METRICS_PORT`` variable names something agentlog cannot set up."""
