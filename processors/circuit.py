"""The circuit breaker of one agent tree.

Denied spawns are counted per tree; ``circuit_denials`` of them within
``circuit_window_ms`` open the circuit (``CircuitOpened``) for ``circuit_cooldown_ms``,
during which every spawn of the tree is denied with ``CIRCUIT_OPEN`` (those denials are
not counted). The circuit closes lazily: the first event of the tree at or after
``open_until`` emits ``CircuitClosed`` before it is decided.
"""

from __future__ import annotations

from agentlog import events as ev
from agentlog.processors.clock import MAX_MICROS, from_micros, iso
from agentlog.processors.emitter import Emitter
from agentlog.processors.tree_state import TreeState

_NOT_COUNTED = frozenset(
    {
        ev.DenialReason.CIRCUIT_OPEN,
        ev.DenialReason.DUPLICATE_REQUEST,
        ev.DenialReason.NO_POLICY,
        ev.DenialReason.TREE_FROZEN,
    }
)
"""Denials that do not feed the breaker: its own, redeliveries, the absence of any policy, a frozen tree's."""


def is_open(tree: TreeState, now: int) -> bool:
    """Whether the tree's circuit is open at ``now`` (µs)."""
    return tree.open_until is not None and now < tree.open_until


def close_if_due(tree: TreeState, now: int, out: Emitter, policy_version: int) -> None:
    """Emit ``CircuitClosed`` if the tree's cool-down has passed."""
    if tree.open_until is not None and now >= tree.open_until:
        tree.open_until = None
        out.emit(
            ev.CircuitClosed,
            policy_version=policy_version,
            message="Spawning is possible again in this agent tree: the circuit breaker's cool-down has passed.",
        )


def count_denial(
    tree: TreeState, reason: ev.DenialReason, now: int, limits: ev.Limits, out: Emitter, policy_version: int
) -> None:
    """Count a denial in the tree; open the circuit when the threshold is reached within the window."""
    if reason in _NOT_COUNTED:
        return
    window_start = now - limits.circuit_window_ms * 1000
    recent = [t for t in tree.denials or () if t > window_start]
    recent.append(now)
    recent = recent[-limits.circuit_denials :]
    if len(recent) < limits.circuit_denials:
        tree.denials = recent
        return
    tree.denials = None
    tree.open_until = min(now + limits.circuit_cooldown_ms * 1000, MAX_MICROS)
    out.emit(
        ev.CircuitOpened,
        denials=len(recent),
        threshold=limits.circuit_denials,
        window_ms=limits.circuit_window_ms,
        open_until=from_micros(tree.open_until),
        policy_version=policy_version,
        message=(
            f"This agent tree is frozen to new spawns until {iso(tree.open_until)}: {len(recent)} spawns were denied "
            f"within {limits.circuit_window_ms // 1000} s. Continue with the agents you have."
        ),
    )
