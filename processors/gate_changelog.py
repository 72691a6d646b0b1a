"""The spawn gate's state, kept in a compacted changelog topic written in its transactions.

Layout 2 (this one) holds a tree in several records, so that a tree as large as a policy
allows keeps fitting the broker's message limit:

- the **tree record**, key ``0xFF 'h' root_id``: the tree without its agents (tenant,
  remembered request ids, circuit, end) and how many chunks its agents take;
- the **partition record**, key ``0xFF 'p'``: the name of the policy the gate enforces
  there (a worker started with another ``--policy`` refuses to go on);
- **agent chunks**, key ``0xFF 'c' k root_id`` (``k`` a 4-byte big-endian number): rows
  of agents in creation order, up to :data:`CHUNK_BYTES` a chunk.

Keys start with the byte 0xFF, which no UTF-8 text (no root id) can start with, so no root
id can name another tree's records. A batch writes the tree record of every tree it
changed and only the chunks whose bytes changed (:class:`ChangelogWriter` remembers what
it wrote); a forgotten tree becomes tombstones. Layout 1 (one record per tree, key
``root_id``, the whole tree) is still read; a tree restored from it is written in layout 2
and its old record tombstoned at its next change.

The gate writes these records in the same Kafka transaction as the batch's decisions and
input offsets, so the changelog always describes exactly the state after the last
committed batch. Restoring a partition reads its changelog partition from the beginning
to the last stable offset with a ``read_committed`` consumer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from agentlog.partition_reader import PartitionReadError, read_changelog
from agentlog.processors.errors import GateError
from agentlog.processors.tree_state import PartitionState, TreeState
from agentlog.settings import Settings
from agentlog.topics import TREE_KEYED, TopicSpec

GATE_CHANGELOG = TopicSpec(
    "agentlog.spawn-gate.changelog",
    TREE_KEYED,
    (),
    "root_id",
    "Internal: the spawn gate's tree state, one compacted record per tree.",
    cleanup_policy="compact",
)


def changelog_topic(settings: Settings) -> str:
    """Deployed name of the changelog topic."""
    return settings.topic_prefix + GATE_CHANGELOG.name


LAYOUT = 2
CHUNK_BYTES = 256 * 1024
"""A chunk holds agent rows up to this many bytes (a row is at most ~3.2 KB: three ids of 256
characters of up to 4 UTF-8 bytes each, and numbers), far under the broker's 1 MB."""
_V2 = b"\xff"
_TREE = _V2 + b"h"
_CHUNK = _V2 + b"c"
_POLICY = _V2 + b"p"
"""The partition record: which policy the gate enforces on this partition."""


def tree_key(root_id: str) -> bytes:
    return _TREE + root_id.encode()


def chunk_key(root_id: str, number: int) -> bytes:
    return _CHUNK + number.to_bytes(4, "big") + root_id.encode()


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(chunk: bytes) -> bytes:
    return hashlib.blake2b(chunk, digest_size=16).digest()


def encode_chunks(tree: TreeState, limit: int = CHUNK_BYTES) -> list[bytes]:
    """The agent chunks of ``tree`` in creation order, each a JSON list of rows of at most ``limit`` bytes.

    Rows fill a chunk in order; a chunk's rows change only when its agents change (or a
    row before them changes size), so a growing tree rewrites its last chunk and those
    holding the agents a batch touched.
    """
    rows = tree.agent_rows()
    whole = _json(rows)
    if len(whole) <= limit:  # packing the rows one at a time would make one chunk of these very bytes
        return [whole]
    return pack_rows(rows, limit)


def pack_rows(rows: list[list[Any]], limit: int = CHUNK_BYTES) -> list[bytes]:
    """``rows`` encoded one at a time, packed in order into chunks of at most ``limit`` bytes."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for row in rows:
        encoded = _json(row)
        if current and size + len(encoded) + 1 > limit:
            chunks.append(b"[" + b",".join(current) + b"]")
            current, size = [], 0
        current.append(encoded)
        size += len(encoded) + 1
    chunks.append(b"[" + b",".join(current) + b"]")
    return chunks


class ChangelogWriter:
    """The records to write for the trees of one partition that a batch changed.

    It remembers a digest of every chunk written (or restored), so that a batch writes a
    large tree's tree record and only its changed chunks. After an aborted transaction the
    worker restores the partition, and with it a new writer: what it remembers is always
    what is committed.
    """

    def __init__(self, policy_name: str | None = None, partitions: int | None = None) -> None:
        self.policy_name = policy_name
        """The policy the gate has enforced on this partition (the partition record), if any."""
        self.partitions = partitions
        """The partition count the partition's state was written for (the partition record), if recorded."""
        self._chunks: dict[str, list[bytes]] = {}
        """Per tree, a digest of each chunk on the changelog."""
        self._legacy: set[str] = set()
        """Trees whose layout-1 record is still on the changelog."""

    def restored(self, held: Held) -> None:
        """Note what the changelog holds of a tree after a restore."""
        self._chunks[held.tree.root_id] = held.digests
        if held.legacy:
            self._legacy.add(held.tree.root_id)

    def partition_records(self, policy_name: str, partitions: int) -> list[tuple[bytes, bytes | None]]:
        """The partition record naming ``policy_name`` and the partition count, if it is not written yet."""
        if (self.policy_name, self.partitions) == (policy_name, partitions):
            return []
        self.policy_name, self.partitions = policy_name, partitions
        return [(_POLICY, _json({"layout": LAYOUT, "policy": policy_name, "partitions": partitions}))]

    def records(self, root_id: str, tree: TreeState | None) -> list[tuple[bytes, bytes | None]]:
        """(key, value) of what changed for ``root_id``; ``tree`` None: the tree is forgotten."""
        written = self._chunks.pop(root_id, [])
        out: list[tuple[bytes, bytes | None]] = []
        if root_id in self._legacy:
            self._legacy.discard(root_id)
            out.append((root_id.encode(), None))
        if tree is None:
            out += [(chunk_key(root_id, k), None) for k in range(len(written))]
            out.append((tree_key(root_id), None))
            return out
        chunks = encode_chunks(tree)
        digests = [_digest(chunk) for chunk in chunks]
        out += [
            (chunk_key(root_id, k), chunk)
            for k, (chunk, digest) in enumerate(zip(chunks, digests, strict=True))
            if k >= len(written) or written[k] != digest
        ]
        out += [(chunk_key(root_id, k), None) for k in range(len(chunks), len(written))]
        out.append((tree_key(root_id), _json({"layout": LAYOUT, **tree.header(), "chunks": len(chunks)})))
        self._chunks[root_id] = digests
        return out


@dataclass(frozen=True)
class Held:
    """A tree as the changelog holds it: the tree, digests of its layout-2 chunks as read, and whether a layout-1
    record remains."""

    tree: TreeState
    digests: list[bytes]
    legacy: bool


def _assemble(records: dict[bytes, bytes]) -> list[Held]:
    """The trees the latest records of one changelog partition describe."""
    headers: dict[str, dict[str, Any]] = {}
    chunks: dict[tuple[str, int], bytes] = {}
    legacy: dict[str, bytes] = {}
    for key, value in records.items():
        if key.startswith(_TREE):
            headers[key[len(_TREE) :].decode()] = json.loads(value)
        elif key.startswith(_CHUNK):
            number = int.from_bytes(key[len(_CHUNK) : len(_CHUNK) + 4], "big")
            chunks[(key[len(_CHUNK) + 4 :].decode(), number)] = value
        else:
            legacy[key.decode()] = value
    trees: list[Held] = []
    for root_id, header in headers.items():
        count = int(header.pop("chunks"))
        header.pop("layout", None)
        missing = [k for k in range(count) if (root_id, k) not in chunks]
        if missing:
            raise GateError(f"the changelog of tree {root_id!r} lacks agent chunks {missing}")
        held = [chunks[(root_id, k)] for k in range(count)]
        rows = [row for chunk in held for row in json.loads(chunk)]
        trees.append(Held(TreeState.from_parts(header, rows), [_digest(chunk) for chunk in held], root_id in legacy))
    trees += [
        Held(TreeState.from_dict(json.loads(v)), [], True) for root_id, v in legacy.items() if root_id not in headers
    ]
    return trees


def restore_partitions(
    settings: Settings, partitions: list[int], partition_count: int, timeout_s: float = 60.0
) -> dict[int, tuple[PartitionState, ChangelogWriter]]:
    """The state of each of ``partitions`` as of the last committed transaction, read in one pass,
    and a writer that knows what the changelog holds of it.

    Each partition is read to its stable end (:mod:`agentlog.partition_reader`): a
    transaction still being committed (or aborted) is waited for, so that the state
    matches the input offsets committed with it. ``timeout_s`` bounds the time without
    progress (a broker outage), not the whole restore.
    """
    try:
        latest = read_changelog(settings, changelog_topic(settings), partitions, timeout_s)
    except PartitionReadError as e:
        raise GateError(f"restoring partitions {sorted(partitions)}: {e}") from e
    restored = {}
    for partition, records in latest.items():
        state = PartitionState(partition=partition, partitions=partition_count)
        present = {k: v for k, v in records.items() if v is not None}
        partition_record = json.loads(present.pop(_POLICY, b"{}"))
        recorded = partition_record.get("partitions")
        if recorded is not None and recorded != partition_count:
            raise GateError(
                f"partition {partition} of {changelog_topic(settings)} holds state decided with {recorded} tree"
                f" partitions, but the topics have {partition_count}: trees would be looked for on the wrong"
                " partition; restore the topics' count or migrate as the README's 'Partitions' section says"
            )
        writer = ChangelogWriter(partition_record.get("policy"), recorded)
        for held in _assemble(present):
            state.put_tree(held.tree)
            writer.restored(held)
        state.compact_deadlines()
        restored[partition] = (state, writer)
    return restored
