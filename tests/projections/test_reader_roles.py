"""Reader roles: a tenant's login role sees only its tenant's rows, through every query command; an auditor all."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from agentlog.events import Event
from agentlog.projections import drop_schema, tenant_schema
from agentlog.projections.projector import ProjectorStats
from agentlog.projections.workload import ForestShape, forest
from agentlog.settings import Settings

from ..agentlog.kafka_helpers import agentlog

TABLES = ("agents", "agent_events", "denied_spawns", "handoffs", "audit_log")
PASSWORD = "reader-password-1"


def _url(settings: Settings, role: str) -> str:
    """The database URL of ``settings`` with ``role``'s login instead of the owner's."""
    info = psycopg.conninfo.conninfo_to_dict(settings.database_url.get_secret_value())
    return psycopg.conninfo.make_conninfo(**{**info, "user": role, "password": PASSWORD})


@pytest.fixture
def projected(publish: Callable[[list[Event]], None], project: Callable[..., ProjectorStats]) -> dict[str, list[Event]]:
    """Two tenants' forests, projected into the test's schema."""
    trees = {
        "acme": forest(ForestShape(roots=2), seed=0, tenant="acme"),
        "globex": forest(ForestShape(roots=2), seed=1, tenant="globex"),
    }
    publish(trees["acme"] + trees["globex"])
    project()
    return trees


@pytest.fixture
def roles(cli_env: dict[str, str], schema: str, unique_name: str, settings: Settings) -> Iterator[dict[str, str]]:
    """An acme tenant role and an auditor role on the test's schema (dropped afterwards: roles are cluster-wide)."""
    names = {"acme": f"r_{unique_name}_acme", "auditor": f"r_{unique_name}_audit"}
    env = {**cli_env, "AGENTLOG_DB_SCHEMA": schema, "AGENTLOG_ROLE_PASSWORD": PASSWORD}
    created = agentlog(env, "db", "role", "create", names["acme"], "--tenant", "acme")
    assert created.returncode == 0, created.stderr
    assert f"role {names['acme']} reads tenant acme's rows of schema {schema}" in created.stdout
    assert PASSWORD not in created.stdout + created.stderr
    assert agentlog(env, "db", "role", "create", names["auditor"], "--auditor").returncode == 0
    listed = agentlog(env, "db", "role", "list").stdout
    assert names["acme"] in listed and "tenant" in listed and names["auditor"] in listed
    yield names
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        drop_schema(conn, schema)  # first: the roles' grants go with it
        for name in names.values():
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _counts(url: str, schema: str, where: dict[str, str] | None = None) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        counts = {}
        for table in TABLES:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            if where and table in where:
                query = sql.SQL("{} WHERE {}").format(query, sql.SQL(where[table]))
            row = conn.execute(query).fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts


ACME_ONLY = {
    "agents": "tenant_id = 'acme'",
    "agent_events": "root_id IN (SELECT agent_id FROM agents WHERE tenant_id = 'acme')",
    "denied_spawns": "tenant_id = 'acme'",
    "handoffs": "root_id IN (SELECT agent_id FROM agents WHERE tenant_id = 'acme')",
    "audit_log": "value->'meta'->>'tenant_id' = 'acme'",
}


def test_a_tenant_role_reads_its_tenants_rows_only_and_an_auditor_every_row(
    projected: dict[str, list[Event]], roles: dict[str, str], settings: Settings, schema: str
) -> None:
    """The database, not the query, decides: every table's view shows the tenant role exactly acme's rows."""
    owner = settings.database_url.get_secret_value()
    everything = _counts(owner, schema)
    acme = _counts(owner, schema, ACME_ONLY)
    assert all(acme[t] > 0 for t in TABLES) and all(everything[t] > acme[t] for t in TABLES)
    assert _counts(_url(settings, roles["acme"]), tenant_schema(schema)) == acme
    assert _counts(_url(settings, roles["auditor"]), schema) == everything


def test_a_tenant_role_sees_no_other_tenants_tree_through_any_query_command(
    projected: dict[str, list[Event]], roles: dict[str, str], cli_env: dict[str, str], settings: Settings, schema: str
) -> None:
    """lineage tree/ancestors/descendants/path/denied and audit show, connected as acme's role."""
    env = {**cli_env, "AGENTLOG_DB_SCHEMA": schema, "AGENTLOG_DATABASE_URL": _url(settings, roles["acme"])}
    ours, theirs = "root-0-0", "root-1-0"
    tree = agentlog(env, "lineage", "tree", ours, "-o", "json")
    assert tree.returncode == 0, tree.stderr
    assert json.loads(tree.stdout)["tree"]["agent_id"] == ours
    for command in (["tree", theirs], ["ancestors", f"{theirs}.0"], ["path", f"{theirs}.0"]):
        hidden = agentlog(env, "lineage", *command, "-o", "json")
        assert hidden.returncode != 0 and "unknown agent" in hidden.stderr, (command, hidden.stdout)
    assert json.loads(agentlog(env, "lineage", "descendants", theirs, "-o", "json").stdout or "[]") == []
    assert json.loads(agentlog(env, "lineage", "denied", theirs, "-o", "json").stdout or "[]") == []
    assert len(json.loads(agentlog(env, "lineage", "denied", ours, "-o", "json").stdout)) > 0
    shown = agentlog(env, "audit", "show", "--limit", "10000", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    rows: list[dict[str, Any]] = json.loads(shown.stdout)
    assert rows and {r["root_id"] for r in rows} <= {ours, "root-0-1"}
    assert json.loads(agentlog(env, "audit", "show", "--root", theirs, "-o", "json").stdout) == []


def test_a_tenant_role_writes_nothing_and_reads_no_table_directly(
    projected: dict[str, list[Event]], roles: dict[str, str], settings: Settings, schema: str
) -> None:
    """The tables, the mapping and the positions are refused; the views are read-only."""
    with psycopg.connect(_url(settings, roles["acme"]), autocommit=True) as conn:
        tables = (*TABLES, "tenant_roles", "projector_positions")
        refused = [f"SELECT count(*) FROM {schema}.{table}" for table in tables]
        views = tenant_schema(schema)
        refused += [
            f"UPDATE {views}.agents SET tenant_id = 'acme'",
            f"DELETE FROM {views}.audit_log",
            f"INSERT INTO {views}.denied_spawns (topic) VALUES ('x')",
        ]
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_bad_role_requests_are_refused_with_a_clear_message(
    roles: dict[str, str], cli_env: dict[str, str], schema: str
) -> None:
    """A role of another tenant, a reserved name, a tenant role without a tenant, no password."""
    env = {**cli_env, "AGENTLOG_DB_SCHEMA": schema, "AGENTLOG_ROLE_PASSWORD": PASSWORD}
    moved = agentlog(env, "db", "role", "create", roles["acme"], "--tenant", "globex")
    assert moved.returncode == 2 and "reads tenant acme" in moved.stderr and "revoke it first" in moved.stderr
    assert "reserved" in agentlog(env, "db", "role", "create", "agentlog_projector", "--tenant", "x").stderr
    assert "needs the tenant" in agentlog(env, "db", "role", "create", "r_nobody").stderr
    no_password = {k: v for k, v in env.items() if k != "AGENTLOG_ROLE_PASSWORD"}
    refused = agentlog(no_password, "db", "role", "create", "r_nobody", "--tenant", "x")
    assert refused.returncode == 2 and "password" in refused.stderr
    revoked = agentlog(env, "db", "role", "revoke", roles["acme"])
    assert revoked.returncode == 0 and "reads nothing" in revoked.stdout
