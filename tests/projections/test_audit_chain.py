"""One audit-chain definition: the Python link and the SQL row hash agree, on edge cases and random records."""

from __future__ import annotations

import random

import psycopg

from agentlog.projections.audit_chain import GENESIS, ROW_HASH_SQL, PartitionChain, link
from tests.support import Stack

CASES = [
    ("agentlog.spawn.requests", 0, 0, 1_700_000_000_000, b"root-1", b"\xc3\x01value"),
    ("x.agentlog.policy.decisions", 5, 2**40, -1, None, b""),
    ("t\u00e9st", 2**31 - 1, 7, 3, b"", None),
]


def _random_records(count: int) -> list[tuple[str, int, int, int, bytes | None, bytes | None]]:
    rng = random.Random(20261201)
    letters = "abcz.-_\u00e9\u4e2d\U0001f600"

    def maybe_bytes() -> bytes | None:
        return None if rng.random() < 0.1 else rng.randbytes(rng.choice([0, 1, 17, 300]))

    return [
        (
            "".join(rng.choice(letters) for _ in range(rng.randint(1, 40))),
            rng.randint(0, 2**31 - 1),
            rng.randint(0, 2**63 - 1),
            rng.choice([-1, 0, rng.randint(0, 2**62)]),
            maybe_bytes(),
            maybe_bytes(),
        )
        for _ in range(count)
    ]


def test_link_chains_records_of_a_partition() -> None:
    """A partition's chain is the link function applied record after record; each link depends on the one before."""
    prev = GENESIS
    for topic, partition, offset, timestamp, key, value in CASES:
        chained = PartitionChain(topic, partition).link(prev, offset, timestamp, key, value)
        assert (
            chained
            == link(prev, topic, partition, offset, timestamp, key, value)
            != link(b"\x01" * 32, topic, partition, offset, timestamp, key, value)
        )
        prev = chained


SIGNATURES = [None, "", "v1;ed25519:00;0/1;sig;", "\u00e9\U0001f600;x"]


def test_the_database_computes_the_same_hash_as_python(stack: Stack) -> None:
    """ROW_HASH_SQL over a row's columns equals the Python link, by both link versions, for the edge cases and
    300 random records, signed or not."""
    query = (
        "SELECT " + ROW_HASH_SQL + " FROM (SELECT %s::bytea AS prev_hash, %s::text AS topic, %s::int AS partition,"
        ' %s::bigint AS "offset", %s::bigint AS timestamp_ms, %s::bytea AS key, %s::bytea AS raw_value,'
        " %s::smallint AS chain_version, %s::text AS signature) AS r"
    )
    rng = random.Random(7)
    with psycopg.connect(stack.database_url) as conn:
        for topic, partition, offset, timestamp, key, value in CASES + _random_records(300):
            prev = rng.randbytes(32)
            version, signature = rng.choice([1, 2]), rng.choice(SIGNATURES)
            fields = (topic, partition, offset, timestamp, key, value)
            row = conn.execute(query, (prev, *fields, version, signature)).fetchone()
            assert row is not None
            in_v1 = None if version == 1 else signature  # version 1 does not cover the signature
            assert bytes(row[0]) == link(prev, *fields, in_v1, version), (topic, offset, version)


def test_version_2_covers_the_signature_and_differs_from_version_1() -> None:
    fields = ("t", 0, 5, 1_000, b"k", b"v")
    hashes = {link(GENESIS, *fields, s, 2) for s in SIGNATURES} | {link(GENESIS, *fields, None, 1)}
    assert len(hashes) == len(SIGNATURES) + 1
    assert link(GENESIS, *fields, "ignored", 1) == link(GENESIS, *fields, None, 1)
