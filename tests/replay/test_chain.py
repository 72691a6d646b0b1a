"""The fast partition chain and the database's row hash agree with the projector's chain function."""

from __future__ import annotations

import psycopg

from agentlog.projections.audit_chain import GENESIS, link
from agentlog.replay.chain import ROW_HASH_SQL, PartitionChain

from .conftest import Recorded

CASES = [
    ("agentlog.spawn.requests", 0, 0, 1_700_000_000_000, b"root-1", b"\xc3\x01value"),
    ("x.agentlog.policy.decisions", 5, 2**40, -1, None, b""),
    ("t\u00e9st", 2**31 - 1, 7, 3, b"", None),
]


def test_partition_chain_equals_audit_chain_link() -> None:
    """PartitionChain.link hashes exactly what audit_chain.link hashes, nulls and empties included."""
    prev = GENESIS
    for topic, partition, offset, timestamp, key, value in CASES:
        fast = PartitionChain(topic, partition).link(prev, offset, timestamp, key, value)
        assert fast == link(prev, topic, partition, offset, timestamp, key, value)
        prev = fast


def test_the_database_recomputes_the_same_row_hash(recorded: Recorded) -> None:
    """ROW_HASH_SQL over a row's columns gives the hash the chain function gives for the same values."""
    with psycopg.connect(recorded.settings.database_url.get_secret_value()) as conn:
        for topic, partition, offset, timestamp, key, value in CASES:
            query = (
                "SELECT "
                + ROW_HASH_SQL
                + " FROM (SELECT %s::bytea AS prev_hash, %s::text AS topic, %s::int AS partition,"
                ' %s::bigint AS "offset", %s::bigint AS timestamp_ms, %s::bytea AS key, %s::bytea AS raw_value) AS r'
            )
            row = conn.execute(query, (b"\x01" * 32, topic, partition, offset, timestamp, key, value)).fetchone()
            assert row is not None
            assert bytes(row[0]) == link(b"\x01" * 32, topic, partition, offset, timestamp, key, value)
