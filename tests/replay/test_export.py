"""`replay export` and `replay check-export` on a real gate run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentlog.processors import DecisionPoint
from agentlog.replay.check_export import check_export, read_lines
from agentlog.replay.export import ExportFormat, export, manifest_path
from agentlog.replay.runs import decisions_report
from agentlog.replay.selection import Selection
from agentlog.topics import POLICY_DECISIONS

from .conftest import Recorded

AGENTLOG = [sys.executable, "-m", "agentlog.cli.main"]


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def test_export_of_a_tree_is_decoded_ordered_and_checks_out(recorded: Recorded, tmp_path: Path) -> None:
    """The CLI exports one tree with positions and chain hashes; its manifest counts it; check-export passes."""
    out = tmp_path / "tree.jsonl"
    result = subprocess.run(
        [*AGENTLOG, "replay", "export", "--root", recorded.root_id, "-o", str(out), "-q"],
        env=recorded.env(),
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = _lines(out)
    events = [line for line in lines if not str(line["topic"]).endswith("policy.config")]
    assert events and all(line["event"]["meta"]["root_id"] == recorded.root_id for line in events)  # type: ignore[index]
    per_partition = [(line["timestamp_ms"], line["topic"]) for line in events]
    assert [t for t, _ in per_partition] == sorted(t for t, _ in per_partition)  # one partition, in append order
    assert {"prev_hash", "hash", "offset", "partition", "value_b64"} <= lines[0].keys()
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["records"] == len(lines)
    assert manifest["request"]["root_id"] == recorded.root_id
    assert sum(manifest["counts"].values()) == len(lines)
    assert manifest["last"]["offset"] == lines[-1]["offset"]
    checked = subprocess.run(
        [*AGENTLOG, "replay", "check-export", str(out)], check=False, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "check out" in checked.stdout


def test_export_of_everything_as_csv_has_unbroken_chains(recorded: Recorded, tmp_path: Path) -> None:
    """An unfiltered CSV export holds every record; check-export verifies each partition's chain end to end."""
    out = tmp_path / "all.csv"
    manifest = export(recorded.settings, Selection(), out, ExportFormat.csv)
    assert manifest.complete
    assert manifest.records == sum(p.read for p in manifest.partitions)
    assert check_export(out) == []


def test_export_of_a_subtree_holds_only_its_agents(recorded: Recorded, tmp_path: Path) -> None:
    """A subtree export names only the agent and its descendants (found from the recorded approvals)."""
    full = tmp_path / "tree.jsonl"
    export(recorded.settings, Selection(root_id=recorded.root_id), full)
    approvals = [line["event"] for line in _lines(full) if str(line["record"]).endswith("SpawnApproved")]
    first = approvals[0]["child_agent_id"]  # type: ignore[index]
    below = {a["child_agent_id"] for a in approvals if a["parent_agent_id"] == first}  # type: ignore[index]
    below |= {a["child_agent_id"] for a in approvals if a["parent_agent_id"] in below}  # type: ignore[index]
    out = tmp_path / "subtree.jsonl"
    manifest = export(recorded.settings, Selection(agent_id=str(first)), out)
    assert manifest.request["root_id"] == recorded.root_id  # found from the agent
    fields = ("agent_id", "child_agent_id", "parent_agent_id", "ended_by_agent_id")
    subtree = {first, *below}
    for line in _lines(out):
        if str(line["topic"]).endswith("policy.config"):
            continue
        named = {line["event"].get(f) for f in fields} - {None}  # type: ignore[union-attr]
        assert named & subtree, line
    assert check_export(out) == []


def test_export_of_a_tenant_and_a_time_range(recorded: Recorded, tmp_path: Path) -> None:
    """Tenant and time filters keep exactly the matching records."""
    everything = tmp_path / "all.jsonl"
    export(recorded.settings, Selection(), everything)
    events = [line for line in _lines(everything) if line["event"] and "meta" in line["event"]]  # type: ignore[operator]
    stamps = sorted(int(line["timestamp_ms"]) for line in events)  # type: ignore[call-overload]
    middle = stamps[len(stamps) // 2]
    from datetime import UTC, datetime

    since = datetime.fromtimestamp(middle / 1000, UTC)
    out = tmp_path / "range.jsonl"
    manifest = export(recorded.settings, Selection(tenant_id="globex", since=since), out)
    kept = [line for line in _lines(out) if not str(line["topic"]).endswith("policy.config")]
    assert kept and all(int(line["timestamp_ms"]) >= middle for line in kept)  # type: ignore[call-overload]
    assert all(line["event"]["meta"]["tenant_id"] == "globex" for line in kept)  # type: ignore[index]
    expected = sum(
        1
        for line in events
        if int(line["timestamp_ms"]) >= middle
        and line["event"]["meta"]["tenant_id"] == "globex"
        and not str(line["topic"]).endswith("policy.config")
    )  # type: ignore[call-overload,index]
    assert len(kept) == expected
    assert manifest.records == len(_lines(out))
    none = export(recorded.settings, Selection(tenant_id="nobody-has-this"), tmp_path / "none.jsonl")
    assert set(none.counts) == {"agentlog.policy.PolicyPublished"}


def test_check_export_names_a_changed_line_and_a_changed_file(recorded: Recorded, tmp_path: Path) -> None:
    """A record edited in an export breaks its line's hash and decoded event, and the file digest."""
    out = tmp_path / "tree.jsonl"
    export(recorded.settings, Selection(root_id=recorded.root_id), out)
    lines = out.read_text().splitlines()
    victim = json.loads(lines[3])
    victim["event"]["meta"]["producer"] = "forger"
    victim["timestamp_ms"] += 1
    lines[3] = json.dumps(victim, separators=(",", ":"))
    out.write_text("\n".join(lines) + "\n")
    problems = [str(p) for p in check_export(out)]
    assert any(p.startswith("file SHA-256") for p in problems)
    assert any(p.startswith("line 4:") and "hash does not match" in p for p in problems)
    assert any(p.startswith("line 4:") and "differs from the value bytes in meta" in p for p in problems)
    result = subprocess.run(
        [*AGENTLOG, "replay", "check-export", str(out)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "line 4:" in result.stdout


@pytest.mark.parametrize("encoding", [ExportFormat.jsonl, ExportFormat.csv])
def test_an_export_keeps_the_decision_points_and_replays_byte_for_byte(
    recorded: Recorded, tmp_path: Path, encoding: ExportFormat
) -> None:
    """Each exported decision carries the gate's decision point; replaying the file follows them and is clean."""
    out = tmp_path / f"tree.{encoding.value}"
    export(recorded.settings, Selection(root_id=recorded.root_id), out, encoding)
    decisions = [line for _, line in read_lines(out, encoding.value) if line.topic.endswith(POLICY_DECISIONS.name)]
    assert decisions and all(DecisionPoint.of(line.headers) is not None for line in decisions)
    report = decisions_report(recorded.settings, log=out)
    assert report.clean, [o.as_json() for o in report.outcomes]
    assert report.reproduced == report.recorded == len(decisions)
