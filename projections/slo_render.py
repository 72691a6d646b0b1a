"""SLO results as text: a rich table, JSON, and each value as people read it."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from agentlog.projections.slo import Objective, SloReport, SloResult, Status

STATUS_STYLE = {Status.met: "green", Status.missed: "yellow", Status.alert: "bold red", Status.no_data: "dim"}


def number(objective: Objective, value: float | None) -> str:
    """A value in the SLO's unit: a percentage, a depth, a count of agents."""
    if value is None:
        return "-"
    if objective.unit == "ratio":
        return f"{value * 100:.2f} %"
    if objective.unit == "depth":
        return f"{value:.2f}"
    return f"{value:.0f}"


def bound(objective: Objective, value: float, alert: bool = False) -> str:
    """The target (or the alert threshold) with its direction: ``≤ 1.00 %``, ``< 93.00 %``."""
    if objective.name == "concurrent_agents":
        return "any breach" if alert else f"≤ {value:.0f}"
    if alert:
        return ("< " if objective.higher_is_better else "> ") + number(objective, value)
    return ("≥ " if objective.higher_is_better else "≤ ") + number(objective, value)


def cells(result: SloResult) -> tuple[str, str, str]:
    """The value, the target and the alert threshold of one result as they are shown (no bounds without a limit)."""
    objective = result.objective
    limit_known = result.status is not Status.no_data or objective.name != "concurrent_agents"
    target = bound(objective, objective.target) if limit_known else "-"
    alert = f"{bound(objective, objective.alert, alert=True)} ({objective.severity})" if limit_known else "-"
    return number(objective, result.value), target, alert


def slo_table(report: SloReport) -> Table:
    scope = f"tenant {report.tenant}" if report.tenant else "the platform"
    table = Table(
        title=f"SLOs of {scope}, {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC",
        title_justify="left",
    )
    for column in ("SLO", "value", "target", "alert", "status", "from"):
        table.add_column(column)
    for result in report.results:
        table.add_row(
            result.objective.title,
            *cells(result),
            f"[{STATUS_STYLE[result.status]}]{result.status.value}[/]",
            result.detail,
        )
    return table


def slo_json(report: SloReport) -> str:
    return json.dumps(
        {
            "start": report.start.isoformat(),
            "end": report.end.isoformat(),
            "tenant": report.tenant,
            "policy": report.policy,
            "breached": [r.objective.name for r in report.breached],
            "slos": [_result(r) for r in report.results],
        },
        indent=2,
    )


def _result(result: SloResult) -> dict[str, Any]:
    objective = result.objective
    return {
        "slo": objective.name,
        "title": objective.title,
        "value": result.value,
        "target": objective.target,
        "alert": objective.alert,
        "higher_is_better": objective.higher_is_better,
        "severity": objective.severity,
        "status": result.status.value,
        "detail": result.detail,
    }


def breach_message(report: SloReport) -> str:
    """One line naming every breached SLO, for stderr."""
    named = ", ".join(
        f"{r.objective.name} {number(r.objective, r.value)} ({bound(r.objective, r.objective.alert, alert=True)},"
        f" {r.objective.severity})"
        for r in report.breached
    )
    return f"SLO breached: {named}"
