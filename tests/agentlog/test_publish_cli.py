"""`agentlog publish` against the real broker: good input lands, bad input lands nowhere."""

from __future__ import annotations

import json

from agentlog.settings import Settings
from agentlog.topics import SPAWN_REQUESTS

from .kafka_helpers import agentlog, read_all, root_payload


def test_publish_one_object_prints_its_position(settings: Settings, cli_env: dict[str, str]) -> None:
    """A single JSON object is published and its topic, partition and offset printed as JSON."""
    result = agentlog(cli_env, "publish", "RootAgentRegistered", "--json", json.dumps(root_payload("root-a")))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["topic"] == settings.topic_prefix + SPAWN_REQUESTS.name
    assert printed["record"] == "agentlog.spawn.RootAgentRegistered"
    [record] = read_all(settings, SPAWN_REQUESTS.name)
    assert (record.partition, record.offset) == (printed["partition"], printed["offset"])
    assert record.key == "root-a"
    assert record.value is not None
    meta = record.value["meta"]
    assert meta["root_id"] == "root-a" and meta["producer"] == "agentlog-cli"
    assert str(meta["event_id"]) == printed["event_id"]


def test_publish_json_lines_from_stdin_by_full_name(settings: Settings, cli_env: dict[str, str]) -> None:
    """JSON lines on stdin, with the record's full name, publish one record per line in order."""
    lines = "\n".join(json.dumps(root_payload(f"root-{i}")) for i in range(5))
    result = agentlog(cli_env, "publish", "agentlog.spawn.RootAgentRegistered", stdin=lines)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 5
    assert sorted(r.key or "" for r in read_all(settings, SPAWN_REQUESTS.name)) == [f"root-{i}" for i in range(5)]


def test_publish_from_file(settings: Settings, cli_env: dict[str, str], tmp_path: object) -> None:
    """--file reads the payload from a file."""
    from pathlib import Path

    path = Path(str(tmp_path)) / "events.jsonl"
    path.write_text(json.dumps(root_payload("root-file")) + "\n")
    result = agentlog(cli_env, "publish", "RootAgentRegistered", "--file", str(path))
    assert result.returncode == 0, result.stderr
    assert [r.key for r in read_all(settings, SPAWN_REQUESTS.name)] == ["root-file"]


def test_invalid_line_publishes_nothing_and_names_the_field(settings: Settings, cli_env: dict[str, str]) -> None:
    """A bad third line exits 2, names line and field, and not even the two valid lines are published."""
    good = [json.dumps(root_payload(f"root-{i}")) for i in range(2)]
    bad = json.dumps(root_payload("root-bad", token_budget="lots"))
    result = agentlog(cli_env, "publish", "RootAgentRegistered", stdin="\n".join([*good, bad]))
    assert result.returncode == 2
    assert "line 3" in result.stderr and "token_budget" in result.stderr
    assert "nothing was published" in result.stderr
    assert read_all(settings, SPAWN_REQUESTS.name) == []


def test_missing_meta_field_is_named(settings: Settings, cli_env: dict[str, str]) -> None:
    """A SpawnRequested without meta.root_id is refused naming meta.root_id."""
    payload = {"meta": {"tenant_id": "acme"}, "parent_agent_id": "p", "child_config": "c", "task": {"title": "t"}}
    result = agentlog(
        cli_env, "publish", "SpawnRequested", "--json", json.dumps({**payload, "requested_token_budget": 1})
    )
    assert result.returncode == 2
    assert "meta.root_id: Field required" in result.stderr


def test_unknown_field_out_of_range_int_and_bad_enum_are_named(cli_env: dict[str, str]) -> None:
    """Unknown fields, values too large for an Avro int and unknown enum symbols each name their field."""
    payload = root_payload("r", spawn_budget=2**40, colour="red")
    result = agentlog(cli_env, "publish", "RootAgentRegistered", "--json", json.dumps(payload))
    assert result.returncode == 2
    assert "spawn_budget" in result.stderr and "colour: unknown field" in result.stderr
    spawn = {
        "meta": {"tenant_id": "a", "root_id": "r"},
        "parent_agent_id": "r",
        "child_config": "c",
        "task": {"title": "t", "priority": "URGENT"},
        "requested_token_budget": 1,
    }
    result = agentlog(cli_env, "publish", "SpawnRequested", "--json", json.dumps(spawn))
    assert result.returncode == 2 and "task.priority" in result.stderr


def test_unknown_record_and_malformed_json_exit_2(cli_env: dict[str, str]) -> None:
    """An unknown record name lists the known ones; broken JSON names its line."""
    result = agentlog(cli_env, "publish", "AgentSpawned", "--json", "{}")
    assert result.returncode == 2 and "unknown record 'AgentSpawned'" in result.stderr
    assert "SpawnRequested" in result.stderr
    result = agentlog(cli_env, "publish", "RootAgentRegistered", stdin='{"agent_id": "x"}\n{not json\n')
    assert result.returncode == 2 and "line 2" in result.stderr and "not JSON" in result.stderr


def test_broker_down_is_a_clear_failure(cli_env: dict[str, str]) -> None:
    """With no broker at the address, publish fails (exit 1) instead of hanging or pretending."""
    env = {**cli_env, "AGENTLOG_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    result = agentlog(env, "publish", "RootAgentRegistered", "--json", json.dumps(root_payload("r")))
    assert result.returncode == 1
    assert "error:" in result.stderr


def test_a_value_avro_cannot_hold_is_bad_input(settings: Settings, cli_env: dict[str, str]) -> None:
    """A string with a lone surrogate parses as JSON but fails validation: exit 2 naming the field, nothing sent."""
    payload = root_payload("root-\\ud800")
    text = json.dumps(payload).replace("root-\\\\ud800", "root-\\ud800")
    result = agentlog(cli_env, "publish", "RootAgentRegistered", "--json", text)
    assert result.returncode == 2, result.stderr
    assert "meta.root_id" in result.stderr and "nothing was published" in result.stderr
    assert read_all(settings, SPAWN_REQUESTS.name) == []
