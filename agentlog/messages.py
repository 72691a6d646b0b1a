"""The six message records of the consultation bus, their kinds and who sends each: one table for the bus's core,
the SDK and the projections."""

from __future__ import annotations

from agentlog import events as ev

Message = ev.AgentRequest | ev.AgentReply | ev.AgentQuestion | ev.DecisionRecorded | ev.AgentAlert | ev.Handoff

_K = ev.MessageKind
KINDS: dict[type[ev.Event], ev.MessageKind] = {
    ev.AgentRequest: _K.REQUEST,
    ev.AgentReply: _K.REPLY,
    ev.AgentQuestion: _K.QUESTION,
    ev.DecisionRecorded: _K.DECISION,
    ev.AgentAlert: _K.ALERT,
    ev.Handoff: _K.HANDOFF,
}
"""The kind of each message record."""
MESSAGE_TYPES: tuple[type[ev.Event], ...] = tuple(KINDS)
"""The records the bus answers, each with exactly one fact."""
KINDS_BY_NAME: dict[str, str] = {t.avro_name: kind.value for t, kind in KINDS.items()}
"""The kind of each message record, by Avro full name (for readers of decoded values)."""


def sender(message: Message) -> str:
    """Who sent ``message``: a decision's ``decided_by``, else its ``from_agent_id``."""
    return message.decided_by if isinstance(message, ev.DecisionRecorded) else message.from_agent_id
