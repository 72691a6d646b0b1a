"""``agentlog bus``: a tree's messages, questions, decision log and statistics, from the projections."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from agentlog.cli.output import EXIT_BAD_INPUT, fail
from agentlog.cli.projections import Schema, reading
from agentlog.projections import bus_render as render
from agentlog.projections.bus import PRIORITIES, Bus, UnknownTreeError
from agentlog.projections.db import DEFAULT_SCHEMA

app = typer.Typer(
    help="The consultation bus of a tree: messages and their delivery, questions, the decision log, statistics.",
    no_args_is_help=True,
)
T = TypeVar("T")


class Output(StrEnum):
    """Output formats of the bus commands."""

    pretty = "pretty"
    json = "json"


class LogOutput(StrEnum):
    """Output formats of ``agentlog bus decision-log``."""

    pretty = "pretty"
    json = "json"
    markdown = "markdown"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="pretty or json (durations in seconds).")]
Root = Annotated[str, typer.Argument(help="The tree's root id (a tree's messages stay in it).")]


def _query(schema: str, query: Callable[[Bus], T]) -> T:
    with reading(schema) as conn:
        try:
            return query(Bus(conn))
        except UnknownTreeError as e:
            fail(str(e), EXIT_BAD_INPUT)


def _priority(priority: str | None) -> str | None:
    if priority is None:
        return None
    if priority.upper() not in PRIORITIES:
        fail(f"--priority {priority}: expected one of {', '.join(PRIORITIES)}", EXIT_BAD_INPUT)
    return priority.upper()


@app.command("messages")
def messages_command(
    root_id: Root,
    agent: Annotated[
        str | None, typer.Option("--agent", help="Only what this agent sent, was addressed or was escalated.")
    ] = None,
    priority: Annotated[str | None, typer.Option("--priority", help="Only CRITICAL, HIGH, NORMAL or LOW.")] = None,
    output: OutputOption = Output.pretty,
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """The tree's messages with the bus's answer, what became of them and who acknowledged them."""
    wanted = _priority(priority)
    messages = _query(schema, lambda q: q.messages(root_id, agent, wanted))
    if output is Output.json:
        print(render.bus_json(messages))
    else:
        whose = f" involving {agent}" if agent else ""
        Console().print(render.messages_table(messages, f"messages of {root_id}{whose}"))


@app.command("questions")
def questions_command(
    root_id: Root,
    open_only: Annotated[bool, typer.Option("--open", help="Only questions still waiting for a decision.")] = False,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open questions past their deadline.")] = False,
    output: OutputOption = Output.pretty,
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """The tree's questions: whom each waits for now, its escalation level, deadline and age."""
    questions = _query(schema, lambda q: q.questions(root_id, open_only, overdue))
    if output is Output.json:
        print(render.bus_json(questions))
    else:
        which = "overdue " if overdue else "open " if open_only else ""
        Console().print(render.questions_table(questions, f"{which}questions of {root_id}"))


@app.command("decision-log")
def decision_log_command(
    root_id: Root,
    output: Annotated[
        LogOutput, typer.Option("--output", "-o", help="pretty, json or markdown (a report to keep).")
    ] = LogOutput.pretty,
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """Every decision of the tree: question, asker, options, who decided, choice, rationale, impact, time taken."""
    log = _query(schema, lambda q: q.decision_log(root_id))
    if output is LogOutput.json:
        print(render.bus_json(log))
    elif output is LogOutput.markdown:
        print(render.decision_log_markdown(log), end="")
    else:
        Console().print(render.decision_log_pretty(log))


@app.command("stats")
def stats_command(root_id: Root, output: OutputOption = Output.pretty, schema: Schema = DEFAULT_SCHEMA) -> None:
    """Totals by kind and state, rejections by reason, pending per agent, decisions and the median time to decide."""
    stats = _query(schema, lambda q: q.stats(root_id))
    if output is Output.json:
        print(render.bus_json(stats))
    else:
        Console().print(render.stats_pretty(stats))
