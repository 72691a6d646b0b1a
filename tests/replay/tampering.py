"""What the audit-integrity tests share: a schema projected with checkpoints, and an insider's tampering.

The tampering is done as the database's owner can (the projector's role may only insert).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from agentlog import events as ev
from agentlog.producer import Producer
from agentlog.projections import connect, drop_schema
from agentlog.projections.migrate import migrate
from agentlog.projections.projector import Projector, ProjectorOptions
from agentlog.projections.workload import ForestShape, forest
from agentlog.replay.anchors import Checkpoint
from agentlog.replay.verify import live_anchors, verify
from agentlog.settings import Settings
from agentlog.topics import POLICY_DECISIONS


@contextmanager
def projected_schema(settings: Settings, name: str, projector: Settings | None = None) -> Iterator[str]:
    """Schema ``name`` projected from a small forest by a projector with ``projector``'s settings (its signing key),
    with a checkpoint of every partition after every batch; dropped afterwards."""
    migrate(settings, name)
    with Producer(settings) as producer:
        producer.publish_many(forest(ForestShape(roots=3, fanout=2, depth=2)))
    project(projector or settings, name)
    try:
        yield name
    finally:
        with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
            drop_schema(conn, name)


@contextmanager
def superuser(settings: Settings, schema: str) -> Iterator[psycopg.Connection[Any]]:
    """A superuser's connection to the schema (what an insider with the database's keys has)."""
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        yield conn


def project(settings: Settings, schema: str) -> None:
    options = ProjectorOptions(schema=schema, group_id=f"cp-{schema}", idle_exit_s=2.0, checkpoint_interval_s=0.0)
    Projector(settings, options).run()


def busiest_partition(settings: Settings, db: psycopg.Connection[Any]) -> tuple[str, int, list[int]]:
    """The decisions partition with the most rows, and its offsets."""
    topic = settings.topic_prefix + POLICY_DECISIONS.name
    row = db.execute(
        "SELECT partition FROM audit_log WHERE topic = %s GROUP BY 1 ORDER BY count(*) DESC LIMIT 1", (topic,)
    ).fetchone()
    assert row is not None
    offsets = [o for (o,) in db.execute(
        'SELECT "offset" FROM audit_log WHERE topic = %s AND partition = %s ORDER BY 1', (topic, row[0])
    )]  # fmt: skip
    return topic, row[0], offsets


def cut_and_rewind(db: psycopg.Connection[Any], topic: str, partition: int, keep: int) -> None:
    """Delete every row from the ``keep``-th on and move the position back to the last row kept."""
    offsets = [o for (o,) in db.execute(
        'SELECT "offset" FROM audit_log WHERE topic = %s AND partition = %s ORDER BY 1', (topic, partition)
    )]  # fmt: skip
    cut = offsets[keep]
    db.execute('DELETE FROM audit_log WHERE topic = %s AND partition = %s AND "offset" >= %s', (topic, partition, cut))
    head = db.execute(
        'SELECT hash FROM audit_log WHERE topic = %s AND partition = %s ORDER BY "offset" DESC LIMIT 1',
        (topic, partition),
    ).fetchone()
    db.execute(
        "UPDATE projector_positions SET next_offset = %s, chain_head = %s WHERE topic = %s AND partition = %s",
        (cut, head[0] if head else b"\x00" * 32, topic, partition),
    )


def newest_anchors(settings: Settings, schema: str) -> dict[tuple[str, int], Checkpoint]:
    with connect(settings, schema) as conn:
        return live_anchors(settings, conn, schema).newest


def kinds(settings: Settings, schema: str) -> set[tuple[str, str, int]]:
    return {(d.kind, d.topic, d.partition) for d in verify(settings, schema).differences}


def forged_checkpoint(schema: str, anchor: Checkpoint) -> ev.AuditCheckpoint:
    """A checkpoint one offset past ``anchor`` with a made-up chain head, as an insider would write it."""
    return ev.AuditCheckpoint(
        meta=ev.Meta(tenant_id="platform", root_id=f"{anchor.topic}[{anchor.partition}]", producer="insider"),
        projection_schema=schema,
        topic=anchor.topic,
        partition=anchor.partition,
        next_offset=anchor.next_offset + 1,
        row_count=anchor.row_count,
        chain_head=uuid.uuid4().hex * 2,
        projector="insider",
    )
