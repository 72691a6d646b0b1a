"""`agentlog schemas check`: breaking edits fail, compatible ones pass."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentlog.schema_store import schemas_dir

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a committed copy of the schemas (released v1 included)."""
    shutil.copytree(schemas_dir(), tmp_path / "schemas")
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "s"]):
        subprocess.run(["git", "-C", str(tmp_path), *command], check=True)
    return tmp_path


def _edit(repo: Path, record: str, change: Edit) -> None:
    path = repo / "schemas" / f"{record}.avsc"
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2))


def _check(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["agentlog", "schemas", "check", "--schemas", str(repo / "schemas")],
        capture_output=True,
        text=True,
        check=False,
    )


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    field: dict[str, Any] = next(f for f in schema["fields"] if f["name"] == name)
    return field


def test_unchanged_schemas_pass(repo: Path) -> None:
    """With no edit the check passes and says what it compared with."""
    result = _check(repo)
    assert result.returncode == 0, result.stderr
    assert "release v1" in result.stdout and "git HEAD" in result.stdout


def test_adding_a_field_with_a_default_is_compatible(repo: Path) -> None:
    """A new optional field keeps both directions readable."""
    _edit(
        repo,
        "agentlog.lifecycle.TokensConsumed",
        lambda s: s["fields"].append({"name": "cached", "type": "boolean", "default": False, "doc": "d"}),
    )
    assert _check(repo).returncode == 0


def test_adding_an_enum_symbol_is_compatible(repo: Path) -> None:
    """Enums have defaults, so old readers map a new symbol to the default."""
    _edit(repo, "agentlog.decision.DenialReason", lambda s: s["symbols"].append("NEW_REASON"))
    assert _check(repo).returncode == 0


@pytest.mark.parametrize(
    ("record", "change", "expected"),
    [
        (
            "agentlog.lifecycle.TokensConsumed",
            lambda s: s["fields"].append({"name": "cost", "type": "double", "doc": "d"}),
            "(vs HEAD, backward: new reader, old data) cost: not in the writer's data and has no default",
        ),
        (
            "agentlog.lifecycle.TokensConsumed",
            lambda s: s["fields"].remove(_field(s, "tokens")),
            "forward: old reader, new data) tokens: not in the writer's data and has no default",
        ),
        (
            "agentlog.lifecycle.TokensConsumed",
            lambda s: _field(s, "tokens").update(type="string"),
            "backward: new reader, old data) tokens: the writer's long cannot be read as string",
        ),
        (
            "agentlog.lifecycle.TokensConsumed",
            lambda s: _field(s, "tokens").update(type="int"),
            "backward: new reader, old data) tokens: the writer's long cannot be read as int",
        ),
        (
            "agentlog.common.Meta",
            lambda s: _field(s, "tenant_id").update(type=["null", "string"]),
            "forward: old reader, new data) meta.tenant_id<0>: the writer's null cannot be read as string",
        ),
    ],
    ids=["field-without-default", "required-field-removed", "type-change", "narrowing", "meta-made-nullable"],
)
def test_breaking_edits_fail_and_name_the_field(repo: Path, record: str, change: Edit, expected: str) -> None:
    """A breaking edit exits non-zero and names the record, direction and field."""
    _edit(repo, record, change)
    result = _check(repo)
    assert result.returncode == 1
    assert expected in result.stderr


def test_the_release_is_checked_even_after_a_commit(repo: Path) -> None:
    """Committing a breaking change does not hide it: the released v1 still disagrees."""
    _edit(repo, "agentlog.lifecycle.AgentStarted", lambda s: s["fields"].remove(_field(s, "agent_id")))
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "x"], check=True
    )
    result = _check(repo)
    assert result.returncode == 1
    assert "vs release v1" in result.stderr and "agent_id" in result.stderr
