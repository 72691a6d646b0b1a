"""Readable text for replay reports: one line per decision, side-by-side differences."""

from __future__ import annotations

from typing import Any

from agentlog.replay.decisions import DecisionReport, Outcome

_DETAIL_FIELDS = (
    "agent_id",
    "child_agent_id",
    "parent_agent_id",
    "reason",
    "depth",
    "granted_token_budget",
    "granted_spawn_budget",
    "token_budget",
    "spawn_budget",
    "returned_tokens",
    "tokens_over",
)


def short_name(record: str | None) -> str:
    """``SpawnDenied`` for ``agentlog.decision.SpawnDenied``."""
    return (record or "?").rsplit(".", 1)[-1]


def describe(decision: dict[str, Any]) -> str:
    """One line naming a decision and its main fields (record type first)."""
    name = short_name(decision.get("_record"))
    parts = [f"{k}={_short(decision[k])}" for k in _DETAIL_FIELDS if decision.get(k) is not None]
    if "policy_version" in decision:
        parts.append(f"policy v{decision['policy_version']}")
    message = decision.get("message")
    text = f"{name:<16} {' '.join(parts)}"
    return f"{text}  “{message}”" if message else text


def _short(value: Any) -> str:
    text = str(value)
    return text[:8] + "…" if len(text) == 36 and text.count("-") == 4 else text


def field_differences(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted path, recorded, replayed)`` of every leaf that differs."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(before) | set(after)):
            if key.startswith("_"):
                continue
            out += field_differences(before.get(key), after.get(key), f"{path}.{key}" if path else key)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            out += field_differences(b, a, f"{path}.{i}")
        return out
    return [] if before == after else [(path, before, after)]


def outcome_lines(outcome: Outcome, what_if: bool) -> list[str]:
    """A readable block for one outcome: the cause, then ``-`` recorded and ``+`` replayed decisions."""
    tree = f", tree {outcome.cause.root_id}" if outcome.cause.root_id else ""
    head = f"[{outcome.status}] partition {outcome.partition}: {outcome.cause}{tree}"
    lines = [head + (f" — {outcome.note}" if outcome.note else "")]
    other = "what-if " if what_if else "replayed"
    for decision in outcome.recorded:
        lines.append(f"  - recorded  {describe(decision)}   @ {decision.get('_position', '?')}")
    for decision in outcome.replayed:
        lines.append(f"  + {other:<8} {describe(decision)}")
    if not what_if and len(outcome.recorded) == len(outcome.replayed):
        for before, after in zip(outcome.recorded, outcome.replayed, strict=True):
            for path, b, a in field_differences(before, after):
                lines.append(f"      {path}: recorded {b!r} | replayed {a!r}")
    return lines


def decision_report_text(report: DecisionReport) -> list[str]:
    """The whole report as lines of text."""
    what_if = report.what_if is not None
    lines = []
    for outcome in report.outcomes:
        lines += outcome_lines(outcome, what_if)
        lines.append("")
    versions = ", ".join(f"v{v}" for v in report.policy_versions) or "none"
    summary = (
        f"{report.partitions} partitions, {report.inputs:,} inputs, {report.recorded:,} recorded decisions "
        f"in {report.groups:,} groups; policy versions {versions}"
    )
    lines.append(summary)
    if report.pending:
        lines.append(f"{report.pending:,} inputs decided by the replay are not committed by the gate yet (pending)")
    for problem in report.policy_problems:
        lines.append(f"policy record not used: {problem}")
    if what_if:
        changed = len(report.outcomes)
        lines.append(f"what-if {report.what_if}: {changed:,} causes would be decided differently")
    elif report.clean and report.recorded == 0:
        lines.append("no recorded decisions here, and the replay decides none: nothing diverges")
    elif report.clean:
        lines.append(f"every recorded decision reproduced byte for byte ({report.reproduced:,})")
    else:
        lines.append(f"{len(report.outcomes):,} divergences; {report.reproduced:,} recorded decisions reproduced")
    return lines
