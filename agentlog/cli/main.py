"""The ``agentlog`` command: composes every part of agentlog into one CLI."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from agentlog.cli import access, bus, keys, missions, schemas, topics
from agentlog.cli import processors as processors_cli
from agentlog.cli import projections as projections_cli
from agentlog.cli import replay as replay_cli
from agentlog.cli.output import EXIT_BAD_INPUT, EXIT_FAILURE
from agentlog.cli.publish import publish
from agentlog.cli.slo import report_command, slo_command
from agentlog.cli.tail import tail_command

app = typer.Typer(
    help="agentlog: the event-sourced control plane for multi-agent systems.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)
app.command("publish")(publish)
app.command("tail")(tail_command)
app.add_typer(topics.app, name="topics")
app.add_typer(schemas.app, name="schemas")
app.add_typer(processors_cli.processors_app, name="processors")
app.add_typer(processors_cli.policy_app, name="policy")
app.add_typer(keys.app, name="keys")
app.add_typer(access.app, name="access")
app.add_typer(projections_cli.db_app, name="db")
app.add_typer(projections_cli.projector_app, name="projector")
app.add_typer(projections_cli.lineage_app, name="lineage")
app.add_typer(projections_cli.audit_app, name="audit")
app.add_typer(missions.app, name="missions")
app.add_typer(bus.app, name="bus")
app.add_typer(replay_cli.app, name="replay")
app.command("slo")(slo_command)
app.command("report")(report_command)


def main() -> None:
    """Console-script entry point: a Kafka or database failure no command reported itself is one line, exit 1."""
    from confluent_kafka import KafkaException
    from psycopg import OperationalError

    from agentlog.settings import get_settings

    try:
        app()
    except ValidationError as e:
        if e.title != "Settings":
            raise
        print(f"error: invalid settings: {_settings_problems(e)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except KafkaException as e:
        print(f"error: Kafka at {get_settings().bootstrap_servers}: {e.args[0].str()}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
    except OperationalError as e:
        print(f"error: PostgreSQL: {str(e).strip().splitlines()[0]}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)


def _settings_problems(error: ValidationError) -> str:
    """What is wrong with the ``AGENTLOG_*`` variables, by name; never their values (a password may be one)."""
    problems = []
    for problem in error.errors():
        name = "_".join(str(part) for part in problem["loc"]).upper()
        where = f"AGENTLOG_{name}: " if name else ""
        problems.append(where + problem["msg"].removeprefix("Value error, "))
    return "; ".join(problems)


if __name__ == "__main__":
    main()
