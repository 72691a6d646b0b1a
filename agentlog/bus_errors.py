"""The consultation bus's errors, as the SDK raises them (:mod:`agentlog.bus_client`)."""

from __future__ import annotations

from agentlog import events as ev
from agentlog.errors import AgentlogError

__all__ = ["BusTimeout", "MessageRefused", "QuestionExpired", "RequestExpired"]


class MessageRefused(AgentlogError):
    """The bus rejected a message; ``rejection`` holds the reason code (``reason``) and the bus's sentence."""

    def __init__(self, rejection: ev.MessageRejected) -> None:
        self.rejection = rejection
        self.reason = rejection.reason
        what = rejection.kind.name.lower() if rejection.kind is not ev.MessageKind.UNKNOWN else "message"
        super().__init__(
            f"the bus rejected {what} {rejection.message_id} from {rejection.from_agent_id!r}"
            f" ({rejection.reason.name}): {rejection.message}"
        )


class RequestExpired(AgentlogError):
    """The bus reported a request past its ``reply_by``; ``expired`` holds the fact (with the replies it got)."""

    def __init__(self, expired: ev.MessageExpired) -> None:
        self.expired = expired
        super().__init__(f"request {expired.message_id} expired: {expired.message}")


class QuestionExpired(AgentlogError):
    """The bus reported a question undecided at the root (``expired`` holds the fact, with its escalations)."""

    def __init__(self, expired: ev.MessageExpired) -> None:
        self.expired = expired
        super().__init__(f"question {expired.message_id} expired undecided: {expired.message}")


class BusTimeout(AgentlogError):
    """No answer in time (is `agentlog processors run --processor bus` running?)."""
