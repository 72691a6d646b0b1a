"""Bad input anywhere in the CLI: exit 2 and one line that names what is wrong, never a traceback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from agentlog.settings import Settings
from tests.support import agentlog_env

BINARY = bytes(range(256)) * 8
CASES = [
    (["publish", "RootAgentRegistered", "--file", "{binary}"], "not UTF-8"),
    (["policy", "publish", "{binary}"], "not UTF-8"),
    (["tail", "agentlog.spawn.requests", "--since", "999999999999d"], "--since"),
    (["tail", "agentlog.spawn.requests", "--since", "garbage"], "--since"),
    (["lineage", "tree", "x", "--as-of", "99999999999d"], "--as-of"),
    (["audit", "show", "--since", "garbage"], "--since 'garbage'"),
    (["audit", "show", "--until", "99999999999d"], "--until"),
    (["replay", "export", "--since", "99999999999d", "--output", "{tmp}/x.jsonl"], "--since"),
    (["db", "migrate", "--schema", "pg_catalog"], "pg_catalog"),
    (["db", "migrate", "--schema", "information_schema"], "information_schema"),
    (["lineage", "tree", "x", "--schema", "Robert'); DROP TABLE"], "--schema"),
    (["publish", "RootAgentRegistered", "--file", "{huge}"], "agent_id"),
    (["publish", "RootAgentRegistered", "--file", "{two_megabytes}"], "agent_id"),
    (["publish", "NoSuchRecord", "--json", "{{}}"], "unknown record"),
    (["publish", "RootAgentRegistered", "--json", "not json"], "JSON"),
    (["policy", "publish", "{version_true}"], "version"),
    (["policy", "publish", "{version_huge}"], "version"),
    (["processors", "run", "--batch-size", "0"], "batch-size"),
    (["lineage", "tree", "x", "--output", "jpeg"], "--output"),
]


def payload(agent_id_chars: int) -> str:
    return json.dumps(
        {
            "meta": {"tenant_id": "acme"},
            "agent_id": "a" * agent_id_chars,
            "config": "orchestrator",
            "token_budget": 1,
            "spawn_budget": 0,
        }
    )


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def policy_file(tmp_path: Path, name: str, version: object) -> Path:
    path = tmp_path / name
    path.write_text(
        f"name: default\nversion: {json.dumps(version)}\nconfigs:\n  - name: orchestrator\n    spawnable_by: []\n"
    )
    return path


@pytest.mark.parametrize(("argv", "names"), CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_bad_input_exits_2_with_one_line(settings: Settings, tmp_path: Path, argv: list[str], names: str) -> None:
    """Each bad argument, file or payload gives exit 2 and an `error:` line naming it; nothing is published."""
    binary = tmp_path / "binary.dat"
    binary.write_bytes(BINARY)
    values = {
        "binary": str(binary),
        "tmp": str(tmp_path),
        "huge": write(tmp_path / "huge.json", payload(250_000)),
        "two_megabytes": write(tmp_path / "2mb.json", payload(2_000_000)),
        "version_true": str(policy_file(tmp_path, "true.yaml", True)),
        "version_huge": str(policy_file(tmp_path, "huge.yaml", 2_147_483_647)),
    }
    done = subprocess.run(
        ["agentlog", *(a.format(**values) for a in argv)],
        capture_output=True,
        text=True,
        env=agentlog_env(settings),
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert names in done.stderr, done.stderr[-2000:]
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith("error:") or "Usage:" in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize(
    "argv",
    [
        ["tail", "agentlog.spawn.requests"],
        ["topics", "create"],
        [
            "publish",
            "TokensConsumed",
            "--json",
            '{"meta": {"tenant_id": "a", "root_id": "r"}, "agent_id": "a", "tokens": 1}',
        ],
        ["policy", "show"],
        ["processors", "run", "--worker-id", "x"],
        ["projector", "run"],
        ["replay", "verify"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_an_absent_broker_is_one_line(settings: Settings, argv: list[str]) -> None:
    """Without a broker, each Kafka command says it cannot reach Kafka within the connect timeout: exit 1."""
    env = {**agentlog_env(settings), "AGENTLOG_BOOTSTRAP_SERVERS": "127.0.0.1:1", "AGENTLOG_CONNECT_TIMEOUT_S": "2"}
    done = subprocess.run(["agentlog", *argv], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "error: cannot reach Kafka at 127.0.0.1:1 within 2s" in done.stderr


@pytest.mark.parametrize(
    ("variables", "names"),
    [
        ({"AGENTLOG_SECURITY_PROTOCOL": "SASL_SSL"}, "AGENTLOG_SASL_USERNAME is needed"),
        ({"AGENTLOG_SECURITY_PROTOCOL": "SASL_SSL", "AGENTLOG_SASL_USERNAME": "u"}, "AGENTLOG_SASL_PASSWORD is needed"),
        ({"AGENTLOG_SECURITY_PROTOCOL": "TLS-PLEASE"}, "AGENTLOG_SECURITY_PROTOCOL: Input should be"),
        ({"AGENTLOG_CONNECT_TIMEOUT_S": "-1"}, "AGENTLOG_CONNECT_TIMEOUT_S: Input should be greater than 0"),
    ],
    ids=["no user", "no password", "bad protocol", "negative timeout"],
)
def test_bad_settings_name_the_variable_and_never_show_a_password(
    settings: Settings, variables: dict[str, str], names: str
) -> None:
    env = {**agentlog_env(settings), "AGENTLOG_SASL_PASSWORD": "s3cret-never-printed", **variables}
    if "AGENTLOG_SASL_PASSWORD is needed" in names:
        del env["AGENTLOG_SASL_PASSWORD"]
    done = subprocess.run(
        ["agentlog", "topics", "create"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert done.stderr.startswith("error: invalid settings: ") and names in done.stderr, done.stderr
    assert "s3cret-never-printed" not in done.stdout + done.stderr


def test_settings_are_read_from_the_environment_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """``AGENTLOG_<FIELD>`` in any case, a dict field as JSON; arguments win over the environment."""
    monkeypatch.setenv("agentlog_topic_prefix", "lower.")
    monkeypatch.setenv("AGENTLOG_KAFKA_EXTRA", '{"linger.ms": "5"}')
    monkeypatch.setenv("AGENTLOG_TREE_PARTITIONS", "6")
    monkeypatch.setenv("AGENTLOG_NOT_A_SETTING", "ignored")
    settings = Settings(bootstrap_servers="broker:9092")
    assert (settings.topic_prefix, settings.kafka_extra, settings.tree_partitions) == ("lower.", {"linger.ms": "5"}, 6)
    assert settings.bootstrap_servers == "broker:9092"
    assert Settings(topic_prefix="given.").topic_prefix == "given."
    monkeypatch.setenv("AGENTLOG_KAFKA_EXTRA", "not json")
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert [e["loc"] for e in raised.value.errors()] == [("kafka_extra",)]
