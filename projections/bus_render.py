"""Bus results as text: rich tables, JSON (durations in seconds), and the decision log as a Markdown report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from agentlog.projections.bus import BusStats, DecisionLog, Message, Question
from agentlog.projections.render import plain

STATE_STYLE = {
    "pending": "yellow",
    "accepted": "cyan",
    "acknowledged": "green",
    "replied": "green",
    "decided": "bold green",
    "escalated": "magenta",
    "expired": "red",
    "rejected": "bold red",
    "open": "cyan",
}
PRIORITY_STYLE = {"CRITICAL": "bold red", "HIGH": "yellow", "NORMAL": "", "LOW": "dim"}
_SUMMARY_CHARS = 60


def bus_json(value: Any) -> str:
    """Indented JSON of a bus result; a duration ``x`` becomes ``x_s``, its seconds."""
    return json.dumps(_seconds(plain(value)), indent=2, ensure_ascii=False)


def _seconds(value: Any) -> Any:
    if isinstance(value, list):
        return [_seconds(v) for v in value]
    if isinstance(value, dict):
        return {
            f"{k}_s" if isinstance(v, timedelta) else k: v.total_seconds() if isinstance(v, timedelta) else _seconds(v)
            for k, v in value.items()
        }
    return value


def duration(span: timedelta | None) -> str:
    """``span`` for a reader: 850 ms, 42s, 3m 05s, 2h 04m, 3d 07h."""
    if span is None:
        return "-"
    seconds = span.total_seconds()
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    whole = int(seconds)
    for unit, size, smaller, small in (("d", 86_400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if whole >= size:
            return f"{whole // size}{unit} {whole % size // small:02d}{smaller}"
    return f"{whole}s"


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else "-"


def _state(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'yellow')}]{state}[/]"


def _priority(priority: str | None) -> str:
    if priority is None:
        return "-"
    style = PRIORITY_STYLE.get(priority, "")
    return f"[{style}]{priority}[/]" if style else priority


def _clip(text: str, most: int = _SUMMARY_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= most else flat[: most - 1] + "…"


def _to(m: Message) -> str:
    if m.broadcast:
        return "(everyone)"
    if m.recipients:
        return ", ".join(m.recipients)
    if m.state == "pending" or not m.accepted:
        return m.to_agent_id or "-"
    return "(operators)" if m.kind == "QUESTION" else "-"


def _outcome(m: Message) -> str:
    if not m.accepted and m.state == "rejected":
        return f"{_state('rejected')} [red]{escape(m.reason or '?')}[/]"
    text = _state(m.state)
    if m.escalation_level and m.state == "escalated":
        text += f" level {m.escalation_level} → {escape(m.recipient or '(operators)')}"
    elif m.escalation_level:
        text += f" at level {m.escalation_level}"
    if m.replies > 1:
        text += f" ({m.replies} replies)"
    return text


def _acknowledged(m: Message) -> str:
    if not m.accepted:
        return "-"
    acked = sum(1 for d in m.deliveries if d.acknowledged_at is not None)
    return f"{acked} acked" if m.broadcast else f"{acked}/{len(m.deliveries)}"


def messages_table(messages: list[Message], title: str) -> Table:
    """Messages as a table, one row each: when, who to whom, what, and what became of it."""
    table = Table("at", "kind", "from", "to", "priority", "summary", "state", "acked", title=title)
    for m in messages:
        table.add_row(
            _when(m.answered_at or m.sent_at),
            m.kind,
            escape(m.from_agent_id),
            escape(_to(m)),
            _priority(m.priority),
            escape(_clip(m.summary)),
            _outcome(m),
            _acknowledged(m),
        )
    return table


def questions_table(questions: list[Question], title: str) -> Table:
    """Questions as a table: asker, whom it waits for now, escalations, deadline, age and status."""
    table = Table("asked", "question", "asker", "waiting for", "level", "decide by", "age", "status", title=title)
    for q in questions:
        status = _state(q.status) + (" [bold red]overdue[/]" if q.overdue else "")
        if q.status == "decided":
            status += f" by {escape(q.decided_by or '?')}"
        table.add_row(
            _when(q.asked_at),
            escape(_clip(q.question)),
            escape(q.asker),
            escape(q.recipient or "(operators)") if q.status == "open" else "-",
            str(q.escalation_level),
            _when(q.decide_by),
            duration(q.age),
            status,
        )
    return table


def decision_log_pretty(log: DecisionLog) -> Group:
    """The decision log as tables: the decisions, then refused decisions and expired questions (if any)."""
    table = Table(
        "decided", "question", "asker", "decided by", "choice", "rationale", "impact", "took",
        title=f"decision log of {log.root_id}",
    )  # fmt: skip
    for d in log.decisions:
        impact = "; ".join([d.impact] * bool(d.impact) + [f"{k}: {v}" for k, v in sorted(d.impact_details.items())])
        table.add_row(
            _when(d.decided_at),
            escape(_clip(d.question or "?", 40)),
            escape(d.asker or "?"),
            escape(d.decided_by),
            f"[bold]{escape(_clip(d.choice, 30))}[/]",
            escape(_clip(d.rationale, 40)),
            escape(_clip(impact, 40)),
            duration(d.time_to_decide),
        )
    parts: list[Any] = [table]
    if log.refused:
        refused = Table("when", "question", "by", "choice", "reason", title="refused decisions")
        for r in log.refused:
            refused.add_row(
                _when(r.answered_at),
                str(r.question_id or "-"),
                escape(r.decided_by),
                escape(_clip(r.choice, 30)),
                f"[red]{escape(r.reason or '?')}[/] {escape(_clip(r.reason_message, 80))}",
            )
        parts.append(refused)
    if log.expired:
        parts.append(questions_table(log.expired, "questions that expired undecided"))
    return Group(*parts)


def stats_pretty(stats: BusStats) -> Group:
    """The statistics as a summary line and tables: per kind and state, rejections, pending per agent."""
    states = sorted({s for per in stats.by_kind.values() for s in per}, key=lambda s: (s not in STATE_STYLE, s))
    kinds = Table("kind", *states, "total", title=f"messages of {stats.root_id}")
    for kind, per in sorted(stats.by_kind.items()):
        kinds.add_row(kind, *(str(per.get(s, 0)) for s in states), str(sum(per.values())))
    head = (
        f"[bold]{stats.messages}[/] messages · {stats.open_questions} open questions"
        f" ({stats.overdue_questions} overdue) · {stats.decisions_recorded} decisions recorded,"
        f" {stats.decisions_refused} refused · median time to decide {duration(stats.median_time_to_decide)}"
    )
    parts: list[Any] = [head, kinds]
    if stats.rejected_by_reason:
        reasons = Table("reason", "rejected", title="rejections")
        for reason, count in stats.rejected_by_reason.items():
            reasons.add_row(f"[red]{escape(reason)}[/]", str(count))
        parts.append(reasons)
    pending = Table("agent", "unacknowledged", title="pending per agent")
    for agent, count in stats.pending_per_agent.items():
        pending.add_row(escape(agent), str(count))
    parts.append(pending)
    return Group(*parts)


_MD_ESCAPED = {c: "\\" + c for c in "\\`*_[]|~#"} | {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\n": "<br>", "\r": ""}


def md(text: str) -> str:
    """``text`` as itself in Markdown, on one line: no character of it can open markup, HTML or a new line."""
    return "".join(_MD_ESCAPED.get(c, c) for c in text)


def _md_when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "unknown"


def decision_log_markdown(log: DecisionLog) -> str:
    """The decision log as a Markdown report to keep: a summary, each decision in full, the refusals, and the
    questions that expired undecided."""
    lines = [
        f"# Decision log of tree {md(log.root_id)}",
        "",
        "| | |",
        "|---|---|",
        f"| Tree | {md(log.root_id)} |",
        f"| Tenant | {md(log.tenant_id or 'unknown')} |",
        f"| Report generated | {_md_when(log.generated_at)} |",
        f"| Decisions recorded | {len(log.decisions)} |",
        f"| Decisions refused | {len(log.refused)} |",
        f"| Questions expired undecided | {len(log.expired)} |",
        f"| Median time to decide | {duration(log.median_time_to_decide)} |",
        "",
        "Every decision below was accepted by the consultation bus (a fact on `agentlog.message.events`): it"
        " answered an open question, once, from an agent the policy lets decide it. Times are the bus's record"
        " times (UTC).",
    ]
    for n, d in enumerate(log.decisions, 1):
        escalated = str(d.escalation_level) if d.escalation_level else "none"
        lines += [
            "",
            f"## {n}. {md(d.question or '(question not projected)')}",
            "",
            f"- **Asked by:** {md(d.asker or 'unknown')}, {_md_when(d.asked_at)}"
            + (f", to {md(d.first_recipient)}" if d.first_recipient else ", to the operators"),
            f"- **Options:** {'; '.join(md(o) for o in d.options) if d.options else 'open answer'}",
            f"- **Escalations:** {escalated}",
            f"- **Decided by:** {md(d.decided_by)}, {_md_when(d.decided_at)} (after {duration(d.time_to_decide)})",
            f"- **Choice:** {md(d.choice)}",
            f"- **Rationale:** {md(d.rationale) or 'none given'}",
            f"- **Impact:** {md(d.impact) or 'none given'}",
        ]
        if d.impact_details:
            lines += ["", "| Impact | Detail |", "|---|---|"]
            lines += [f"| {md(k)} | {md(v)} |" for k, v in sorted(d.impact_details.items())]
        lines += [
            "",
            f"Question `{d.question_id}` · decision `{d.decision_id}` · priority {d.priority} · policy version"
            f" {d.policy_version}",
        ]
    if log.refused:
        lines += ["", "## Refused decisions", "", "| When | Question | By | Choice | Reason |", "|---|---|---|---|---|"]
        for r in log.refused:
            lines.append(
                f"| {_md_when(r.answered_at)} | `{r.question_id or '-'}` | {md(r.decided_by)} | {md(r.choice)}"
                f" | {md(r.reason or '?')}: {md(r.reason_message)} |"
            )
    if log.expired:
        lines += [
            "",
            "## Questions that expired undecided",
            "",
            "| Asked | Question | Asker | Escalations | Expired |",
            "|---|---|---|---|---|",
        ]
        for q in log.expired:
            lines.append(
                f"| {_md_when(q.asked_at)} | {md(q.question)} | {md(q.asker)} | {q.escalation_level}"
                f" | {_md_when(q.closed_at)} |"
            )
    return "\n".join(lines) + "\n"
