"""``agentlog access``: the SCRAM users of the brokers and the ACLs of their roles (run as the admin)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from agentlog import access
from agentlog.access import BadUserError, Role
from agentlog.cli.output import EXIT_BAD_INPUT, fail, fail_for, kafka_settings
from agentlog.errors import AgentlogError
from agentlog.settings import Settings
from agentlog.topic_admin import ensure_topics

app = typer.Typer(help="Broker users and the ACLs of their roles (secure deployments).", no_args_is_help=True)

User = Annotated[str, typer.Argument(help="The SCRAM user (Kafka principal User:<name>).")]
RoleArg = Annotated[Role, typer.Argument(help="What the user is for; each role has least-privilege ACLs.")]


@app.command("bootstrap")
def bootstrap(
    policy: Annotated[
        bool,
        typer.Option(
            help="Publish the default policy with limits.require_signatures: true when no version of it is published."
        ),
    ] = True,
) -> None:
    """Create the catalogue's topics, grant every user named after a role its role's ACLs, and publish a
    first policy that denies unsigned input.

    The convention: users ``gate``, ``missions``, ``bus``, ``projector`` and ``auditor`` get those roles,
    ``tenant-<name>`` the tenant role; other users are left as they are. Idempotent; the local secure stack runs it.
    """
    settings = kafka_settings()
    try:
        for change in ensure_topics(settings):
            if change.action != "unchanged":
                print(f"{change.action:<10} {change.topic}")
        for user in access.users(settings):
            role = access.role_of_user(user)
            if role is not None:
                bindings = access.grant(settings, role, user)
                print(f"granted    {role} to {user} ({len(bindings)} ACLs)")
        if policy:
            _first_strict_policy(settings)
    except AgentlogError as e:
        fail_for(e)


def _first_strict_policy(settings: Settings) -> None:
    """The default policy, requiring signatures, as version 1, unless a version of it is published."""
    from agentlog.processors.policy import load_default_policy, requiring_signatures
    from agentlog.processors.policy_publisher import publish_policy
    from agentlog.processors.policy_reader import PolicyReader

    default = load_default_policy()
    reader = PolicyReader(settings, default.name)
    try:
        reader.catch_up()
        current = reader.current
    finally:
        reader.close()
    if current is not None:
        print(f"policy     {current.name} version {current.version} is in force; left as it is")
        return
    strict = requiring_signatures(default)
    publish_policy(settings, strict, "agentlog access bootstrap")
    print(f"published  policy {strict.name} version {strict.version} with limits.require_signatures: true")


@app.command("grant")
def grant(role: RoleArg, user: User) -> None:
    """Allow a user what a role may do, on this deployment's topics (AGENTLOG_TOPIC_PREFIX)."""
    settings = kafka_settings()
    try:
        bindings = access.grant(settings, role, user)
    except AgentlogError as e:
        fail_for(e)
    print(f"granted {role} to {user}: {len(bindings)} ACLs")


@app.command("revoke")
def revoke(role: RoleArg, user: User) -> None:
    """Remove the ACLs ``grant`` gave a user for a role."""
    settings = kafka_settings()
    try:
        deleted = access.revoke(settings, role, user)
    except AgentlogError as e:
        fail_for(e)
    print(f"revoked {role} from {user}: {deleted} ACLs deleted")


@app.command("list")
def list_acls(
    user: Annotated[str | None, typer.Option(help="Only this user's ACLs.")] = None,
) -> None:
    """Show the ACLs on the broker: principal, permission, operation, resource."""
    settings = kafka_settings()
    try:
        bindings = access.acls(settings, user)
    except AgentlogError as e:
        fail_for(e)
    for b in bindings:
        pattern = "prefix" if str(b.resource_pattern_type).endswith("PREFIXED") else "name"
        permission, operation, resource = (_name(v) for v in (b.permission_type, b.operation, b.restype))
        print(f"{b.principal:<24} {permission:<5} {operation:<16} {resource.lower():<16} {pattern:<6} {b.name}")
    print(f"{len(bindings)} ACLs")


@app.command("users")
def list_users() -> None:
    """Show the SCRAM users and the role their name gives them."""
    settings = kafka_settings()
    try:
        names = access.users(settings)
    except AgentlogError as e:
        fail_for(e)
    for name in names:
        role = access.role_of_user(name)
        print(f"{name:<24} {role or '-'}")


@app.command("user-add")
def user_add(
    user: User,
    password_file: Annotated[
        Path | None,
        typer.Option(
            help="Read the password from this file; if it does not exist, write a new random one there (mode 0600)."
        ),
    ] = None,
) -> None:
    """Create a SCRAM-SHA-512 user (or set its password). The password is never printed.

    Without --password-file the password is read from stdin (one line).
    """
    settings = kafka_settings()
    password = _password(password_file)
    try:
        access.add_user(settings, user, password)
    except BadUserError as e:
        fail(str(e), EXIT_BAD_INPUT)
    except AgentlogError as e:
        fail_for(e)
    print(f"user {user} has a SCRAM-SHA-512 credential; grant it a role with 'agentlog access grant ROLE {user}'")


@app.command("user-remove")
def user_remove(user: User) -> None:
    """Delete a user's SCRAM-SHA-512 credential; revoke its roles too."""
    settings = kafka_settings()
    try:
        access.remove_user(settings, user)
    except AgentlogError as e:
        fail_for(e)
    print(f"user {user} removed")


def _name(value: object) -> str:
    """An enum member's name (the stubs also allow the str and int forms)."""
    return str(getattr(value, "name", value))


def _password(password_file: Path | None) -> str:
    if password_file is None:
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            fail("no password on stdin (or give --password-file)", EXIT_BAD_INPUT)
        return line
    if password_file.exists():
        return password_file.read_text().strip()
    password = access.new_password()
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    return password
