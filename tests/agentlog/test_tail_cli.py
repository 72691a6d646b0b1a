"""`agentlog tail` against the real broker: decoding, starting points, filters and bad bytes."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer as KafkaProducer

from agentlog import kafka_config
from agentlog.events import Meta, TokensConsumed
from agentlog.producer import Producer
from agentlog.settings import Settings
from agentlog.topics import AGENT_LIFECYCLE

from .kafka_helpers import agentlog


def _usage(root: str, agent: str, tokens: int, when: datetime | None = None) -> TokensConsumed:
    meta = Meta(tenant_id="acme", root_id=root, producer="test", **({"occurred_at": when} if when else {}))
    return TokensConsumed(meta=meta, agent_id=agent, tokens=tokens)


def _json_lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_tail_json_shows_every_record_decoded(settings: Settings, cli_env: dict[str, str]) -> None:
    """--output json prints topic, partition, offset, timestamp, key, headers, record and value."""
    with Producer(settings) as producer:
        producer.publish_many([_usage("root-1", "a", 5), _usage("root-2", "b", 7)])
    result = agentlog(cli_env, "tail", AGENT_LIFECYCLE.name, "--output", "json")
    assert result.returncode == 0, result.stderr
    lines = _json_lines(result.stdout)
    assert sorted(line["key"] for line in lines) == ["root-1", "root-2"]  # type: ignore[type-var]
    first = next(line for line in lines if line["key"] == "root-1")
    assert set(first) >= {"topic", "partition", "offset", "timestamp", "key", "headers", "record", "value"}
    assert first["record"] == "agentlog.lifecycle.TokensConsumed"
    assert first["value"]["tokens"] == 5  # type: ignore[index]


def test_pretty_output_is_one_readable_line_per_record(settings: Settings, cli_env: dict[str, str]) -> None:
    """The pretty form names the position, key and record type."""
    with Producer(settings) as producer:
        producer.publish(_usage("root-1", "a", 5))
    result = agentlog(cli_env, "tail", AGENT_LIFECYCLE.name)
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert f"{settings.topic_prefix}{AGENT_LIFECYCLE.name}[" in line
    assert "key=root-1" in line and "TokensConsumed" in line and '"tokens":5' in line


def test_filter_max_and_since(settings: Settings, cli_env: dict[str, str]) -> None:
    """--filter matches dotted paths; --max stops early; --since skips older records."""
    with Producer(settings) as producer:
        producer.publish_many([_usage("root-1", f"agent-{i}", i) for i in range(10)])
        producer.publish(_usage("root-2", "x", 99))
    filtered = agentlog(cli_env, "tail", AGENT_LIFECYCLE.name, "-o", "json", "--filter", "meta.root_id=root-1")
    assert len(_json_lines(filtered.stdout)) == 10
    both = agentlog(
        cli_env, "tail", AGENT_LIFECYCLE.name, "-o", "json", "--filter", "meta.root_id=root-1", "--filter", "tokens=3"
    )
    assert [line["value"]["agent_id"] for line in _json_lines(both.stdout)] == ["agent-3"]  # type: ignore[index]
    limited = agentlog(cli_env, "tail", AGENT_LIFECYCLE.name, "-o", "json", "--max", "4")
    assert len(_json_lines(limited.stdout)) == 4
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert agentlog(cli_env, "tail", AGENT_LIFECYCLE.name, "--since", future).stdout == ""
    assert (
        len(_json_lines(agentlog(cli_env, "tail", AGENT_LIFECYCLE.name, "-o", "json", "--since", "10m").stdout)) == 11
    )


def test_undecodable_record_is_shown_raw_and_tailing_goes_on(settings: Settings, cli_env: dict[str, str]) -> None:
    """Garbage bytes are printed with their hex and the reason; the records after them still show."""
    topic = settings.topic_prefix + AGENT_LIFECYCLE.name
    raw = KafkaProducer({**kafka_config.base(settings), "partitioner": "murmur2_random"})
    raw.produce(topic, b"\xde\xad\xbe\xef", b"root-1")
    raw.flush(10)
    with Producer(settings) as producer:
        producer.publish(_usage("root-1", "a", 5))
    result = agentlog(cli_env, "tail", AGENT_LIFECYCLE.name, "-o", "json")
    assert result.returncode == 0
    bad, good = _json_lines(result.stdout)
    assert bad["raw_hex"] == "deadbeef" and "not an agentlog record" in str(bad["error"])
    assert good["record"] == "agentlog.lifecycle.TokensConsumed"
    pretty = agentlog(cli_env, "tail", AGENT_LIFECYCLE.name)
    assert "UNDECODABLE" in pretty.stdout and "raw=deadbeef" in pretty.stdout


def test_follow_prints_records_published_after_it_started(settings: Settings, cli_env: dict[str, str]) -> None:
    """--follow starts at the end and prints what arrives later, until --max is reached."""
    with Producer(settings) as producer:
        producer.publish(_usage("root-old", "a", 1))
    follower = subprocess.Popen(
        ["agentlog", "tail", AGENT_LIFECYCLE.name, "--follow", "--max", "2", "-o", "json"],
        env=cli_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        with Producer(settings) as producer:
            # Keep publishing until the follower (which starts at the end) has seen two records.
            while follower.poll() is None and time.monotonic() < deadline:
                producer.publish(_usage("root-new", "b", 2))
                time.sleep(0.5)
        out, _ = follower.communicate(timeout=30)
    finally:
        follower.kill()
    lines = _json_lines(out)
    assert len(lines) == 2
    assert all(line["key"] == "root-new" for line in lines)


def test_bad_arguments_exit_2(cli_env: dict[str, str], settings: Settings) -> None:
    """Unknown topics, bad --since and bad --filter are refused with a message."""
    missing = agentlog(cli_env, "tail", "no.such.topic")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    since = agentlog(cli_env, "tail", AGENT_LIFECYCLE.name, "--since", "yesterday")
    assert since.returncode == 2 and "--since" in since.stderr
    filt = agentlog(cli_env, "tail", AGENT_LIFECYCLE.name, "--filter", "tokens")
    assert filt.returncode == 2 and "FIELD=VALUE" in filt.stderr
    assert agentlog(cli_env, "tail").returncode == 2
