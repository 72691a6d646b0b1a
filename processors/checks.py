"""The limit comparisons a decision records, and the outcome of a failed one."""

from __future__ import annotations

from typing import NamedTuple

from agentlog import events as ev

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class Denial(NamedTuple):
    """Why a request is refused: the reason code and the sentence shown to the agent."""

    reason: ev.DenialReason
    message: str


class Checks:
    """The ``LimitCheck`` list of one decision, in the order the limits were compared."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[ev.LimitCheck] = []

    def within(self, name: str, limit: int, value: int) -> bool:
        """Record ``value <= limit`` under ``name`` and return whether it held."""
        passed = value <= limit
        recorded = min(max(value, _INT64_MIN), _INT64_MAX)  # a sum may leave the Avro long's range
        self.items.append(ev.LimitCheck(name=name, limit=limit, value=recorded, passed=passed))
        return passed
