"""Audit checkpoints: a chain an insider shortened (rows deleted, the position moved back) is truncation, not lag.

Each case tampers as the database's owner can (the projector's role may only insert), on a
schema of its own projected with checkpoints after every batch; ``replay verify`` must name
every case, and an untouched schema whose projector is behind must be lag only.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from agentlog import events as ev
from agentlog.producer import Producer
from agentlog.projections.audit_chain import PartitionChain
from agentlog.replay.verify import verify
from agentlog.settings import Settings
from agentlog.topics import AUDIT_CHECKPOINTS, SPAWN_REQUESTS
from tests.support import agentlog_env

from .tampering import (
    busiest_partition,
    cut_and_rewind,
    forged_checkpoint,
    kinds,
    newest_anchors,
    projected_schema,
    superuser,
)

pytestmark = pytest.mark.timeout(240)

Tamper = Callable[[str], None]


@pytest.fixture
def schema(settings: Settings, unique_name: str) -> Iterator[str]:
    """A schema projected from a small forest, with a checkpoint of every partition after every batch."""
    with projected_schema(settings, "cp_" + unique_name.lower()) as name:
        yield name


@pytest.fixture
def db(settings: Settings, schema: str) -> Iterator[psycopg.Connection[Any]]:
    """A superuser's connection to the schema (what an insider with the database's keys has)."""
    with superuser(settings, schema) as conn:
        yield conn


def test_an_untouched_schema_is_clean_and_its_partitions_are_checkpointed(settings: Settings, schema: str) -> None:
    report = verify(settings, schema)
    assert report.clean, [str(d) for d in report.differences]
    anchors = newest_anchors(settings, schema)
    requests = settings.topic_prefix + SPAWN_REQUESTS.name
    assert any(topic == requests for topic, _ in anchors)
    assert not any(topic == settings.topic_prefix + AUDIT_CHECKPOINTS.name for topic, _ in anchors)


def test_a_projector_behind_is_lag_not_truncation(settings: Settings, schema: str) -> None:
    meta = ev.Meta(tenant_id="tenant-a", root_id="root-0-0", producer="test")
    with Producer(settings) as producer:
        producer.publish(ev.TokensConsumed(meta=meta, agent_id="root-0-0", tokens=5))
    report = verify(settings, schema)
    assert report.clean
    assert sum(report.lag.values()) == 1


def test_deleting_the_newest_rows_and_rewinding_the_position_is_truncation(
    settings: Settings, schema: str, db: psycopg.Connection[Any]
) -> None:
    topic, partition, offsets = busiest_partition(settings, db)
    cut_and_rewind(db, topic, partition, keep=len(offsets) - 3)
    report = verify(settings, schema)
    (truncated,) = [d for d in report.differences if d.kind == "truncated"]
    assert (truncated.topic, truncated.partition, truncated.offset) == (topic, partition, offsets[-3])
    assert f"offsets {offsets[-3]} to {offsets[-1]} (3 records) have no audit row" in truncated.detail
    assert not report.lag.get(f"{topic}[{partition}]")  # none of it is read as lag
    done = subprocess.run(
        [sys.executable, "-m", "agentlog.cli.main", "replay", "verify", "--schema", schema, "-q"],
        env=agentlog_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert f"truncated {topic}[{partition}]@{offsets[-3]}" in done.stdout


def test_deleting_a_whole_partition_and_its_position_is_truncation(
    settings: Settings, schema: str, db: psycopg.Connection[Any]
) -> None:
    topic, partition, offsets = busiest_partition(settings, db)
    db.execute("DELETE FROM audit_log WHERE topic = %s AND partition = %s", (topic, partition))
    db.execute("DELETE FROM projector_positions WHERE topic = %s AND partition = %s", (topic, partition))
    report = verify(settings, schema)
    found = [d for d in report.differences if d.kind == "truncated"]
    assert [(d.topic, d.partition, d.offset) for d in found] == [(topic, partition, offsets[0])]


def test_a_forged_checkpoint_is_named(settings: Settings, schema: str) -> None:
    """A checkpoint whose chain head is not the head Kafka's records make (here: a later offset, a made-up head)."""
    anchors = newest_anchors(settings, schema)
    (topic, partition), anchor = next(iter(sorted(anchors.items())))
    with Producer(settings) as producer:
        producer.publish(forged_checkpoint(schema, anchor))
    assert ("checkpoint", topic, partition) in kinds(settings, schema)


def test_a_position_whose_head_is_not_the_last_rows_is_named(
    settings: Settings, schema: str, db: psycopg.Connection[Any]
) -> None:
    topic, partition, _ = busiest_partition(settings, db)
    db.execute(
        "UPDATE projector_positions SET chain_head = %s WHERE topic = %s AND partition = %s",
        (b"\x01" * 32, topic, partition),
    )
    assert kinds(settings, schema) == {("position", topic, partition)}


def test_a_chain_recomputed_after_changing_a_value_is_named(
    settings: Settings, schema: str, db: psycopg.Connection[Any]
) -> None:
    """The insider changes a record's bytes and recomputes every hash from there on, the position's head too: the
    chain checks out in PostgreSQL alone, but its rows no longer match Kafka's records."""
    topic, partition, offsets = busiest_partition(settings, db)
    db.execute(
        'UPDATE audit_log SET raw_value = raw_value || %s WHERE topic = %s AND partition = %s AND "offset" = %s',
        (b"\x00", topic, partition, offsets[1]),
    )
    previous = db.execute(
        'SELECT hash FROM audit_log WHERE topic = %s AND partition = %s AND "offset" = %s',
        (topic, partition, offsets[0]),
    ).fetchone()
    assert previous is not None
    chain, prev = PartitionChain(topic, partition), bytes(previous[0])
    for offset in offsets[1:]:
        ts, key, raw, signature = db.execute(
            "SELECT timestamp_ms, key, raw_value, signature FROM audit_log WHERE topic = %s AND partition = %s"
            ' AND "offset" = %s',
            (topic, partition, offset),
        ).fetchone()  # type: ignore[misc]
        new = chain.link(prev, offset, ts, bytes(key) if key else None, bytes(raw), signature)
        db.execute(
            'UPDATE audit_log SET prev_hash = %s, hash = %s WHERE topic = %s AND partition = %s AND "offset" = %s',
            (prev, new, topic, partition, offset),
        )
        prev = new
    db.execute(
        "UPDATE projector_positions SET chain_head = %s WHERE topic = %s AND partition = %s", (prev, topic, partition)
    )
    found = {kind for kind, t, p in kinds(settings, schema) if (t, p) == (topic, partition)}
    assert "altered" in found
