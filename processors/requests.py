"""Checks shared by spawn requests and root registrations: validity, capabilities, grants, quotas, deadlines."""

from __future__ import annotations

from agentlog import events as ev
from agentlog.processors.checks import Checks, Denial
from agentlog.processors.clock import MAX_MICROS, to_micros
from agentlog.processors.tree_state import PartitionState

_INVALID = ev.DenialReason.INVALID_REQUEST
MAX_RUNTIME_MS = 10 * 365 * 24 * 3600 * 1000
"""Longest runtime an agent may ask for (ten years): deadlines must stay representable."""


def invalid_request(
    prefix: str, token_budget: int, spawn_budget: int, max_runtime_ms: int | None, task: ev.TaskSpec | None, now: int
) -> Denial | None:
    """A denial for budgets or limits that make no sense, whatever the policy."""
    if token_budget < 0:
        return Denial(_INVALID, f"{prefix}: the token budget must not be negative (got {token_budget}).")
    if spawn_budget < 0:
        return Denial(_INVALID, f"{prefix}: the spawn budget must not be negative (got {spawn_budget}).")
    if max_runtime_ms is not None and not 0 < max_runtime_ms <= MAX_RUNTIME_MS:
        return Denial(
            _INVALID, f"{prefix}: the maximum runtime must be between 1 and {MAX_RUNTIME_MS} ms (got {max_runtime_ms})."
        )
    if task is not None and task.deadline is not None and to_micros(task.deadline) <= now:
        return Denial(_INVALID, f"{prefix}: the task's deadline has already passed.")
    return None


def forbidden_capabilities(prefix: str, checks: Checks, rule: ev.ConfigRule, capabilities: list[str]) -> Denial | None:
    """A denial when any requested capability is forbidden to the config."""
    forbidden = sorted(set(capabilities).intersection(rule.forbidden_actions)) if capabilities else []
    if checks.within("forbidden_capabilities", 0, len(forbidden)):
        return None
    return Denial(
        ev.DenialReason.FORBIDDEN_ACTION,
        f"{prefix}: config '{rule.name}' may never be given {', '.join(forbidden)}. "
        "Ask for it without these capabilities.",
    )


def grant_limits(prefix: str, checks: Checks, rule: ev.ConfigRule, tokens: int, spawns: int) -> Denial | None:
    """A denial when the budgets asked for exceed what the config may be granted."""
    if not checks.within("max_token_grant", rule.max_token_grant, tokens):
        return Denial(
            ev.DenialReason.GRANT_TOO_LARGE,
            f"{prefix}: config '{rule.name}' may be granted at most {rule.max_token_grant} tokens; {tokens} requested.",
        )
    if not checks.within("max_spawn_grant", rule.max_spawn_grant, spawns):
        return Denial(
            ev.DenialReason.GRANT_TOO_LARGE,
            f"{prefix}: config '{rule.name}' may be granted a spawn budget of at most {rule.max_spawn_grant}; "
            f"{spawns} requested.",
        )
    return None


def quotas(prefix: str, checks: Checks, state: PartitionState, tenant_id: str, limits: ev.Limits) -> Denial | None:
    """A denial when one more active agent would exceed this partition's tenant or platform quota."""
    tenant_quota = state.quota(limits.max_active_per_tenant)
    if not checks.within("tenant_partition_quota", tenant_quota, state.active_of(tenant_id) + 1):
        return Denial(
            ev.DenialReason.TENANT_CONCURRENCY,
            f"{prefix}: tenant '{tenant_id}' already has {state.active_of(tenant_id)} active agents here "
            f"(quota {tenant_quota} of {limits.max_active_per_tenant}). Wait for some to finish.",
        )
    platform_quota = state.quota(limits.max_active_platform)
    if not checks.within("platform_partition_quota", platform_quota, state.active_total + 1):
        return Denial(
            ev.DenialReason.PLATFORM_CONCURRENCY,
            f"{prefix}: the platform already runs {state.active_total} active agents here "
            f"(quota {platform_quota} of {limits.max_active_platform}). Wait for some to finish.",
        )
    return None


def deadline_for(
    now: int, max_runtime_ms: int | None, task: ev.TaskSpec | None, limits: ev.Limits, cap: int | None
) -> int:
    """When a new agent times out (µs): its runtime limit, its task's deadline and ``cap``, whichever is first."""
    runtime_ms = max_runtime_ms if max_runtime_ms is not None else limits.default_max_runtime_ms
    deadline = now + runtime_ms * 1000
    if task is not None and task.deadline is not None:
        deadline = min(deadline, to_micros(task.deadline))
    if cap is not None:
        deadline = min(deadline, cap)
    return min(deadline, MAX_MICROS)
