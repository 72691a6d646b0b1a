"""Golden logs: recorded gate runs, checked in, must replay to the recorded decisions byte for byte."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentlog import events as ev
from agentlog.processors.policy import Policy, to_event
from agentlog.records import Record
from agentlog.replay.check_export import check_export
from agentlog.replay.errors import PolicyNameError
from agentlog.replay.export import manifest_path
from agentlog.replay.policies import resolve_policy_name
from agentlog.replay.render import decision_report_text
from agentlog.replay.runs import decisions_report
from agentlog.serde import Serde
from agentlog.settings import Settings

from .scenarios import policy_version

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
LOGS = sorted(GOLDEN.glob("*.jsonl"))


def _decisions(path: Path) -> list[dict[str, object]]:
    lines = (json.loads(text) for text in path.read_text().splitlines())
    return [line for line in lines if ".decision." in (line["record"] or "")]


def _copy(path: Path, into: Path) -> Path:
    target = into / path.name
    shutil.copy(path, target)
    shutil.copy(manifest_path(path), manifest_path(target))
    return target


def test_there_are_golden_logs() -> None:
    """The recorded scenarios are checked in."""
    assert {p.stem for p in LOGS} >= {"denials", "lifecycle", "forgetting", "tenants"}


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_golden_log_checks_out_against_its_manifest(path: Path) -> None:
    """Digest, chain hashes, decoded events and counts of each golden log are intact."""
    assert check_export(path) == []


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_golden_log_replays_byte_for_byte(path: Path) -> None:
    """The gate's pure core reproduces every recorded decision, byte for byte, and decides nothing else."""
    report = decisions_report(Settings(), log=path)
    assert report.outcomes == []
    assert report.recorded == len(_decisions(path)) > 0
    assert report.reproduced == report.recorded
    assert report.pending == 0


def _mission_facts(path: Path) -> list[dict[str, Any]]:
    lines = (json.loads(text) for text in path.read_text().splitlines())
    return [line for line in lines if ".mission.events" in line["topic"]]


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_golden_log_replays_the_mission_processor_byte_for_byte(path: Path) -> None:
    """The mission processor's pure core reproduces every recorded mission fact and decides nothing else."""
    report = decisions_report(Settings(), log=path, processor="missions")
    assert report.outcomes == []
    assert report.reproduced == report.recorded == len(_mission_facts(path))
    assert report.pending == 0


def test_the_missions_log_covers_the_lifecycle_and_every_rejection() -> None:
    """Every row of the lifecycle table, every rejection reason, a retry cycle to exhaustion and a cascade."""
    from agentlog.processors.mission_core import REQUESTABLE

    facts = [line["event"] for line in _mission_facts(GOLDEN / "missions.jsonl")]
    moves = {(f["from_state"], f["to_state"]) for f in facts if "to_state" in f and "reason_code" not in f}
    requestable = {(before.value, to.value) for to, befores in REQUESTABLE.items() for before in befores}
    automatic = {("UNKNOWN", "READY"), ("READY", "PENDING"), ("PENDING", "READY"), ("PENDING", "BLOCKED"),
                 ("READY", "BLOCKED"), ("FAILED", "READY")}  # fmt: skip
    assert requestable | automatic <= moves, f"missing {sorted((requestable | automatic) - moves)}"
    every_log = [line["event"] for path in LOGS for line in _mission_facts(path)]  # the handoffs' are in bus.jsonl
    codes = {f["reason_code"] for f in every_log if "reason_code" in f}
    assert {c.value for c in ev.MissionRejection} - {"UNKNOWN"} <= codes, sorted(
        {c.value for c in ev.MissionRejection} - {"UNKNOWN"} - codes
    )
    runs = [f for f in facts if f.get("to_state") == "RUNNING" and "reason_code" not in f]
    build = [f["attempt"] for f in runs if f["mission_id"] == "build"]
    assert build == [1, 2, 3]
    cascaded = {f["mission_id"] for f in facts if "ancestor mission release" in f.get("reason", "")}
    assert cascaded == {"package", "sign"}


def _bus_facts(path: Path) -> list[dict[str, Any]]:
    lines = (json.loads(text) for text in path.read_text().splitlines())
    return [line for line in lines if ".message.events" in line["topic"]]


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_golden_log_replays_the_bus_byte_for_byte(path: Path) -> None:
    """The consultation bus's pure core reproduces every recorded fact, and every record it handed over to the gate
    and the mission processor, and decides nothing else."""
    report = decisions_report(Settings(), log=path, processor="bus")
    assert report.outcomes == []
    handed = [line for line in _lines(path) if line["event"]["meta"]["producer"] == "agentlog.bus"]
    handed = [line for line in handed if ".message.events" not in line["topic"]]
    assert report.reproduced == report.recorded == len(_bus_facts(path)) + len(handed)
    assert report.pending == 0


def _lines(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    return [line for line in lines if line.get("event")]


def test_the_bus_log_covers_every_rejection_an_escalation_chain_and_late_answers() -> None:
    """Each rejection reason; a question escalated to the root and expired there, then decided late; a request
    expired and replied to late; a second decision after the first; a freeze and a thaw; a mission handed off."""
    path = GOLDEN / "bus.jsonl"
    facts = [(line["record"].rsplit(".", 1)[-1], line["event"]) for line in _bus_facts(path)]
    reasons = {f["reason"] for name, f in facts if name == "MessageRejected"}
    assert {r.value for r in ev.MessageRejection} - {"UNKNOWN"} <= reasons
    escalated = [f for name, f in facts if name == "QuestionEscalated"]
    assert [(e["level"], e["to_agent_id"]) for e in escalated] == [(1, "golden-bus")]  # lead -> the root
    expired = {f["kind"]: f for name, f in facts if name == "MessageExpired"}
    assert set(expired) == {"REQUEST", "QUESTION"} and expired["QUESTION"]["escalations"] == 1
    late = {f["reason"] for name, f in facts if name == "MessageRejected" and f["kind"] in ("REPLY", "DECISION")}
    assert {"EXPIRED", "ALREADY_ANSWERED"} <= late
    decided = [f for name, f in facts if name == "MessageAccepted" and f["kind"] == "DECISION"]
    assert len(decided) == 2
    records = {line["record"].rsplit(".", 1)[-1] for line in _lines(path)}
    assert {"TreeFreezeRequested", "TreeFrozen", "TreeThawed", "MissionHandoffRequested", "MissionHandedOff"} <= records


def test_the_retention_log_archives_by_timer_ticks() -> None:
    """Finished missions archived after the policy's retention: facts of a tick (no cause), replayed as ticks."""
    facts = [line["event"] for line in _mission_facts(GOLDEN / "retention.jsonl")]
    ticked = [(f["mission_id"], f["from_state"]) for f in facts if f["meta"]["causation_id"] is None]
    assert ticked == [("done", "COMPLETED"), ("dropped", "CANCELLED"), ("later", "COMPLETED")]


def test_a_forged_mission_fact_is_found(tmp_path: Path) -> None:
    """A recorded mission fact changed after the fact (its state, by an insider) is reported, both sides shown."""
    path = _copy(GOLDEN / "missions.jsonl", tmp_path)
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    serde = Serde()
    target = next(
        line
        for line in lines
        if line["record"] == ev.MissionTransitioned.avro_name and line["event"]["to_state"] == "COMPLETED"
    )
    forged = ev.MissionTransitioned.model_validate(target["event"]).model_copy(update={"quality_score": 1.0})
    target["value_b64"] = base64.b64encode(serde.encode(forged, target["topic"])).decode()
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = decisions_report(Settings(), log=path, processor="missions")
    assert [(o.status, o.processor) for o in report.outcomes] == [("divergent", "missions")]
    assert report.outcomes[0].recorded[0]["quality_score"] == 1.0


def test_a_log_whose_broker_clock_stepped_back_replays_byte_for_byte(tmp_path: Path) -> None:
    """The forgetting log with every append time after its first decision moved back ten minutes, as a broker
    clock stepping back would: the decision points keep the order, and every decision is reproduced."""
    path = GOLDEN / "forgetting.jsonl"
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    step_at = min(int(line["timestamp_ms"]) for line in lines if ".decision." in (line["record"] or ""))
    for line in lines:
        if int(line["timestamp_ms"]) > step_at:
            line["timestamp_ms"] = int(line["timestamp_ms"]) - 600_000
    stepped = _copy(path, tmp_path)
    stepped.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert any(int(a["timestamp_ms"]) > int(b["timestamp_ms"]) for a, b in itertools.pairwise(lines))
    report = decisions_report(Settings(), log=stepped)
    assert report.outcomes == []
    assert report.reproduced == report.recorded == len(_decisions(path))


def test_golden_logs_cover_every_denial_cascade_return_and_timeout() -> None:
    """Between them the golden logs hold every denial reason, each termination path, returns and a timeout."""
    decisions = [d for path in LOGS for d in _decisions(path)]
    reasons = {d["event"]["reason"] for d in decisions if d["event"].get("reason")}  # type: ignore[index,union-attr]
    every_denial = {r.value for r in ev.DenialReason} - {"UNKNOWN", "NO_POLICY"}  # a gate never runs without one
    assert every_denial <= reasons, f"missing {sorted(every_denial - reasons)}"
    assert {"ANCESTOR_ENDED", "REQUESTED"} <= reasons
    kinds = {str(d["record"]).rsplit(".", 1)[-1] for d in decisions}
    expected = {"AgentTimedOut", "BudgetExhausted", "BudgetToppedUp", "CircuitOpened", "RootRejected", "TreeForgotten"}
    expected.add("LifecycleRejected")
    assert expected <= kinds
    returned = [d["event"]["returned_tokens"] for d in decisions if "returned_tokens" in d["event"]]  # type: ignore[operator,index]
    assert any(int(t) > 0 for t in returned)  # type: ignore[call-overload]
    versions = {d["event"]["policy_version"] for d in decisions}  # type: ignore[index]
    assert {1, 2, 3} <= versions
    assert any(d["event"].get("repeat") for d in decisions)  # type: ignore[union-attr]


def test_an_altered_decision_is_reported_side_by_side(tmp_path: Path) -> None:
    """A recorded decision whose bytes differ from the replay's is a divergence naming the field and both values."""
    path = _copy(GOLDEN / "denials.jsonl", tmp_path)
    serde = Serde()
    lines = path.read_text().splitlines()
    for i, text in enumerate(lines):
        line = json.loads(text)
        if line["record"] == ev.SpawnApproved.avro_name:
            event = serde.decode(base64.b64decode(line["value_b64"]))
            forged = event.model_copy(update={"granted_token_budget": 999_999})
            line["value_b64"] = base64.b64encode(serde.encode(forged, line["topic"])).decode()
            lines[i] = json.dumps(line, separators=(",", ":"))
            target = line
            break
    path.write_text("\n".join(lines) + "\n")
    report = decisions_report(Settings(), log=path)
    assert [o.status for o in report.outcomes] == ["divergent"]
    outcome = report.outcomes[0]
    assert outcome.recorded[0]["_position"] == f"{target['topic']}[{target['partition']}]@{target['offset']}"
    assert outcome.recorded[0]["granted_token_budget"] == 999_999
    assert outcome.replayed[0]["granted_token_budget"] == 120_000
    text = "\n".join(decision_report_text(report))
    assert "granted_token_budget: recorded 999999 | replayed 120000" in text
    assert "1 divergences" in text


def test_what_if_lists_the_decisions_another_policy_changes() -> None:
    """Under max_depth 1 the depth-2 and depth-3 approvals become denials, reported as changes."""
    strict: Policy = policy_version(9, max_depth=1)
    report = decisions_report(Settings(), log=GOLDEN / "denials.jsonl", what_if=strict)
    assert report.what_if == "default v9"
    assert report.outcomes, "a stricter depth limit must change decisions"
    assert all(o.status == "changed" for o in report.outcomes)
    flipped = [
        o
        for o in report.outcomes
        if o.recorded
        and o.recorded[0]["_record"] == ev.SpawnApproved.avro_name
        and o.replayed[0]["_record"] == ev.SpawnDenied.avro_name
    ]
    assert {o.recorded[0]["depth"] for o in flipped} == {2, 3}
    # the depth-2 researcher is denied, so the depth-3 one's parent is unknown
    assert {o.replayed[0]["reason"] for o in flipped} == {"DEPTH_EXCEEDED", "UNKNOWN_PARENT"}
    json.dumps([o.as_json() for o in report.outcomes], default=str)


def test_cli_replays_a_golden_log_and_shows_a_what_if(tmp_path: Path) -> None:
    """`agentlog replay decisions --log` proves the log (exit 0); with --policy it prints a diff and JSON."""
    agentlog = [sys.executable, "-m", "agentlog.cli.main", "replay", "decisions", "-q"]
    proved = subprocess.run(
        [*agentlog, "--log", str(GOLDEN / "lifecycle.jsonl")], check=False, capture_output=True, text=True
    )
    assert proved.returncode == 0, proved.stderr
    assert "every recorded decision reproduced byte for byte" in proved.stdout
    policy = tmp_path / "strict.yaml"
    policy.write_text(json.dumps(policy_version(7, max_depth=1).model_dump(mode="json")))
    what_if = [*agentlog, "--log", str(GOLDEN / "lifecycle.jsonl"), "--policy", str(policy)]
    text = subprocess.run(what_if, check=False, capture_output=True, text=True)
    assert text.returncode == 0, text.stderr
    assert "- recorded  SpawnApproved" in text.stdout
    assert "+ what-if  SpawnDenied" in text.stdout
    as_json = subprocess.run([*what_if, "--json"], check=False, capture_output=True, text=True)
    document = json.loads(as_json.stdout)
    assert document["what_if"] == "default v7"
    assert {o["status"] for o in document["outcomes"]} == {"changed"}


class _Log:
    """A log of policy records and decisions only, for naming the policy (the other parts are never read)."""

    def __init__(self, policies: list[Policy], decisions: list[ev.Event]) -> None:
        serde = Serde()
        self._policies = [
            Record("p", 0, i, i, None, serde.encode(to_event(p, published_by="test"), "p"))
            for i, p in enumerate(policies)
        ]
        self._decisions = [Record("d", 0, i, i, None, serde.encode(d, "d")) for i, d in enumerate(decisions)]

    def partitions(self) -> list[int]:
        return [0]

    def decisions(self, partition: int) -> Iterator[Record]:
        return iter(self._decisions)

    def policy_records(self) -> Iterator[Record]:
        return iter(self._policies)


def test_replay_finds_the_policy_its_decisions_name() -> None:
    """The decisions name their policy; an old log names none and falls back to the only one published."""
    default, other = policy_version(1), policy_version(1).model_copy(update={"name": "strict"})
    meta = ev.Meta(tenant_id="t", root_id="r", producer="test")
    named = ev.BudgetExhausted(meta=meta, agent_id="r", token_budget=1, tokens_used=2, policy_version=1, message="m")
    serde = Serde()
    log = _Log([default, other], [named.model_copy(update={"policy_name": "strict"})])
    assert resolve_policy_name(log, serde, None) == "strict"  # type: ignore[arg-type]
    assert resolve_policy_name(log, serde, "default") == "default"  # type: ignore[arg-type]
    assert resolve_policy_name(_Log([default], [named]), serde, None) == "default"  # type: ignore[arg-type]
    assert resolve_policy_name(_Log([], []), serde, None) == ""  # type: ignore[arg-type]
    with pytest.raises(PolicyNameError, match=r"2 policies \(default, strict\): pass --policy-name"):
        resolve_policy_name(_Log([default, other], [named]), serde, None)  # type: ignore[arg-type]
