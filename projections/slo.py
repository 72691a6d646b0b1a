"""The proliferation SLOs of the dynamic-spawning pattern, computed from the projections over a time window.

=====================================  ==========================  ========================  ========
SLO                                    value over the window       target                    alert
=====================================  ==========================  ========================  ========
``spawn_policy_violation_rate``        denied spawn requests of    ≤ 1 %                     > 3 % P2
                                       all (denied + approved)
``child_completion_rate``              children (depth ≥ 1) that   ≥ 97 %                    < 93 % P2
                                       ended completed, of all
                                       that ended
``average_spawn_depth``                per tree with an agent      ≤ 2                       > 2.5 P3
                                       created in the window: its
                                       deepest agent; averaged
``concurrent_agents``                  the most agents active at   ≤ the policy's            any
                                       once (every depth, as the   ``max_active_platform``   breach P1
                                       policy counts them)         (per tenant with
                                                                   ``tenant``:
                                                                   ``max_active_per_tenant``)
=====================================  ==========================  ========================  ========

Times are the events' (``meta.occurred_at``): a decision's is its request's. Repeated answers and
another tenant's inputs are not counted (the lineage leaves them out). An agent is active from
the gate's approval (or a root's admission) until it ends. The limit is the one configured now: the
newest version of the policy the projections hold (``PolicyPublished``).
A value with nothing to measure (no spawn, nothing ended, no policy) is ``no data``, never a breach.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from agentlog.projections.db import Conn, one_row


class Status(StrEnum):
    """Where an SLO stands."""

    met = "met"
    missed = "missed"
    """Short of the target, not yet at the alert threshold."""
    alert = "alert"
    """Past the alert threshold: a breach."""
    no_data = "no data"


@dataclass(frozen=True)
class Objective:
    """One SLO: its target and alert threshold, and which way is better."""

    name: str
    title: str
    target: float
    alert: float
    higher_is_better: bool
    severity: str
    unit: str
    """``ratio`` (shown as a percentage), ``depth`` or ``agents``."""

    def status(self, value: float | None) -> Status:
        if value is None:
            return Status.no_data
        if self.higher_is_better:
            return Status.met if value >= self.target else Status.alert if value < self.alert else Status.missed
        return Status.met if value <= self.target else Status.alert if value > self.alert else Status.missed


VIOLATIONS = Objective("spawn_policy_violation_rate", "Spawn policy violation rate", 0.01, 0.03, False, "P2", "ratio")
COMPLETIONS = Objective("child_completion_rate", "Child agent completion rate", 0.97, 0.93, True, "P2", "ratio")
DEPTH = Objective("average_spawn_depth", "Average spawn depth per task", 2.0, 2.5, False, "P3", "depth")
CONCURRENCY_NAME = "concurrent_agents"


@dataclass(frozen=True)
class SloResult:
    """One SLO over one window."""

    objective: Objective
    value: float | None
    status: Status
    detail: str
    """The counts behind the value, in words."""


@dataclass(frozen=True)
class SloReport:
    """Every SLO over one window."""

    start: datetime
    end: datetime
    tenant: str | None
    policy: str
    results: list[SloResult]

    @property
    def breached(self) -> list[SloResult]:
        return [r for r in self.results if r.status is Status.alert]

    @property
    def missed(self) -> list[SloResult]:
        return [r for r in self.results if r.status in (Status.alert, Status.missed)]


def evaluate(
    conn: Conn, end: datetime, window: timedelta, tenant: str | None = None, policy: str = "default"
) -> SloReport:
    """The SLOs over ``[end - window, end)``, for one tenant or the whole platform."""
    start = end - window
    args: dict[str, Any] = {"start": start, "end": end, "tenant": tenant}
    return SloReport(
        start,
        end,
        tenant,
        policy,
        [
            _violations(conn, args),
            _completions(conn, args),
            _depth(conn, args),
            _concurrency(conn, args, tenant, policy),
        ],
    )


TENANT = "(%(tenant)s::text IS NULL OR tenant_id = %(tenant)s)"
"""The SQL condition of a query over one tenant's rows (``%(tenant)s`` NULL: every tenant's)."""


def _violations(conn: Conn, args: dict[str, Any]) -> SloResult:
    denied, approved = one_row(
        conn,
        f"""SELECT
            (SELECT count(*) FROM denied_spawns WHERE parent_agent_id IS NOT NULL AND {TENANT}
               AND occurred_at >= %(start)s AND occurred_at < %(end)s),
            (SELECT count(*) FROM agents WHERE depth >= 1 AND {TENANT}
               AND created_at >= %(start)s AND created_at < %(end)s)""",
        args,
    )
    attempts = denied + approved
    value = denied / attempts if attempts else None
    return SloResult(VIOLATIONS, value, VIOLATIONS.status(value), f"{denied} denied of {attempts} spawn requests")


def _completions(conn: Conn, args: dict[str, Any]) -> SloResult:
    completed, ended = one_row(
        conn,
        f"""SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FROM agents
            WHERE depth >= 1 AND status_rank = 3 AND {TENANT}
              AND status_at >= %(start)s AND status_at < %(end)s""",
        args,
    )
    value = completed / ended if ended else None
    return SloResult(COMPLETIONS, value, COMPLETIONS.status(value), f"{completed} completed of {ended} children ended")


def _depth(conn: Conn, args: dict[str, Any]) -> SloResult:
    trees, average, deepest = one_row(
        conn,
        f"""WITH touched AS (
              SELECT DISTINCT root_id FROM agents
              WHERE created_at >= %(start)s AND created_at < %(end)s AND status <> 'rejected' AND {TENANT})
            SELECT count(*), avg(d), max(d) FROM (
              SELECT max(a.depth) AS d FROM agents a JOIN touched t USING (root_id)
              WHERE a.status <> 'rejected' AND a.depth IS NOT NULL GROUP BY a.root_id) per_tree""",
        args,
    )
    value = float(average) if trees else None
    detail = f"{trees} trees, the deepest {deepest}" if trees else "no tree started"
    return SloResult(DEPTH, value, DEPTH.status(value), detail)


def _concurrency(conn: Conn, args: dict[str, Any], tenant: str | None, policy: str) -> SloResult:
    peak, at_start = one_row(
        conn,
        f"""WITH changes AS (
              SELECT created_at AS t, 1 AS d FROM agents
              WHERE created_at IS NOT NULL AND status <> 'rejected' AND {TENANT} AND created_at < %(end)s
              UNION ALL
              SELECT status_at, -1 FROM agents
              WHERE created_at IS NOT NULL AND status_rank = 3 AND status <> 'rejected' AND {TENANT}
                AND status_at < %(end)s),
            running AS (SELECT t, sum(d) OVER (ORDER BY t, d ROWS UNBOUNDED PRECEDING) AS active FROM changes)
            SELECT coalesce(max(active) FILTER (WHERE t >= %(start)s), 0),
                   coalesce((SELECT active FROM running WHERE t < %(start)s ORDER BY t DESC, active LIMIT 1), 0)
            FROM running""",
        args,
    )
    peak = max(int(peak), int(at_start))
    limit_name = "max_active_per_tenant" if tenant is not None else "max_active_platform"
    limit = _limit(conn, policy, limit_name)
    scope = f"tenant {tenant}" if tenant is not None else "the platform"
    objective = Objective(
        CONCURRENCY_NAME,
        f"Concurrent agents ({scope})",
        float(limit or 0),
        float(limit or 0),
        False,
        "P1",
        "agents",
    )
    if not limit:  # no policy, or 0: unlimited
        why = f"no {limit_name} in force" if limit == 0 else f"no version of policy {policy!r} projected"
        return SloResult(objective, float(peak), Status.no_data, f"peak {peak}; {why}")
    status = Status.alert if peak > limit else Status.met
    return SloResult(objective, float(peak), status, f"peak {peak} of {limit_name} {limit}")


def _limit(conn: Conn, policy: str, name: str) -> int | None:
    row = conn.execute(
        """SELECT (value->'limits'->>%(name)s)::bigint FROM audit_log
           WHERE record_name = 'agentlog.policy.PolicyPublished' AND value->>'policy_name' = %(policy)s
           ORDER BY (value->>'version')::int DESC LIMIT 1""",
        {"name": name, "policy": policy},
    ).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else None
