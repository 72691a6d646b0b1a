"""The changelog layout: a tree in a tree record and agent chunks, only changed chunks written, layout 1 still read."""

from __future__ import annotations

import json

from agentlog.processors.gate_changelog import (
    CHUNK_BYTES,
    ChangelogWriter,
    _assemble,
    chunk_key,
    encode_chunks,
    pack_rows,
    tree_key,
)
from agentlog.processors.tree_state import AgentState, TreeState


def big_tree(agents: int) -> TreeState:
    tree = TreeState(root_id="root", tenant_id="acme", seen_requests={7: None, 9: None}, denials=[5])
    root = AgentState("root", None, 0, "orchestrator", 10**9, agents, agents - 1, None)
    tree.agents["root"] = root
    root.children = []
    for i in range(1, agents):
        child = AgentState(f"agent-{i}", "root", 1, "worker", 1_000, 0, 0, 123 + i)
        tree.agents[child.agent_id] = child
        root.children.append(child.agent_id)
        root.tokens_reserved += 1_000
        root.active_children += 1
    return tree


def apply(log: dict[bytes, bytes], records: list[tuple[bytes, bytes | None]]) -> None:
    """What compaction keeps of ``records`` on top of ``log``."""
    for key, value in records:
        if value is None:
            log.pop(key, None)
        else:
            log[key] = value


def test_a_large_tree_is_chunked_and_restores_exactly() -> None:
    """A 20,000-agent tree takes several chunks, none over CHUNK_BYTES, and reads back equal."""
    tree = big_tree(20_000)
    records = ChangelogWriter().records("root", tree)
    assert len(records) > 3
    assert max(len(v or b"") for _, v in records) <= CHUNK_BYTES
    log: dict[bytes, bytes] = {}
    apply(log, records)
    (held,) = _assemble(log)
    assert held.tree.to_dict() == tree.to_dict() and not held.legacy and held.digests


def test_only_changed_chunks_are_written() -> None:
    """Spending in one agent writes its chunk and the tree record; spending in the root, chunk 0: nothing else."""
    tree = big_tree(20_000)
    writer = ChangelogWriter()
    first = writer.records("root", tree)
    assert len(first) >= 5  # several chunks and the tree record
    chunk_of = next(k for k, chunk in enumerate(encode_chunks(tree)) if b'"agent-12000"' in chunk)
    assert chunk_of > 0
    tree.agents["agent-12000"].tokens_spent += 10
    assert [key for key, _ in writer.records("root", tree)] == [chunk_key("root", chunk_of), tree_key("root")]
    tree.agents["root"].tokens_spent += 1
    assert [key for key, _ in writer.records("root", tree)] == [chunk_key("root", 0), tree_key("root")]


def test_a_forgotten_tree_leaves_tombstones_only() -> None:
    """Every chunk and the tree record get a tombstone."""
    writer = ChangelogWriter()
    log: dict[bytes, bytes] = {}
    tree = big_tree(20_000)
    apply(log, writer.records("root", tree))
    forget = writer.records("root", None)
    assert all(value is None for _, value in forget) and len(forget) == len(encode_chunks(tree)) + 1
    apply(log, forget)
    assert log == {}


def test_layout_1_records_are_restored_and_replaced() -> None:
    """A tree written by the layout-1 gate (key root id, the whole tree) restores; its next write retires it."""
    tree = big_tree(30)
    log = {b"root": json.dumps(tree.to_dict(), separators=(",", ":")).encode()}
    (held,) = _assemble(log)
    assert held.tree.to_dict() == tree.to_dict() and held.legacy and not held.digests
    writer = ChangelogWriter()
    writer.restored(held)
    records = writer.records("root", held.tree)
    assert records[0] == (b"root", None) and len(records) == 3  # the old record retired, a chunk, the tree record
    apply(log, records)
    (again,) = _assemble(log)
    assert again.tree.to_dict() == tree.to_dict() and not again.legacy


def test_no_root_id_can_name_another_trees_records() -> None:
    """Layout-2 keys start with 0xFF, which no UTF-8 root id starts with."""
    assert not "\xffh-root".encode().startswith(b"\xff")
    assert tree_key("a") != chunk_key("a", 0) and tree_key("c\x00\x00\x00\x00a") != chunk_key("a", 0)


def test_hostile_ids_cannot_outgrow_a_chunk() -> None:
    """Agents whose ids are 256 characters of 4-byte UTF-8 each still make chunks within CHUNK_BYTES."""
    tree = big_tree(2)
    long_id = "\U0001f600" * 256
    for i in range(400):
        tree.agents[f"{long_id}{i}"[-256:]] = AgentState(f"{long_id}{i}"[-256:], long_id, 1, long_id, 1, 0, 0, None)
    chunks = [v for _, v in ChangelogWriter().records("root", tree) if v]
    assert len(chunks) > 2 and max(map(len, chunks)) <= CHUNK_BYTES


def test_the_partition_record_names_the_policy_and_the_count_once() -> None:
    """The policy and the partition count are written once per partition, and again only if one changes."""
    writer = ChangelogWriter()
    (record,) = writer.partition_records("default", 6)
    assert json.loads(record[1] or b"") == {"layout": 2, "policy": "default", "partitions": 6}
    assert writer.partition_records("default", 6) == []
    assert ChangelogWriter("default", 6).partition_records("default", 6) == []
    assert len(ChangelogWriter("default").partition_records("default", 6)) == 1  # an older record had no count


def test_a_restored_writer_rewrites_nothing_unchanged() -> None:
    """The digests a restore takes from the chunks it read match what the writer would write again."""
    tree = big_tree(20_000)
    log: dict[bytes, bytes] = {}
    apply(log, ChangelogWriter().records("root", tree))
    (held,) = _assemble(log)
    writer = ChangelogWriter()
    writer.restored(held)
    assert [key for key, _ in writer.records("root", held.tree)] == [tree_key("root")]


def test_a_tree_in_one_chunk_is_encoded_at_once_to_the_same_bytes() -> None:
    """Encoding all rows in one call (the quick path) gives the chunks of packing them one at a time, on both sides
    of the size at which a tree takes a second chunk."""
    tree = big_tree(40)
    (whole,) = encode_chunks(tree, limit=10**9)
    for limit in range(len(whole) - 3, len(whole) + 3):
        assert encode_chunks(tree, limit) == pack_rows(tree.agent_rows(), limit), limit
        assert len(encode_chunks(tree, limit)) == (1 if limit >= len(whole) - 1 else 2), limit  # both sides
    assert encode_chunks(TreeState(root_id="r", tenant_id="t")) == [b"[]"]
