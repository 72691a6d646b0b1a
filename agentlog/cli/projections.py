"""The projection commands: ``agentlog db``, ``agentlog projector``, ``agentlog lineage``, ``agentlog audit``."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from types import FrameType
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from agentlog.cli.output import EXIT_BAD_INPUT, MetricsPort, fail, fail_for, kafka_settings, start_telemetry
from agentlog.errors import AgentlogError, UnknownRecordError
from agentlog.projections import render
from agentlog.projections.audit import AuditFilter, show, verify_stored_chains
from agentlog.projections.db import DEFAULT_SCHEMA, Conn, check_schema_name, connect, require_tables
from agentlog.projections.errors import DatabaseUnavailableError, MigrationError, NotMigratedError, UnknownAgentError
from agentlog.projections.lineage import Agent, Lineage
from agentlog.projections.migrate import migrate, status
from agentlog.projections.projector import Projector, ProjectorOptions
from agentlog.projections.roles import RoleError, RoleKind, create_role, reader_roles, revoke_role, use_login_scope
from agentlog.records import at
from agentlog.settings import get_settings

db_app = typer.Typer(help="The projection database: migrations and the roles that read it.", no_args_is_help=True)
projector_app = typer.Typer(help="The projector: every topic into PostgreSQL.", no_args_is_help=True)
lineage_app = typer.Typer(help="Who spawned whom, now or as of a moment.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)

Schema = Annotated[
    str, typer.Option("--schema", envvar="AGENTLOG_DB_SCHEMA", help="PostgreSQL schema of the projections.")
]
AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="Answer as of this moment: ISO-8601 (UTC if no zone) or 10m/2h/1d ago."),
]
T = TypeVar("T")


class Output(StrEnum):
    """Output formats of the lineage commands."""

    pretty = "pretty"
    json = "json"
    mermaid = "mermaid"
    dot = "dot"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="pretty, json, mermaid or dot (trees only).")]


def _schema(schema: str) -> str:
    try:
        return check_schema_name(schema)
    except ValueError as e:
        fail(f"--schema: {e}", EXIT_BAD_INPUT)


def as_of_option(text: str | None, option: str = "--as-of") -> datetime | None:
    from agentlog.cli.tail import parse_since

    if text is None:
        return None
    try:
        return parse_since(text, option=option)
    except ValueError as e:
        fail(str(e), EXIT_BAD_INPUT)


@contextmanager
def reading(schema: str) -> Iterator[Conn]:
    """A read connection to ``schema``, with database trouble reported as CLI errors."""
    try:
        with connect(get_settings(), _schema(schema)) as conn:
            require_tables(conn, schema)
            use_login_scope(conn, schema)  # a tenant login reads its tenant's views
            yield conn
    except UnknownAgentError as e:
        fail(str(e), EXIT_BAD_INPUT)
    except UnknownRecordError as e:
        fail_for(e)
    except (DatabaseUnavailableError, NotMigratedError) as e:
        fail(str(e))


@db_app.command("migrate")
def migrate_command(schema: Schema = DEFAULT_SCHEMA) -> None:
    """Create or upgrade the projection tables (idempotent; refuses a database ahead of this agentlog)."""
    try:
        statuses = migrate(get_settings(), _schema(schema))
    except (MigrationError, DatabaseUnavailableError) as e:
        fail(str(e))
    for s in statuses:
        print(f"{'applied' if s.just_applied else 'present':<8} {s.version:04d}_{s.name}  (schema {schema})")


@db_app.command("status")
def status_command(schema: Schema = DEFAULT_SCHEMA) -> None:
    """Show which migrations the schema has."""
    try:
        statuses = status(get_settings(), _schema(schema))
    except (MigrationError, DatabaseUnavailableError) as e:
        fail(str(e))
    for s in statuses:
        print(f"{'applied' if s.applied else 'pending':<8} {s.version:04d}_{s.name}")


role_app = typer.Typer(
    help="Login roles that read the projections: a tenant's (its rows only) or an auditor's.", no_args_is_help=True
)
db_app.add_typer(role_app, name="role")


def _password(stdin: bool) -> str:
    """The new role's password: the first line of stdin, or AGENTLOG_ROLE_PASSWORD (never an argument)."""
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    password = os.environ.get("AGENTLOG_ROLE_PASSWORD", "")
    if not password:
        fail("give the role's password on stdin (--password-stdin) or in AGENTLOG_ROLE_PASSWORD", EXIT_BAD_INPUT)
    return password


@role_app.command("create")
def role_create_command(
    name: Annotated[str, typer.Argument(help="Login role name (lower case; PostgreSQL roles are cluster-wide).")],
    tenant: Annotated[str | None, typer.Option(help="The tenant whose rows the role reads.")] = None,
    auditor: Annotated[bool, typer.Option("--auditor", help="Read every tenant's rows instead.")] = False,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """Create a login role that reads this schema's projections (run as the schema's owner)."""
    kind = RoleKind.auditor if auditor else RoleKind.tenant
    try:
        role = create_role(get_settings(), name, kind, _password(password_stdin), tenant, _schema(schema))
    except RoleError as e:
        fail(str(e), EXIT_BAD_INPUT)
    except DatabaseUnavailableError as e:
        fail(str(e))
    scope = f"tenant {role.tenant_id}'s rows" if role.tenant_id else "every row"
    print(f"role {role.name} reads {scope} of schema {schema}; connect as it to query them")


@role_app.command("revoke")
def role_revoke_command(name: str, schema: Schema = DEFAULT_SCHEMA) -> None:
    """Stop a role from reading this schema's projections (the login itself stays)."""
    try:
        revoke_role(get_settings(), name, _schema(schema))
    except RoleError as e:
        fail(str(e), EXIT_BAD_INPUT)
    except DatabaseUnavailableError as e:
        fail(str(e))
    print(f"role {name} reads nothing of schema {schema} now")


@role_app.command("list")
def role_list_command(schema: Schema = DEFAULT_SCHEMA) -> None:
    """The roles that read this schema's projections."""
    try:
        roles = reader_roles(get_settings(), _schema(schema))
    except (RoleError, DatabaseUnavailableError, NotMigratedError) as e:
        fail(str(e))
    for role in roles:
        print(f"{role.name:<32} {role.kind.value:<8} {role.tenant_id or '(every tenant)'}")


@projector_app.command("run")
def run_command(
    schema: Schema = DEFAULT_SCHEMA,
    group: Annotated[
        str | None,
        typer.Option(
            help="Consumer group; projectors of one group share partitions [default: <prefix>agentlog-projector]."
        ),
    ] = None,
    instance_id: Annotated[
        str | None, typer.Option(help="Static group membership id: a restart takes its partitions back at once.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Records per transaction at most.")] = 5000,
    batch_ms: Annotated[int, typer.Option(min=1, help="Milliseconds to wait for a batch to fill.")] = 100,
    until_idle: Annotated[
        float | None, typer.Option(min=0.1, help="Stop after this many seconds without new records.")
    ] = None,
    session_timeout_ms: Annotated[
        int, typer.Option(min=1000, help="Consumer group session timeout: how soon a dead projector's partitions move.")
    ] = 10_000,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log assignments and retries.")] = False,
    checkpoint_every: Annotated[
        str,
        typer.Option(
            help="Attest the committed chain heads on agentlog.audit.checkpoints this often (0s: after every"
            " batch; off: never)."
        ),
    ] = "10s",
    metrics_port: MetricsPort = None,
) -> None:
    """Project every topic into PostgreSQL, exactly once, until stopped (SIGINT/SIGTERM) or idle."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    start_telemetry("agentlog-projector", metrics_port)
    options = ProjectorOptions(
        schema=_schema(schema),
        group_id=group,
        instance_id=instance_id,
        batch_size=batch_size,
        batch_timeout_ms=batch_ms,
        idle_exit_s=until_idle,
        session_timeout_ms=session_timeout_ms,
        checkpoint_interval_s=_checkpoint_interval(checkpoint_every),
    )
    projector = Projector(kafka_settings(), options)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        projector.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        stats = projector.run()
    except (DatabaseUnavailableError, NotMigratedError) as e:
        fail(str(e))
    except AgentlogError as e:
        fail_for(e)
    print(f"projected {stats.records} records in {stats.batches} batches; {stats.dead_letters} dead-lettered")


def _checkpoint_interval(text: str) -> float | None:
    """``--checkpoint-every``: seconds between checkpoints, or None for ``off``."""
    if text.strip().lower() == "off":
        return None
    if text.strip() in ("0", "0s"):
        return 0.0
    from agentlog.cli.tail import parse_duration

    try:
        return parse_duration(text, "--checkpoint-every").total_seconds()
    except ValueError as e:
        fail(f"{e}, 0s or off", EXIT_BAD_INPUT)


def _lineage(schema: str, query: Callable[[Lineage], T]) -> T:
    with reading(schema) as conn:
        return query(Lineage(conn))


def _agents_command(
    name: str,
    agent_id: str,
    as_of: str | None,
    output: Output,
    schema: str,
    query: Callable[[Lineage, str, datetime | None], list[Agent]],
) -> None:
    if output in (Output.mermaid, Output.dot):
        fail(f"--output {output.value}: only `agentlog lineage tree` draws pictures", EXIT_BAD_INPUT)
    moment = as_of_option(as_of)
    agents = _lineage(schema, lambda lineage: query(lineage, agent_id, moment))
    if output is Output.json:
        print(render.to_json(agents))
    else:
        Console().print(render.agents_table(agents, f"{name} of {agent_id}"))


@lineage_app.command("tree")
def tree_command(
    agent_id: Annotated[str, typer.Argument(help="An agent or root id.")],
    as_of: AsOf = None,
    output: OutputOption = Output.pretty,
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """The tree under an agent: children, denied spawns and handoffs."""
    moment = as_of_option(as_of)
    tree = _lineage(schema, lambda lineage: lineage.tree(agent_id, moment))
    if output is Output.json:
        print(render.to_json(render.tree_json(tree)))
    elif output is Output.mermaid:
        print(render.tree_mermaid(tree))
    elif output is Output.dot:
        print(render.tree_dot(tree))
    else:
        Console().print(render.tree_pretty(tree))


@lineage_app.command("ancestors")
def ancestors_command(
    agent_id: str, as_of: AsOf = None, output: OutputOption = Output.pretty, schema: Schema = DEFAULT_SCHEMA
) -> None:
    """The agents above an agent, root first."""
    _agents_command("ancestors", agent_id, as_of, output, schema, Lineage.ancestors)


@lineage_app.command("descendants")
def descendants_command(
    agent_id: str, as_of: AsOf = None, output: OutputOption = Output.pretty, schema: Schema = DEFAULT_SCHEMA
) -> None:
    """Every agent under an agent, shallowest first."""
    _agents_command("descendants", agent_id, as_of, output, schema, Lineage.descendants)


@lineage_app.command("path")
def path_command(
    agent_id: str, as_of: AsOf = None, output: OutputOption = Output.pretty, schema: Schema = DEFAULT_SCHEMA
) -> None:
    """The chain of agents from the root down to an agent."""
    _agents_command("path", agent_id, as_of, output, schema, Lineage.path)


@lineage_app.command("denied")
def denied_command(
    root_id: Annotated[str, typer.Argument(help="A root (or any agent): denials anywhere under it.")],
    as_of: AsOf = None,
    output: OutputOption = Output.pretty,
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """Spawns denied in a tree, with the reason, the numbers compared and the policy version."""
    if output in (Output.mermaid, Output.dot):
        fail(f"--output {output.value}: only `agentlog lineage tree` draws pictures", EXIT_BAD_INPUT)
    moment = as_of_option(as_of)
    denied = _lineage(schema, lambda lineage: lineage.denied(root_id, moment))
    if output is Output.json:
        print(render.to_json(denied))
    else:
        Console().print(render.denied_table(denied, f"denied spawns under {root_id}"))


@audit_app.command("show")
def audit_show_command(
    root: Annotated[str | None, typer.Option(help="Only records of this tree (root id).")] = None,
    agent: Annotated[str | None, typer.Option(help="Only records naming this agent.")] = None,
    record: Annotated[str | None, typer.Option(help="Only this record type, e.g. SpawnDenied.")] = None,
    since: Annotated[str | None, typer.Option(help="Kafka time from: ISO-8601 or 10m/2h/1d ago.")] = None,
    until: Annotated[str | None, typer.Option(help="Kafka time up to (excluded): ISO-8601 or 10m/2h/1d ago.")] = None,
    undecodable: Annotated[bool, typer.Option("--undecodable", help="Only undecodable or misplaced records.")] = False,
    trace: Annotated[
        str | None, typer.Option("--trace", help="Only records of this trace (its 32-hex-digit id, as Jaeger shows).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 100,
    output: Annotated[str, typer.Option("--output", "-o", help="pretty or json.")] = "pretty",
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """Audit log rows, filtered by tree, agent, record type and time range, oldest first."""
    if output not in ("pretty", "json"):
        fail(f"--output {output!r}: expected pretty or json", EXIT_BAD_INPUT)
    if trace is not None and not re.fullmatch(r"[0-9a-f]{32}", trace.lower()):
        fail(f"--trace {trace!r}: expected a trace id of 32 hex digits", EXIT_BAD_INPUT)
    query = AuditFilter(
        root,
        agent,
        record,
        as_of_option(since, "--since"),
        as_of_option(until, "--until"),
        undecodable,
        limit,
        trace.lower() if trace is not None else None,
    )
    with reading(schema) as conn:
        entries = show(conn, query)
    if output == "json":
        print(render.to_json(entries))
    else:
        Console().print(render.audit_table(entries))


@audit_app.command("verify")
def audit_verify_command(schema: Schema = DEFAULT_SCHEMA) -> None:
    """Recompute every stored hash chain from the stored rows; exit 1 on a break."""
    with reading(schema) as conn:
        breaks = verify_stored_chains(conn)
    for b in breaks:
        print(f"break: {at(b.topic, b.partition, b.offset)}: {b.problem}")
    if breaks:
        fail(f"{len(breaks)} breaks in the audit chains")
    print("every chain verifies")
