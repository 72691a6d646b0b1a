"""``agentlog missions``: a tree's missions from the projections, now or as of a moment."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from agentlog.cli.output import EXIT_BAD_INPUT, fail
from agentlog.cli.projections import AsOf, Schema, as_of_option, reading
from agentlog.events import MissionState
from agentlog.projections import mission_render as render
from agentlog.projections.db import DEFAULT_SCHEMA
from agentlog.projections.errors import AmbiguousMissionError, UnknownMissionError
from agentlog.projections.missions import Mission, Missions
from agentlog.projections.render import to_json

app = typer.Typer(help="Missions of a tree: states, dependencies, parallel groups, history.", no_args_is_help=True)
T = TypeVar("T")


class Output(StrEnum):
    """Output formats of the mission commands."""

    pretty = "pretty"
    json = "json"


class GraphOutput(StrEnum):
    """Output formats of ``agentlog missions graph``."""

    mermaid = "mermaid"
    dot = "dot"
    json = "json"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="pretty or json.")]
Root = Annotated[str, typer.Argument(help="The tree's root id (missions live in one agent tree).")]


def _query(schema: str, query: Callable[[Missions], T]) -> T:
    with reading(schema) as conn:
        try:
            return query(Missions(conn))
        except (UnknownMissionError, AmbiguousMissionError) as e:
            fail(str(e), EXIT_BAD_INPUT)


def _print_missions(missions: list[Mission], output: Output, title: str) -> None:
    if output is Output.json:
        print(to_json(missions))
    else:
        Console().print(render.missions_table(missions, title))


def _states(state: list[str] | None) -> list[str]:
    known = {s.value for s in MissionState if s is not MissionState.UNKNOWN}
    wanted = [s.upper() for s in state or []]
    unknown = [s for s in wanted if s not in known]
    if unknown:
        fail(f"--state {unknown[0]}: expected one of {', '.join(sorted(known))}", EXIT_BAD_INPUT)
    return wanted


@app.command("list")
def list_command(
    root_id: Root,
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Only missions in this state (repeatable).")
    ] = None,
    as_of: AsOf = None,
    output: OutputOption = Output.pretty,
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """The tree's missions, oldest first."""
    states, moment = _states(state), as_of_option(as_of)
    _print_missions(_query(schema, lambda q: q.in_tree(root_id, moment, states)), output, f"missions of {root_id}")


@app.command("ready")
def ready_command(
    root_id: Root, as_of: AsOf = None, output: OutputOption = Output.pretty, schema: Schema = DEFAULT_SCHEMA
) -> None:
    """The tree's missions that may start now (READY)."""
    moment = as_of_option(as_of)
    _print_missions(_query(schema, lambda q: q.ready(root_id, moment)), output, f"ready missions of {root_id}")


@app.command("show")
def show_command(
    mission_id: Annotated[str, typer.Argument(help="The mission's id.")],
    root: Annotated[str | None, typer.Option("--root", help="Its tree, if several trees have this id.")] = None,
    as_of: AsOf = None,
    output: OutputOption = Output.pretty,
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """One mission: history, dependencies both ways, who ran each attempt (and their tokens), refused commands."""
    moment = as_of_option(as_of)
    story = _query(schema, lambda q: q.story(mission_id, root, moment))
    if output is Output.json:
        print(to_json(story))
    else:
        Console().print(render.story_pretty(story))


@app.command("groups")
def groups_command(
    root_id: Root, as_of: AsOf = None, output: OutputOption = Output.pretty, schema: Schema = DEFAULT_SCHEMA
) -> None:
    """The open missions in topological levels: each level can run in parallel once the levels before are done."""
    moment = as_of_option(as_of)
    plan = _query(schema, lambda q: q.plan(root_id, moment))
    if output is Output.json:
        print(to_json(render.groups_json(plan)))
    else:
        Console().print(render.groups_table(plan))


@app.command("graph")
def graph_command(
    root_id: Root,
    as_of: AsOf = None,
    output: Annotated[GraphOutput, typer.Option("--output", "-o", help="mermaid, dot or json.")] = GraphOutput.mermaid,
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """The dependency DAG with states: Mermaid (default), Graphviz dot or JSON."""
    moment = as_of_option(as_of)
    plan = _query(schema, lambda q: q.plan(root_id, moment))
    if output is GraphOutput.json:
        print(to_json(render.plan_json(plan)))
    elif output is GraphOutput.dot:
        print(render.plan_dot(plan))
    else:
        print(render.plan_mermaid(plan))
