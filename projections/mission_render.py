"""Mission results as text: rich tables, JSON-ready values, and the dependency DAG in Mermaid and Graphviz dot."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from agentlog.projections.missions import Mission, MissionStory, Plan, Rejection
from agentlog.projections.render import plain

STATE_STYLE = {
    "PENDING": "yellow",
    "READY": "cyan",
    "RUNNING": "bold green",
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELLED": "magenta",
    "BLOCKED": "bold red",
    "ARCHIVED": "dim",
}
_FILL = {
    "PENDING": "#fff4c2",
    "READY": "#d6f0ff",
    "RUNNING": "#c8f7c5",
    "COMPLETED": "#8fd18b",
    "FAILED": "#f4a6a6",
    "CANCELLED": "#e3c8f0",
    "BLOCKED": "#ff7070",
    "ARCHIVED": "#dddddd",
}


def _when(moment: Any) -> str:
    return moment.isoformat(timespec="milliseconds") if moment is not None else "-"


def _state(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'yellow')}]{state}[/]"


def missions_table(missions: list[Mission], title: str) -> Table:
    """Missions as a table, one row each."""
    table = Table("mission", "title", "parent", "state", "attempt", "agent", "created", "finished", title=title)
    for m in missions:
        attempts = f"{m.attempt}/{m.max_attempts}" if m.max_attempts is not None else str(m.attempt)
        table.add_row(
            escape(m.mission_id),
            escape(m.title or "?"),
            escape(m.parent_mission_id or "-"),
            _state(m.state),
            attempts,
            escape(m.agent_id or "-"),
            _when(m.created_at),
            _when(m.finished_at),
        )
    return table


def story_pretty(story: MissionStory) -> Group:
    """One mission: a summary line, then its history, edges, attempts and refused commands as tables."""
    m = story.mission
    when = f" (as of {story.as_of.isoformat()})" if story.as_of is not None else ""
    head = (
        f"[bold]{escape(m.mission_id)}[/] {escape(m.title or '?')} in tree {escape(m.root_id)}: {_state(m.state)}, "
        f"attempt {m.attempt}/{m.max_attempts or '?'}, parent {escape(m.parent_mission_id or '-')}{when}"
    )
    if m.result_summary or m.quality_score is not None:
        head += (
            f"\nresult: {escape(m.result_summary)} (quality {m.quality_score if m.quality_score is not None else '-'})"
        )
    history = Table("when", "from", "to", "attempt", "agent", "reason", title="history")
    for t in story.history:
        history.add_row(
            _when(t.occurred_at),
            t.from_state,
            _state(t.to_state),
            str(t.attempt),
            escape(t.agent_id or "-"),
            escape(t.reason),
        )
    edges = Table("direction", "mission", "kind", "since", title="dependencies")
    for d in story.dependencies:
        edges.add_row("waits for", escape(d.depends_on), d.kind, _when(d.occurred_at))
    for d in story.dependents:
        edges.add_row("awaited by", escape(d.mission_id), d.kind, _when(d.occurred_at))
    for child in story.children:
        edges.add_row("child", escape(child), "-", "-")
    attempts = Table("attempt", "agent", "started", "ended", "how", "agent tokens used", title="attempts")
    for a in story.attempts:
        attempts.add_row(
            str(a.attempt),
            escape(a.agent_id or "-"),
            _when(a.started_at),
            _when(a.ended_at),
            _state(a.ended_state) + f" {escape(a.reason)}" if a.ended_state else "[bold green]running[/]",
            str(a.agent_tokens_used) if a.agent_tokens_used is not None else "-",
        )
    parts: list[Any] = [head, history, edges, attempts]
    if story.rejections:
        refused = Table("when", "command", "code", "reason", title="refused commands")
        for r in story.rejections:
            command = _command(r)
            refused.add_row(_when(r.occurred_at), escape(command), f"[red]{r.reason_code}[/]", escape(r.reason))
        parts.append(refused)
    return Group(*parts)


def groups_json(plan: Plan) -> dict[str, Any]:
    """The parallel groups as JSON: each level a list of missions."""
    return {
        "root_id": plan.root_id,
        "as_of": plain(plan.as_of),
        "groups": [[plain(m) for m in level] for level in plan.groups()],
        "blocked": [plain(m) for m in plan.missions if m.state == "BLOCKED"],
    }


def groups_table(plan: Plan) -> Table:
    """The parallel groups as a table: one row per level, the missions that can run together."""
    table = Table("level", "missions", title=f"parallel groups of {plan.root_id}")
    for n, level in enumerate(plan.groups()):
        table.add_row(str(n), ", ".join(f"{escape(m.mission_id)} {_state(m.state)}" for m in level))
    blocked = [m for m in plan.missions if m.state == "BLOCKED"]
    if blocked:
        table.add_row("blocked", ", ".join(escape(m.mission_id) for m in blocked))
    return table


def plan_json(plan: Plan) -> dict[str, Any]:
    """The DAG as JSON: missions and dependencies."""
    return {
        "root_id": plan.root_id,
        "as_of": plain(plan.as_of),
        "missions": plain(plan.missions),
        "dependencies": plain(plan.dependencies),
    }


def _node_ids(plan: Plan) -> dict[str, str]:
    return {m.mission_id: f"m{i}" for i, m in enumerate(plan.missions)}


_MERMAID_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "\n": " ", "\r": " "}


def _mermaid_text(text: str) -> str:
    """``text`` inside a quoted Mermaid label, as itself: no character of it can end the label or open markup."""
    return "".join(_MERMAID_ENTITIES.get(c, c) for c in text)


def plan_mermaid(plan: Plan) -> str:
    """A Mermaid flowchart of the DAG: an arrow from each dependency to its dependent (hard solid, soft dotted),
    parents to children as thin links, nodes coloured by state."""
    ids = _node_ids(plan)
    lines = ["flowchart LR"]
    for m in plan.missions:
        text = "<br/>".join(
            _mermaid_text(t) for t in (m.mission_id, m.title or "?", f"{m.state} · attempt {m.attempt}")
        )
        lines.append(f'    {ids[m.mission_id]}["{text}"]:::{m.state.lower()}')
    for d in plan.dependencies:
        if d.mission_id in ids and d.depends_on in ids:
            arrow = "-->" if d.kind == "HARD" else "-. soft .->"
            lines.append(f"    {ids[d.depends_on]} {arrow} {ids[d.mission_id]}")
    for m in plan.missions:
        if m.parent_mission_id in ids:
            lines.append(f"    {ids[m.parent_mission_id]} --- {ids[m.mission_id]}")
    lines += [f"    classDef {state.lower()} fill:{fill}" for state, fill in _FILL.items()]
    return "\n".join(lines)


def plan_dot(plan: Plan) -> str:
    """A Graphviz digraph of the same picture as :func:`plan_mermaid`."""
    ids = _node_ids(plan)

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    lines = [
        "digraph missions {",
        "  rankdir=LR;",
        "  node [shape=box, style=filled, fontname=Helvetica];",
    ]
    for m in plan.missions:
        label = q(f"{m.mission_id}\n{m.title or '?'}\n{m.state} · attempt {m.attempt}")
        lines.append(f"  {ids[m.mission_id]} [label={label}, fillcolor={q(_FILL.get(m.state, '#ffffff'))}];")
    for d in plan.dependencies:
        if d.mission_id in ids and d.depends_on in ids:
            style = "" if d.kind == "HARD" else " [style=dashed, label=soft]"
            lines.append(f"  {ids[d.depends_on]} -> {ids[d.mission_id]}{style};")
    for m in plan.missions:
        if m.parent_mission_id in ids:
            lines.append(f"  {ids[m.parent_mission_id]} -> {ids[m.mission_id]} [arrowhead=none, color=gray];")
    lines.append("}")
    return "\n".join(lines)


def _command(rejection: Rejection) -> str:
    """What the refused command asked: a transition, a dependency or a handoff."""
    if rejection.depends_on is not None:
        return f"depends on {rejection.depends_on}"
    if rejection.record_name.endswith("MissionHandoffRejected"):
        return "handoff"
    return f"{rejection.from_state} → {rejection.to_state}"
