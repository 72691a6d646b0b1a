"""The spawn depth and budget utilisation report a governance board reads weekly, from the projections.

:func:`gather` reads the numbers of one period; :func:`markdown` writes them as a report, and
:func:`charts` draws its pictures (SVG: the agents by depth, the spawns and denials of each day,
the budget utilisation of the agents that ended). The report names what a board acts on: the
SLOs of the period and of each day, the deepest trees and the largest ones (proliferation
risks), the parents denied most often (a misconfigured parent), the denial reasons, and how
much of what was granted was spent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agentlog.projections.db import Conn, one_row
from agentlog.projections.slo import TENANT, SloReport, Status, evaluate
from agentlog.projections.slo_render import cells, number
from agentlog.projections.svg_chart import Series, bar_chart

UTILISATION_BUCKETS = ("0-25 %", "25-50 %", "50-75 %", "75-100 %", "over 100 %")
TOP = 10
_TENANT_A = TENANT.replace("tenant_id", "a.tenant_id")


@dataclass
class Day:
    day: str
    approved: int
    denied: int
    slos: SloReport


@dataclass
class GovernanceReport:
    """The numbers of one period."""

    start: datetime
    end: datetime
    tenant: str | None
    trees: int = 0
    spawned: int = 0
    denied: int = 0
    tokens_granted: int = 0
    tokens_spent: int = 0
    by_depth: list[tuple[int, int]] = field(default_factory=list)
    reasons: list[tuple[str, int]] = field(default_factory=list)
    deepest: list[tuple[str, str, int, int]] = field(default_factory=list)
    """(root id, tenant, depth, agents), deepest first."""
    largest: list[tuple[str, str, int, int]] = field(default_factory=list)
    """(root id, tenant, agents, depth), largest first."""
    denied_parents: list[tuple[str, str, int, int]] = field(default_factory=list)
    """(agent id, config, denied, approved), most denied first."""
    utilisation: list[int] = field(default_factory=list)
    """Ended agents per :data:`UTILISATION_BUCKETS` (tokens spent of tokens granted)."""
    by_config: list[tuple[str, int, int, int]] = field(default_factory=list)
    """(config, agents, tokens granted, tokens spent), most granted first."""
    days: list[Day] = field(default_factory=list)
    slos: SloReport | None = None


def gather(
    conn: Conn, start: datetime, end: datetime, tenant: str | None = None, policy: str = "default"
) -> GovernanceReport:
    """Every number of the report over ``[start, end)``."""
    args: dict[str, Any] = {"start": start, "end": end, "tenant": tenant}
    report = GovernanceReport(start, end, tenant)
    in_period = f"created_at >= %(start)s AND created_at < %(end)s AND status <> 'rejected' AND {TENANT}"
    report.trees, report.spawned, report.tokens_granted, report.tokens_spent = (
        int(v or 0)
        for v in one_row(
            conn,
            f"""SELECT count(*) FILTER (WHERE depth = 0), count(*) FILTER (WHERE depth >= 1),
                       sum(token_budget) FILTER (WHERE depth >= 1), sum(tokens_consumed) FILTER (WHERE depth >= 1)
                FROM agents WHERE {in_period}""",
            args,
        )
    )
    denied_in_period = (
        f"parent_agent_id IS NOT NULL AND occurred_at >= %(start)s AND occurred_at < %(end)s AND {TENANT}"
    )
    report.denied = int(one_row(conn, f"SELECT count(*) FROM denied_spawns WHERE {denied_in_period}", args)[0])
    report.by_depth = _rows(
        conn, f"SELECT depth, count(*) FROM agents WHERE {in_period} AND depth IS NOT NULL GROUP BY 1 ORDER BY 1", args
    )
    report.reasons = _rows(
        conn, f"SELECT reason, count(*) FROM denied_spawns WHERE {denied_in_period} GROUP BY 1 ORDER BY 2 DESC, 1", args
    )
    trees = f"""WITH touched AS (SELECT DISTINCT root_id FROM agents WHERE {in_period})
        SELECT a.root_id, min(a.tenant_id), max(a.depth), count(*) FROM agents a JOIN touched USING (root_id)
        WHERE a.status <> 'rejected' GROUP BY a.root_id"""
    report.deepest = _rows(conn, f"{trees} ORDER BY 3 DESC, 4 DESC, 1 LIMIT {TOP}", args)
    report.largest = [
        (root, who, agents, depth)
        for root, who, depth, agents in _rows(conn, f"{trees} ORDER BY 4 DESC, 3 DESC, 1 LIMIT {TOP}", args)
    ]
    report.denied_parents = _rows(
        conn,
        f"""SELECT d.parent_agent_id, coalesce(p.config, ''), count(*),
                   (SELECT count(*) FROM agents c WHERE c.parent_id = d.parent_agent_id
                      AND c.created_at >= %(start)s AND c.created_at < %(end)s)
            FROM denied_spawns d LEFT JOIN agents p ON p.agent_id = d.parent_agent_id
            WHERE d.parent_agent_id IS NOT NULL AND d.occurred_at >= %(start)s AND d.occurred_at < %(end)s
              AND (%(tenant)s::text IS NULL OR d.tenant_id = %(tenant)s)
            GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT {TOP}""",
        args,
    )
    buckets = dict(
        _rows(
            conn,
            f"""SELECT width_bucket(a.tokens_consumed::float8 / a.token_budget, 0, 1, 4), count(*) FROM agents a
                WHERE a.depth >= 1 AND a.status_rank = 3 AND a.token_budget > 0 AND {_TENANT_A}
                  AND a.status_at >= %(start)s AND a.status_at < %(end)s GROUP BY 1""",
            args,
        )
    )
    report.utilisation = [
        int(buckets.get(1, 0)) + int(buckets.get(0, 0)),
        int(buckets.get(2, 0)),
        int(buckets.get(3, 0)),
        int(buckets.get(4, 0)),
        int(buckets.get(5, 0)),
    ]
    report.by_config = _rows(
        conn,
        f"""SELECT config, count(*), coalesce(sum(token_budget), 0), coalesce(sum(tokens_consumed), 0) FROM agents
            WHERE {in_period} AND depth >= 1 GROUP BY 1 ORDER BY 3 DESC, 1 LIMIT {TOP}""",
        args,
    )
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        after = min(day + timedelta(days=1), end)
        since = max(day, start)
        counts = {"start": since, "end": after, "tenant": tenant}
        approved = int(one_row(conn, f"SELECT count(*) FROM agents WHERE depth >= 1 AND {in_period}", counts)[0])
        denied = int(one_row(conn, f"SELECT count(*) FROM denied_spawns WHERE {denied_in_period}", counts)[0])
        slos = evaluate(conn, after, after - since, tenant, policy)
        report.days.append(Day(f"{day:%a %d %b}", approved, denied, slos))
        day = after
    report.slos = evaluate(conn, end, min(timedelta(days=1), end - start), tenant, policy)
    return report


def charts(report: GovernanceReport) -> dict[str, str]:
    """The report's pictures, by file name."""
    depths = [str(d) for d, _ in report.by_depth]
    return {
        "depth.svg": bar_chart(
            "Agents by spawn depth", depths, [Series("agents", [n for _, n in report.by_depth])], y_label="agents"
        ),
        "spawns.svg": bar_chart(
            "Spawn requests per day",
            [d.day for d in report.days],
            [
                Series("approved", [d.approved for d in report.days], "#3b6ea8"),
                Series("denied", [d.denied for d in report.days], "#d1603d"),
            ],
            y_label="requests",
        ),
        "utilisation.svg": bar_chart(
            "Budget utilisation of the agents that ended (tokens spent of granted)",
            list(UTILISATION_BUCKETS),
            [Series("agents", report.utilisation, "#6a9f58")],
            y_label="agents",
        ),
    }


def markdown(report: GovernanceReport, pictures: dict[str, str] | None = None) -> str:
    """The report as Markdown; ``pictures`` (file names) are linked where they read better than a table."""
    scope = f"tenant `{report.tenant}`" if report.tenant else "the platform"
    pictures = pictures or {}
    attempts = report.spawned + report.denied
    lines = [
        f"# Spawn depth and budget utilisation: {scope}",
        "",
        f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC.",
        "",
        "## Summary",
        "",
        "| | |",
        "|---|---|",
        f"| trees started | {report.trees:,} |",
        f"| child agents spawned | {report.spawned:,} |",
        f"| spawn requests denied | {report.denied:,} ({_percent(report.denied, attempts)} of {attempts:,}) |",
        f"| deepest tree | {max((d for d, _ in report.by_depth), default=0)} |",
        f"| tokens granted to children | {report.tokens_granted:,} |",
        f"| tokens they spent | {report.tokens_spent:,} ({_percent(report.tokens_spent, report.tokens_granted)}) |",
        "",
    ]
    if report.slos is not None:
        lines += [f"## SLOs over the last {_span(report.slos.end - report.slos.start)}", ""]
        lines += _slo_table(report.slos)
    lines += ["## Each day", "", "| day | approved | denied | violation rate | completion rate | average depth |"]
    lines.append("|---|---|---|---|---|---|")
    for day in report.days:
        values = [number(r.objective, r.value) for r in day.slos.results[:3]]
        lines.append(f"| {day.day} | {day.approved:,} | {day.denied:,} | {' | '.join(values)} |")
    lines.append("")
    if "spawns.svg" in pictures:
        lines += ["![Spawn requests per day](spawns.svg)", ""]
    lines += ["## Spawn depth", ""]
    if "depth.svg" in pictures:
        lines += ["![Agents by spawn depth](depth.svg)", ""]
    lines += ["| depth | agents |", "|---|---|"] + [f"| {d} | {n:,} |" for d, n in report.by_depth] + [""]
    lines += ["### The deepest trees", "", "| tree | tenant | depth | agents |", "|---|---|---|---|"]
    lines += [f"| `{r}` | {t} | {d} | {n:,} |" for r, t, d, n in report.deepest] + [""]
    lines += ["### The largest trees", "", "| tree | tenant | agents | depth |", "|---|---|---|---|"]
    lines += [f"| `{r}` | {t} | {n:,} | {d} |" for r, t, n, d in report.largest] + [""]
    lines += ["## Denials", "", "| reason | denied |", "|---|---|"]
    lines += [f"| {reason} | {n:,} |" for reason, n in report.reasons] + [""]
    lines += [
        "### Parents denied most often (a parent agent may be misconfigured)",
        "",
        "| agent | config | denied | approved |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{a}` | {c} | {d:,} | {ok:,} |" for a, c, d, ok in report.denied_parents] + [""]
    lines += ["## Budget utilisation", ""]
    if "utilisation.svg" in pictures:
        lines += ["![Budget utilisation](utilisation.svg)", ""]
    lines += ["| tokens spent of granted | agents that ended |", "|---|---|"]
    lines += [f"| {b} | {n:,} |" for b, n in zip(UTILISATION_BUCKETS, report.utilisation, strict=True)] + [""]
    lines += ["| config | agents | tokens granted | tokens spent | spent |", "|---|---|---|---|---|"]
    lines += [f"| {c} | {n:,} | {g:,} | {s:,} | {_percent(s, g)} |" for c, n, g, s in report.by_config] + [""]
    return "\n".join(lines)


def _slo_table(slos: SloReport) -> list[str]:
    lines = ["| SLO | value | target | alert | status | from |", "|---|---|---|---|---|---|"]
    for r in slos.results:
        value, target, alert = cells(r)
        status = f"**{r.status.value}**" if r.status is Status.alert else r.status.value
        lines.append(f"| {r.objective.title} | {value} | {target} | {alert} | {status} | {r.detail} |")
    return [*lines, ""]


def _percent(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f} %" if whole else "-"


def _span(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours"


def _rows(conn: Conn, query: str, args: dict[str, Any]) -> list[Any]:
    return [tuple(row) for row in conn.execute(query, args).fetchall()]
