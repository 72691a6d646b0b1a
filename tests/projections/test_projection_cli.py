"""The projection CLI as a user runs it: good input answers, bad input exits 2 with a clear message."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator

import pytest

from agentlog.events import Event
from agentlog.projections import drop_schema
from agentlog.projections.workload import ForestShape, forest


def agentlog(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the agentlog CLI."""
    return subprocess.run(["agentlog", *args], capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture
def env(cli_env: dict[str, str], unique_name: str, publish: Callable[[list[Event]], None]) -> Iterator[dict[str, str]]:
    """CLI environment with a migrated, projected schema of one tree (migrated and projected through the CLI)."""
    env = {**cli_env, "AGENTLOG_DB_SCHEMA": "c_" + unique_name.lower(), "COLUMNS": "200"}
    events = forest(ForestShape(roots=1))
    publish(events)
    migrated = agentlog(env, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "applied  0001_lineage_and_audit" in migrated.stdout
    run = agentlog(env, "projector", "run", "--group", f"cli-{unique_name}", "--until-idle", "2")
    assert run.returncode == 0, run.stderr
    assert f"projected {len(events)} records" in run.stdout
    yield env
    import psycopg

    with psycopg.connect(env["AGENTLOG_DATABASE_URL"], autocommit=True) as conn:
        drop_schema(conn, env["AGENTLOG_DB_SCHEMA"])


def test_lineage_commands_answer(env: dict[str, str]) -> None:
    """tree (every format), ancestors, descendants, path and denied print what the tables hold."""
    pretty = agentlog(env, "lineage", "tree", "root-0-0")
    assert pretty.returncode == 0, pretty.stderr
    assert "root-0-0.1.2" in pretty.stdout
    assert "denied" in pretty.stdout
    tree = json.loads(agentlog(env, "lineage", "tree", "root-0-0", "-o", "json").stdout)
    assert [c["agent_id"] for c in tree["tree"]["children"]] == ["root-0-0.0", "root-0-0.1", "root-0-0.2"]
    assert tree["tree"]["denied"][0]["reason"] == "DEPTH_EXCEEDED"
    assert agentlog(env, "lineage", "tree", "root-0-0", "-o", "mermaid").stdout.startswith("flowchart TD")
    assert agentlog(env, "lineage", "tree", "root-0-0", "-o", "dot").stdout.startswith("digraph lineage")
    ancestors = json.loads(agentlog(env, "lineage", "ancestors", "root-0-0.1.2", "-o", "json").stdout)
    assert [a["agent_id"] for a in ancestors] == ["root-0-0", "root-0-0.1"]
    descendants = json.loads(agentlog(env, "lineage", "descendants", "root-0-0.1", "-o", "json").stdout)
    assert len(descendants) == 3
    path = agentlog(env, "lineage", "path", "root-0-0.1.2")
    assert path.returncode == 0 and "root-0-0.1.2" in path.stdout
    denied = json.loads(agentlog(env, "lineage", "denied", "root-0-0", "-o", "json").stdout)
    assert len(denied) == 4
    past = json.loads(
        agentlog(env, "lineage", "tree", "root-0-0", "--as-of", "2026-03-01T12:00:00.002", "-o", "json").stdout
    )
    assert past["tree"]["status"] == "admitted" and past["tree"]["children"] == []


def test_audit_commands_answer(env: dict[str, str]) -> None:
    """audit show filters and audit verify checks the chains."""
    shown = json.loads(agentlog(env, "audit", "show", "--record", "SpawnDenied", "-o", "json").stdout)
    assert len(shown) == 4
    by_agent = json.loads(
        agentlog(env, "audit", "show", "--agent", "root-0-0.2", "--limit", "500", "-o", "json").stdout
    )
    assert by_agent and all("root-0-0.2" in e["agent_ids"] for e in by_agent)
    assert agentlog(env, "audit", "show", "--root", "root-0-0").returncode == 0
    verified = agentlog(env, "audit", "verify")
    assert verified.returncode == 0 and "every chain verifies" in verified.stdout


BAD_INPUT = [
    (["lineage", "tree", "no-such-agent"], "unknown agent 'no-such-agent'"),
    (["lineage", "ancestors", "no-such-agent", "-o", "json"], "unknown agent 'no-such-agent'"),
    (["lineage", "tree", "root-0-0", "--as-of", "2001-01-01"], "as of 2001-01-01"),
    (["lineage", "tree", "root-0-0", "--as-of", "yesterday"], "--as-of 'yesterday'"),
    (["lineage", "path", "root-0-0", "-o", "mermaid"], "only `agentlog lineage tree` draws pictures"),
    (["lineage", "tree", "root-0-0", "-o", "svg"], "svg"),
    (["lineage", "tree", "root-0-0", "--schema", "Bad-Name"], "--schema"),
    (["audit", "show", "--record", "NoSuchRecord"], "unknown record 'NoSuchRecord'"),
    (["audit", "show", "-o", "xml"], "--output 'xml'"),
]


def test_bad_input_exits_2_with_a_clear_message(env: dict[str, str]) -> None:
    """Unknown ids, bad times, formats, schemas and record names: exit 2, the problem named on stderr."""
    for args, message in BAD_INPUT:
        result = agentlog(env, *args)
        assert (result.returncode, message in result.stderr) == (2, True), (args, result.stderr)
    result = agentlog(env, "lineage", "tree", "root-0-0", "--schema", "never_migrated")
    assert result.returncode == 1
    assert "agentlog db migrate --schema never_migrated" in result.stderr
