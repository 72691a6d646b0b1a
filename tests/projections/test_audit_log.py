"""The audit log: append-only for the projector role, chained, tamper-evident, queryable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import errors

from agentlog.events import Event
from agentlog.projections import audit_chain
from agentlog.projections.audit import AuditFilter, show, verify_stored_chains
from agentlog.projections.db import PROJECTOR_ROLE, connect
from agentlog.projections.projector import ProjectorStats
from agentlog.projections.workload import ForestShape, forest
from agentlog.settings import Settings


@pytest.fixture
def projected(publish: Callable[[list[Event]], None], project: Callable[..., ProjectorStats]) -> list[Event]:
    """Two small trees, published and projected."""
    events = forest(ForestShape(roots=2))
    publish(events)
    project()
    return events


@pytest.mark.usefixtures("projected")
@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET record_name = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
    ids=["update", "delete", "truncate"],
)
def test_projector_role_cannot_change_the_audit_log(settings: Settings, schema: str, statement: str) -> None:
    """As the projector role, UPDATE, DELETE and TRUNCATE of the audit log are refused; INSERT and SELECT are not."""
    with connect(settings, schema, role=PROJECTOR_ROLE, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() != (0,)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)


def test_chain_links_every_row_to_the_one_before(db: psycopg.Connection[Any], projected: list[Event]) -> None:
    """The first row of each partition links to genesis, every other to its predecessor's hash."""
    rows = db.execute('SELECT topic, partition, "offset", prev_hash, hash FROM audit_log ORDER BY 1, 2, 3').fetchall()
    assert len(rows) == len(projected)
    previous: dict[tuple[str, int], bytes] = {}
    for topic, partition, _offset, prev_hash, chain_hash in rows:
        assert bytes(prev_hash) == previous.get((topic, partition), audit_chain.GENESIS)
        previous[(topic, partition)] = bytes(chain_hash)
    assert verify_stored_chains(db) == []


@pytest.mark.usefixtures("projected")
@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (
            "UPDATE audit_log SET raw_value = raw_value || '\\x00'::bytea WHERE (topic, partition, \"offset\") = "
            '(SELECT topic, partition, "offset" FROM audit_log ORDER BY 1, 2, 3 LIMIT 1)',
            "hash",
        ),
        (
            'DELETE FROM audit_log WHERE (topic, partition, "offset") = '
            '(SELECT topic, partition, "offset" FROM audit_log ORDER BY 1, 2, 3 LIMIT 1)',
            "prev_hash",
        ),
    ],
    ids=["changed", "removed"],
)
def test_tampering_breaks_the_chain(db: psycopg.Connection[Any], tamper: str, problem: str) -> None:
    """A changed or removed row (by someone with more rights than the projector) is found by verification."""
    db.execute(tamper)
    breaks = verify_stored_chains(db)
    assert [b.problem for b in breaks][:1] == [problem]


def test_link_covers_every_field() -> None:
    """Changing any covered field, or the previous hash, changes the hash."""
    base = (audit_chain.GENESIS, "t", 0, 5, 1_000, b"k", b"v")
    original = audit_chain.link(*base)
    variants = [
        (b"\x01" * 32, "t", 0, 5, 1_000, b"k", b"v"),
        (audit_chain.GENESIS, "u", 0, 5, 1_000, b"k", b"v"),
        (audit_chain.GENESIS, "t", 1, 5, 1_000, b"k", b"v"),
        (audit_chain.GENESIS, "t", 0, 6, 1_000, b"k", b"v"),
        (audit_chain.GENESIS, "t", 0, 5, 1_001, b"k", b"v"),
        (audit_chain.GENESIS, "t", 0, 5, 1_000, None, b"v"),
        (audit_chain.GENESIS, "t", 0, 5, 1_000, b"", b"v"),
        (audit_chain.GENESIS, "t", 0, 5, 1_000, b"kv", b""),
    ]
    assert len({audit_chain.link(*v) for v in variants} | {original}) == len(variants) + 1


def test_show_filters_by_root_agent_record_and_time(db: psycopg.Connection[Any], projected: list[Event]) -> None:
    """Audit rows filter by tree, by agent in any role, by record name and by Kafka time range."""
    of_root = show(db, AuditFilter(root_id="root-0-1", limit=1000))
    assert len(of_root) == len(projected) // 2
    assert {e.root_id for e in of_root} == {"root-0-1"}
    of_agent = show(db, AuditFilter(agent_id="root-0-1.2", limit=1000))
    assert {e.record_name.rsplit(".", 1)[-1] for e in of_agent if e.record_name} >= {
        "SpawnApproved",
        "AgentStarted",
        "TokensConsumed",
    }
    denied = show(db, AuditFilter(record="SpawnDenied", limit=1000))
    assert len(denied) == 8
    assert {e.record_name for e in denied} == {"agentlog.decision.SpawnDenied"}
    first = min(e.kafka_ts for e in of_root if e.kafka_ts)
    assert show(db, AuditFilter(until=first, root_id="root-0-1")) == []
    assert len(show(db, AuditFilter(since=first, root_id="root-0-1", limit=3))) == 3
