"""Lineage and audit results as text: rich trees and tables, JSON, Mermaid and Graphviz dot."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.tree import Tree as RichTree

from agentlog.projections.audit import AuditEntry
from agentlog.projections.lineage import Agent, DeniedSpawn, Tree
from agentlog.records import at
from agentlog.serde import to_jsonable

_STATUS_STYLE = {
    "running": "bold green",
    "completed": "green",
    "failed": "red",
    "terminated": "red",
    "timed_out": "red",
    "rejected": "red",
    "approved": "cyan",
    "admitted": "cyan",
    "registered": "cyan",
}


def plain(value: Any) -> Any:
    """Dataclasses (and lists of them) as JSON-ready values."""
    if isinstance(value, list):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    return to_jsonable(value)


def to_json(value: Any) -> str:
    """Indented JSON of a query result."""
    return json.dumps(plain(value), indent=2, ensure_ascii=False)


def tree_json(tree: Tree) -> dict[str, Any]:
    """A tree as nested JSON: each agent with its ``children`` and ``denied`` spawns."""

    def node(agent: Agent) -> dict[str, Any]:
        data: dict[str, Any] = plain(agent)
        data["denied"] = plain(tree.denied_under(agent.agent_id))
        data["children"] = [node(child) for child in tree.children(agent.agent_id)]
        return data

    return {
        "as_of": plain(tree.as_of),
        "tree": node(tree.top),
        "handoffs": plain(tree.handoffs),
        "rejected": plain([d for d in tree.denied if d.parent_agent_id is None]),
    }


def _label(agent: Agent) -> str:
    style = _STATUS_STYLE.get(agent.status, "yellow")
    budget = f"{agent.tokens_used}/{agent.token_budget}" if agent.token_budget is not None else str(agent.tokens_used)
    return (
        f"[bold]{escape(agent.agent_id)}[/] [dim]{escape(agent.config or '?')}[/] "
        f"[{style}]{agent.status}[/] tokens {budget}"
    )


def _denied_label(denied: DeniedSpawn) -> str:
    failed = ", ".join(f"{c['name']} {c['value']}>{c['limit']}" for c in denied.checks if not c.get("passed", True))
    detail = f" ({escape(failed)})" if failed else ""
    return (
        f"[red]✗ denied[/] {escape(denied.child_config)} [red]{denied.reason}[/]{detail} "
        f"[dim]policy v{denied.policy_version}[/]"
    )


def tree_pretty(tree: Tree) -> RichTree:
    """A rich tree: agents with config, status and tokens used/granted; denied spawns in red."""

    def grow(branch: RichTree, agent: Agent) -> None:
        for denied in tree.denied_under(agent.agent_id):
            branch.add(_denied_label(denied))
        for child in tree.children(agent.agent_id):
            grow(branch.add(_label(child)), child)

    title = _label(tree.top)
    if tree.as_of is not None:
        title += f" [dim](as of {tree.as_of.isoformat()})[/]"
    root = RichTree(title)
    grow(root, tree.top)
    for handoff in tree.handoffs:
        root.add(
            f"[magenta]↪ handoff[/] {escape(handoff.from_agent_id)} → {escape(handoff.to_agent_id)}: "
            f"{escape(handoff.title)}"
        )
    return root


def _ids(tree: Tree) -> dict[str, str]:
    return {agent.agent_id: f"a{i}" for i, agent in enumerate(tree.agents)}


def _quote(text: str) -> str:
    return text.replace('"', "#quot;")


def tree_mermaid(tree: Tree) -> str:
    """A Mermaid flowchart: spawn edges solid, denied spawns as red nodes, handoffs dotted."""
    ids = _ids(tree)
    lines = ["flowchart TD"]
    for agent in tree.agents:
        text = f"{agent.agent_id}<br/>{agent.config or '?'} · {agent.status}"
        lines.append(f'    {ids[agent.agent_id]}["{_quote(text)}"]')
        if agent.parent_id in ids and agent.agent_id != tree.top.agent_id:
            lines.append(f"    {ids[agent.parent_id]} --> {ids[agent.agent_id]}")
    for n, denied in enumerate(tree.denied):
        if denied.parent_agent_id in ids:
            lines.append(f'    d{n}["{_quote(f"✗ {denied.child_config}<br/>{denied.reason}")}"]:::denied')
            lines.append(f"    {ids[denied.parent_agent_id]} -.-x d{n}")
    for handoff in tree.handoffs:
        if handoff.from_agent_id in ids and handoff.to_agent_id in ids:
            lines.append(f"    {ids[handoff.from_agent_id]} -. handoff .-> {ids[handoff.to_agent_id]}")
    lines.append("    classDef denied fill:#fdd,stroke:#c00,color:#600")
    return "\n".join(lines)


def tree_dot(tree: Tree) -> str:
    """A Graphviz digraph of the same picture as :func:`tree_mermaid`."""
    ids = _ids(tree)

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    lines = ["digraph lineage {", "  rankdir=TB;", "  node [shape=box, fontname=Helvetica];"]
    for agent in tree.agents:
        label = q(f"{agent.agent_id}\n{agent.config or '?'} · {agent.status}")
        lines.append(f"  {ids[agent.agent_id]} [label={label}];")
        if agent.parent_id in ids and agent.agent_id != tree.top.agent_id:
            lines.append(f"  {ids[agent.parent_id]} -> {ids[agent.agent_id]};")
    for n, denied in enumerate(tree.denied):
        if denied.parent_agent_id in ids:
            label = q(f"denied {denied.child_config}\n{denied.reason}")
            lines.append(f"  d{n} [label={label}, color=red, fontcolor=red, style=dashed];")
            lines.append(f"  {ids[denied.parent_agent_id]} -> d{n} [color=red, style=dashed];")
    for handoff in tree.handoffs:
        if handoff.from_agent_id in ids and handoff.to_agent_id in ids:
            edge = f"{ids[handoff.from_agent_id]} -> {ids[handoff.to_agent_id]}"
            lines.append(f"  {edge} [style=dotted, color=purple, label=handoff];")
    lines.append("}")
    return "\n".join(lines)


def agents_table(agents: list[Agent], title: str) -> Table:
    """Agents as a table, one row each."""
    table = Table("depth", "agent", "parent", "config", "status", "tokens used/granted", "created", title=title)
    for agent in agents:
        style = _STATUS_STYLE.get(agent.status, "yellow")
        table.add_row(
            str(agent.depth),
            escape(agent.agent_id),
            escape(agent.parent_id or "-"),
            escape(agent.config or "?"),
            f"[{style}]{agent.status}[/]",
            f"{agent.tokens_used}/{agent.token_budget}",
            agent.created_at.isoformat(timespec="milliseconds") if agent.created_at else "-",
        )
    return table


def denied_table(denied: list[DeniedSpawn], title: str) -> Table:
    """Denied spawns as a table, with the failing checks."""
    table = Table("when", "parent", "config", "reason", "failed checks", "policy", "message", title=title)
    for d in denied:
        failed = ", ".join(f"{c['name']}: {c['value']} > {c['limit']}" for c in d.checks if not c.get("passed", True))
        table.add_row(
            d.occurred_at.isoformat(timespec="milliseconds"),
            escape(d.parent_agent_id or f"(root {d.agent_id})"),
            escape(d.child_config),
            f"[red]{d.reason}[/]",
            escape(failed or "-"),
            f"v{d.policy_version}",
            escape(d.message),
        )
    return table


def audit_table(entries: list[AuditEntry]) -> Table:
    """Audit rows as a table: when, where, what, and the head of each row's hash."""
    table = Table("kafka time", "topic[partition]@offset", "record", "root", "agents", "hash", title="audit log")
    for e in entries:
        record = e.record_name.rsplit(".", 1)[-1] if e.record_name else "[red]UNDECODABLE[/]"
        if e.error and e.record_name:
            record += " [red](misplaced)[/]"
        table.add_row(
            e.kafka_ts.isoformat(timespec="milliseconds") if e.kafka_ts else "-",
            escape(at(e.topic, e.partition, e.offset)),
            record,
            escape(e.root_id or "-"),
            escape(", ".join(e.agent_ids)),
            e.hash.hex()[:12],
        )
    return table
