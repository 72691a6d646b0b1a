"""The ``agentlog`` command: composes every part of agentlog into one CLI."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import typer

from agentlog.cli.lazy import Lazy, LazyGroup
from agentlog.cli.output import EXIT_BAD_INPUT, EXIT_FAILURE


class AgentlogGroup(LazyGroup):
    """The top-level group: every subcommand, imported only when it runs."""

    lazy: ClassVar[dict[str, Lazy]] = {
        "publish": Lazy(
            "agentlog.cli.publish",
            "publish",
            "Publish events of one record type. The payload comes from --json, --file or stdin.",
        ),
        "tail": Lazy("agentlog.cli.tail", "tail_command", "Print the records of topics, decoded."),
        "topics": Lazy("agentlog.cli.topics", "app", "The topic catalogue."),
        "schemas": Lazy("agentlog.cli.schemas", "app", "The Avro contract."),
        "processors": Lazy("agentlog.cli.processors", "processors_app", "Stream processors."),
        "policy": Lazy("agentlog.cli.processors", "policy_app", "Spawn policies."),
        "keys": Lazy("agentlog.cli.keys", "app", "Signing keys and the keyring."),
        "access": Lazy("agentlog.cli.access", "app", "Broker users and the ACLs of their roles (secure deployments)."),
        "db": Lazy(
            "agentlog.cli.projections", "db_app", "The projection database: migrations and the roles that read it."
        ),
        "projector": Lazy("agentlog.cli.projections", "projector_app", "The projector: every topic into PostgreSQL."),
        "lineage": Lazy("agentlog.cli.projections", "lineage_app", "Who spawned whom, now or as of a moment."),
        "audit": Lazy("agentlog.cli.projections", "audit_app", "The hash-chained audit log."),
        "missions": Lazy(
            "agentlog.cli.missions", "app", "Missions of a tree: states, dependencies, parallel groups, history."
        ),
        "bus": Lazy(
            "agentlog.cli.bus",
            "app",
            "The consultation bus of a tree: messages and their delivery, questions, the decision log, statistics.",
        ),
        "replay": Lazy(
            "agentlog.cli.replay",
            "app",
            "Audit replay: export, verify the audit table, rebuild the projections, re-run the decisions.",
        ),
        "slo": Lazy(
            "agentlog.cli.slo",
            "slo_command",
            "The proliferation SLOs over a window, from the projections; exit 3 on a breach, so that it runs as a"
            " check.",
        ),
        "report": Lazy(
            "agentlog.cli.slo",
            "report_command",
            "The spawn depth and budget utilisation report (Markdown): SLOs, depth, the deepest and largest trees,"
            " denials and the parents denied most, budget utilisation; with --out, charts as SVG beside it.",
        ),
    }


app = typer.Typer(
    cls=AgentlogGroup,
    help="agentlog: the event-sourced control plane for multi-agent systems.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)


@app.callback()
def _root() -> None:
    """agentlog: the event-sourced control plane for multi-agent systems."""


def main() -> None:
    """Console-script entry point: a Kafka or database failure no command reported itself is one line, exit 1."""
    try:
        app()
    except Exception as e:
        _report(e)  # the libraries are imported by then: the command that raised used them


def _report(error: Exception) -> None:
    """One line and an exit status for a settings, Kafka or PostgreSQL failure; anything else is raised."""
    from confluent_kafka import KafkaException
    from psycopg import OperationalError
    from pydantic import ValidationError

    from agentlog.settings import get_settings

    if isinstance(error, ValidationError) and error.title == "Settings":
        print(f"error: invalid settings: {_settings_problems(error)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    if isinstance(error, KafkaException):
        print(f"error: Kafka at {get_settings().bootstrap_servers}: {error.args[0].str()}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
    if isinstance(error, OperationalError):
        print(f"error: PostgreSQL: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
    raise error


def _settings_problems(error: Any) -> str:
    """What is wrong with the ``AGENTLOG_*`` variables, by name; never their values (a password may be one)."""
    problems = []
    for problem in error.errors():
        name = "_".join(str(part) for part in problem["loc"]).upper()
        where = f"AGENTLOG_{name}: " if name else ""
        problems.append(where + problem["msg"].removeprefix("Value error, "))
    return "; ".join(problems)


if __name__ == "__main__":
    main()
