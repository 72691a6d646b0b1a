"""Login roles that read the projections: an auditor's (every row) or a tenant's (its tenant's rows only).

The role model is set up by migration ``0003_roles_and_tenant_rows``: a tenant login role is
a member of ``agentlog_tenant`` and is mapped to one tenant in the schema's
``tenant_roles`` table. It may read nothing of the schema's tables, only the views of the
tenant schema beside it, which show its tenant's rows: whatever a query asks, the database
decides what it sees (:func:`use_login_scope` points the query commands there). An auditor login role is a member of
``agentlog_auditor``. Both are created by the schema's owner (``agentlog db role create``);
PostgreSQL roles are cluster-wide, the mapping is per schema. Passwords are taken, never
shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import psycopg
from psycopg import sql

from agentlog.projections.db import DEFAULT_SCHEMA, Conn, connect, require_tables, tenant_schema
from agentlog.projections.errors import DatabaseUnavailableError, ProjectionError
from agentlog.settings import Settings

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class RoleKind(StrEnum):
    """What a login role reads."""

    tenant = "tenant"
    auditor = "auditor"


GROUP_OF = {RoleKind.tenant: "agentlog_tenant", RoleKind.auditor: "agentlog_auditor"}
"""The group role (created by the migration) whose rights each kind of login role gets."""


class RoleError(ProjectionError):
    """A role cannot be created or revoked as asked."""


@dataclass(frozen=True)
class ReaderRole:
    """A login role that reads this schema's projections."""

    name: str
    kind: RoleKind
    tenant_id: str | None
    """The tenant whose rows it reads (tenant roles only)."""


def check_role_name(name: str) -> str:
    """``name`` if it is a plain lower-case identifier that is not one of PostgreSQL's or agentlog's own."""
    if not _ROLE_NAME.match(name):
        raise RoleError(f"role {name!r}: expected lower-case letters, digits and underscores (at most 63)")
    if name.startswith("pg_") or name in ("public", *GROUP_OF.values(), "agentlog_projector"):
        raise RoleError(f"role {name!r}: reserved by PostgreSQL or agentlog")
    return name


def create_role(
    settings: Settings,
    name: str,
    kind: RoleKind,
    password: str,
    tenant_id: str | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> ReaderRole:
    """Create (or update the password of) a login role that reads ``schema``'s projections, as ``kind``.

    A tenant role is mapped to ``tenant_id``; a role already mapped to another tenant is
    refused (re-pointing a login at another tenant's data must be deliberate: revoke first).
    """
    check_role_name(name)
    if kind is RoleKind.tenant and not tenant_id:
        raise RoleError("a tenant role needs the tenant it reads (--tenant)")
    if kind is RoleKind.auditor and tenant_id:
        raise RoleError("an auditor reads every tenant: --tenant does not apply")
    if not password:
        raise RoleError(f"role {name}: an empty password would let nobody log in; give one")
    try:
        with connect(settings, schema) as conn, conn.transaction():
            require_tables(conn, schema)
            mapped = _mapped_tenant(conn, name)
            if kind is RoleKind.tenant and mapped is not None and mapped != tenant_id:
                raise RoleError(f"role {name} reads tenant {mapped} in schema {schema}: revoke it first")
            if kind is RoleKind.auditor and mapped is not None:
                raise RoleError(f"role {name} is tenant {mapped}'s in schema {schema}: revoke it first")
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
            )
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(GROUP_OF[kind]), sql.Identifier(name)))
            if kind is RoleKind.tenant:
                conn.execute(
                    "INSERT INTO tenant_roles (role_name, tenant_id) VALUES (%s, %s)"
                    " ON CONFLICT (role_name) DO NOTHING",
                    (name, tenant_id),
                )
    except psycopg.errors.InsufficientPrivilege as e:
        raise RoleError(f"cannot create role {name}: {e} (the schema's owner needs CREATEROLE)") from e
    except psycopg.errors.UndefinedTable as e:
        raise RoleError(f"schema {schema} has no role model yet: run `agentlog db migrate --schema {schema}`") from e
    except psycopg.OperationalError as e:
        raise DatabaseUnavailableError(f"role {name} not created: {e}") from e
    return ReaderRole(name, kind, tenant_id if kind is RoleKind.tenant else None)


def revoke_role(settings: Settings, name: str, schema: str = DEFAULT_SCHEMA) -> None:
    """Take a tenant role's mapping away in ``schema`` (it then reads no rows there); an auditor loses the group."""
    check_role_name(name)
    try:
        with connect(settings, schema) as conn, conn.transaction():
            require_tables(conn, schema)
            removed = conn.execute("DELETE FROM tenant_roles WHERE role_name = %s RETURNING 1", (name,)).fetchone()
            if removed is None:
                if name not in _members(conn, GROUP_OF[RoleKind.auditor]):
                    raise RoleError(f"role {name} reads nothing in schema {schema}")
                conn.execute(
                    sql.SQL("REVOKE {} FROM {}").format(
                        sql.Identifier(GROUP_OF[RoleKind.auditor]), sql.Identifier(name)
                    )
                )
    except psycopg.OperationalError as e:
        raise DatabaseUnavailableError(f"role {name} not revoked: {e}") from e


def reader_roles(settings: Settings, schema: str = DEFAULT_SCHEMA) -> list[ReaderRole]:
    """The tenant roles mapped in ``schema`` and the auditor roles of the cluster, by name."""
    with connect(settings, schema) as conn:
        require_tables(conn, schema)
        tenants = conn.execute("SELECT role_name, tenant_id FROM tenant_roles").fetchall()
        auditors = _members(conn, GROUP_OF[RoleKind.auditor])
    roles = [ReaderRole(n, RoleKind.tenant, t) for n, t in tenants]
    roles += [ReaderRole(n, RoleKind.auditor, None) for n in auditors]
    return sorted(roles, key=lambda r: r.name)


def use_login_scope(conn: Conn, schema: str) -> None:
    """Point ``conn``'s search path at what its login may read of ``schema``: the tenant views for a
    tenant login (which reads nothing else), the tables themselves for anyone else."""
    row = conn.execute("SELECT pg_has_role(%s, 'MEMBER')", (GROUP_OF[RoleKind.tenant],)).fetchone()
    if row is not None and row[0]:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(tenant_schema(schema))))


def is_auditor(conn: Conn) -> bool:
    """Whether ``conn``'s login is an auditor role (a member of ``agentlog_auditor``; a superuser is not one)."""
    row = conn.execute("SELECT session_user").fetchone()
    return row is not None and row[0] in _members(conn, GROUP_OF[RoleKind.auditor])


def _members(conn: Conn, group: str) -> list[str]:
    """The roles that are members of ``group``."""
    rows = conn.execute(
        "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
        " JOIN pg_roles r ON r.oid = m.member WHERE g.rolname = %s",
        (group,),
    ).fetchall()
    return [str(name) for (name,) in rows]


def _mapped_tenant(conn: Conn, name: str) -> str | None:
    row = conn.execute("SELECT tenant_id FROM tenant_roles WHERE role_name = %s", (name,)).fetchone()
    return None if row is None else str(row[0])
