"""The CLI imports what a command needs when it runs: the top-level help loads no subcommand and no client.

The figures (seconds, next to a bare Python) are ``bench/cli.py``'s; these tests hold what
makes them: which modules a process has imported after a command, and that the top-level
help shows each subcommand's own one-line help without importing it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agentlog.cli.main import AgentlogGroup, app

pytestmark = pytest.mark.timeout(60)

CLIENTS = ("confluent_kafka", "psycopg", "agentlog.settings", "fastavro", "agentlog.events", "opentelemetry")
"""What no help listing needs: the Kafka and PostgreSQL clients, the settings, the contract, the telemetry."""


def imported_after(*argv: str, env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    """Run ``agentlog ARGV`` in a fresh interpreter; its exit status and the modules it had imported."""
    script = (
        "import json, sys\n"
        f"sys.argv = ['agentlog', *{list(argv)!r}]\n"
        "from agentlog.cli.main import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    code = e.code or 0\n"
        "else:\n"
        "    code = 0\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60, env=env
    )
    return done.returncode, set(json.loads(done.stderr.strip().splitlines()[-1]))


def loaded(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_the_top_level_help_imports_no_subcommand_and_no_client() -> None:
    code, modules = imported_after("--help")
    assert code == 0
    assert [c for c in CLIENTS if loaded(modules, c)] == []
    assert not any(m.startswith("agentlog.cli.") and m not in {"agentlog.cli.main", "agentlog.cli.lazy",
                                                               "agentlog.cli.output"} for m in modules)  # fmt: skip


def test_a_subcommands_help_imports_its_module_only() -> None:
    code, modules = imported_after("replay", "--help")
    assert code == 0
    assert "agentlog.cli.replay" in modules
    assert not loaded(modules, "agentlog.cli.bus") and not loaded(modules, "agentlog.cli.missions")


def test_publishing_needs_no_database_client_and_no_schema_registry_client() -> None:
    code, modules = imported_after("publish", "--help")
    assert code == 0
    assert not loaded(modules, "psycopg")
    assert not loaded(modules, "confluent_kafka.schema_registry")


@pytest.mark.parametrize("name", sorted(AgentlogGroup.lazy))
def test_each_subcommand_is_listed_with_its_own_help(name: str) -> None:
    """The stand-in's one line is the first paragraph of the command's own help, so that they cannot drift."""
    import typer.main

    group = typer.main.get_command(app)
    assert isinstance(group, AgentlogGroup)
    real = group.load(name)
    first = " ".join((real.help or "").split("\n\n")[0].split())
    assert AgentlogGroup.lazy[name].help == first
    assert name in group.list_commands(None)
