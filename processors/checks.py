"""The limit comparisons a decision records, and the outcome of a failed one."""

from __future__ import annotations

from typing import NamedTuple

from agentlog import events as ev
from agentlog.events.trusted import trusted

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_CACHED = 4096
"""Distinct checks kept for reuse (limits are few, values repeat); the cache starts over when full."""


class Denial(NamedTuple):
    """Why a request is refused: the reason code and the sentence shown to the agent."""

    reason: ev.DenialReason
    message: str


class Checks:
    """The comparisons of one decision, in the order the limits were compared: plain values while the core
    decides, ``LimitCheck`` records (:attr:`items`) once, for the decision it emits."""

    __slots__ = ("_made",)

    def __init__(self) -> None:
        self._made: list[tuple[str, int, int, bool]] = []

    def within(self, name: str, limit: int, value: int) -> bool:
        """Record ``value <= limit`` under ``name`` and return whether it held."""
        passed = value <= limit
        self._made.append((name, limit, value, passed))
        return passed

    @property
    def items(self) -> list[ev.LimitCheck]:
        """The ``LimitCheck`` list of the decision."""
        return [_limit_check(*made) for made in self._made]


_cache: dict[tuple[str, int, int, bool], ev.LimitCheck] = {}


def _limit_check(name: str, limit: int, value: int, passed: bool) -> ev.LimitCheck:
    """The ``LimitCheck`` of one comparison, shared by every decision that made the same one (it is frozen).

    The core is the only source of these values: ``name`` is one of its constants, ``limit`` and ``value``
    integers (clamped here to the Avro long's range: a sum may leave it), ``passed`` a comparison.
    """
    key = (name, limit, value, passed)
    made = _cache.get(key)
    if made is None:
        if len(_cache) >= _CACHED:
            _cache.clear()
        limit, value = min(max(limit, _INT64_MIN), _INT64_MAX), min(max(value, _INT64_MIN), _INT64_MAX)
        made = _cache[key] = trusted(ev.LimitCheck, {"name": name, "limit": limit, "value": value, "passed": passed})
    return made
