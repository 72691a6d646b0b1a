"""``agentlog replay``: export, check-export, verify, rebuild, decisions."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agentlog.cli.output import EXIT_BAD_INPUT, EXIT_FAILURE, fail, fail_for, kafka_settings
from agentlog.errors import AgentlogError
from agentlog.processors.errors import PolicyError
from agentlog.projections.db import DEFAULT_SCHEMA, check_schema_name
from agentlog.projections.errors import DatabaseUnavailableError, NotMigratedError
from agentlog.replay.errors import ExportFormatError, SelectionError
from agentlog.settings import get_settings

if TYPE_CHECKING:
    from agentlog.replay.decisions import DecisionReport
    from agentlog.replay.signatures import SignatureReport
    from agentlog.replay.verify import VerifyReport

app = typer.Typer(
    help="Audit replay: export, verify the audit table, rebuild the projections, re-run the decisions.",
    no_args_is_help=True,
)

Schema = Annotated[str, typer.Option(help="Schema of the live projections.")]
CheckpointSigner = Annotated[str, typer.Option(help="The principal whose platform key signs the audit checkpoints.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")]
AsJson = Annotated[bool, typer.Option("--json", help="The report as JSON on stdout.")]


def _moment(option: str, text: str | None) -> datetime | None:
    from agentlog.cli.tail import parse_since

    if text is None:
        return None
    try:
        return parse_since(text, option=option)
    except ValueError as e:
        fail(str(e), EXIT_BAD_INPUT)


def _schema(schema: str) -> str:
    try:
        return check_schema_name(schema)
    except ValueError as e:
        fail(f"--schema: {e}", EXIT_BAD_INPUT)


@app.command("export")
def export_command(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File to write; the manifest goes to FILE.manifest.json.")
    ],
    root: Annotated[str | None, typer.Option(help="Only the tree of this root id.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only the subtree under this agent (itself included).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only events of this tenant.")] = None,
    since: Annotated[str | None, typer.Option(help="Broker time from: ISO-8601 or 10m/2h/1d ago.")] = None,
    until: Annotated[str | None, typer.Option(help="Broker time up to (excluded): ISO-8601 or 10m/2h/1d ago.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="jsonl or csv.")] = "jsonl",
    checkpoint_signer: CheckpointSigner = "projector",
    quiet: Quiet = False,
) -> None:
    """Export records from Kafka, decoded, in order, with positions and chain hashes, plus a manifest."""
    from agentlog.replay.export import ExportFormat, export, manifest_path
    from agentlog.replay.progress import Progress
    from agentlog.replay.selection import Selection

    if format not in ("jsonl", "csv"):
        fail(f"--format {format!r}: expected jsonl or csv", EXIT_BAD_INPUT)
    selection = Selection(root, agent, tenant, _moment("--since", since), _moment("--until", until))
    if selection.since and selection.until and selection.since >= selection.until:
        fail("--since must be before --until", EXIT_BAD_INPUT)
    if not output.parent.exists():
        fail(f"--output {output}: directory {output.parent} does not exist", EXIT_BAD_INPUT)
    try:
        manifest = export(
            kafka_settings(),
            selection,
            output,
            ExportFormat(format),
            progress=Progress("export", enabled=not quiet),
            signer=checkpoint_signer,
        )
    except SelectionError as e:
        fail(str(e), EXIT_BAD_INPUT)
    except AgentlogError as e:
        fail_for(e)
    counts = ", ".join(f"{n} {name.rsplit('.', 1)[-1]}" for name, n in sorted(manifest.counts.items()))
    print(f"exported {manifest.records} records to {output} ({counts or 'none'})")
    print(f"manifest {manifest_path(output)}; sha256 {manifest.sha256}; {len(manifest.checkpoints)} checkpoints")


@app.command("check-export")
def check_export_command(
    file: Annotated[Path, typer.Argument(help="An export file (its manifest next to it).")],
    checkpoint_signer: CheckpointSigner = "projector",
) -> None:
    """Check an export against its manifest: digest, every chain hash, decoded events, counts, and the audit
    checkpoints it was exported under; exit 1 on a problem."""
    from agentlog.replay.check_export import check_export_report, load_manifest

    if not file.is_file():
        fail(f"{file}: no such file", EXIT_BAD_INPUT)
    try:
        manifest = load_manifest(file)
        checked = check_export_report(file, signer=checkpoint_signer)
    except ExportFormatError as e:
        fail(str(e), EXIT_BAD_INPUT)
    for problem in checked.problems:
        print(f"problem: {problem}")
    if checked.problems:
        fail(f"{file}: {len(checked.problems)} problems", EXIT_FAILURE)
    print(f"{file}: {manifest['records']} records; digest, chain hashes, decoded events and counts check out")
    if checked.anchors.newest:
        print(
            f"held to the {len(checked.anchors.newest)} checkpoints it was exported under ({checked.compared} compared"
            " with its chains; a partial export's and the compacted topics' are not):"
            f" {checked.anchors.describe()}"
        )


@app.command("verify")
def verify_command(
    schema: Schema = DEFAULT_SCHEMA,
    deep: Annotated[bool, typer.Option("--deep", help="Also compare the decoded columns (slower).")] = False,
    signatures: Annotated[
        bool, typer.Option("--signatures", help="Also re-check every row's signature against the keyring.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Partitions checked at once.")] = 8,
    max_lag: Annotated[
        str | None,
        typer.Option(
            "--max-lag", help="Fail (exit 1) when a record older than this (30s, 10m, 2h) is not projected yet."
        ),
    ] = None,
    checkpoint_signer: CheckpointSigner = "projector",
    record: Annotated[
        bool,
        typer.Option("--record", help="Store the result in audit_verifications (the login must be an auditor role)."),
    ] = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Recompute the audit chains from Kafka and compare every audit row; exit 1 on any difference.

    Each partition is held to its newest audit checkpoint signed by --checkpoint-signer's key (any checkpoint
    when the keyring holds no such key). Records not projected yet are lag, with the age of the oldest;
    --max-lag makes lag beyond it a failure. With --signatures, every signed row is also attributed to its key
    (exit 1 when one does not verify). With --record, the result is stored for operators and the console.
    """
    from agentlog.replay.progress import Progress
    from agentlog.replay.signatures import verify_signatures
    from agentlog.replay.verifications import Checked, require_auditor
    from agentlog.replay.verifications import record as record_verification
    from agentlog.replay.verify import verify

    signed: SignatureReport | None = None
    max_lag_ms = _max_lag_ms(max_lag)
    started_at = datetime.now(UTC)
    try:
        progress = Progress("verify", enabled=not quiet)
        settings, where = kafka_settings(), _schema(schema)
        if record:
            require_auditor(settings, where)
        report = verify(settings, where, deep=deep, workers=workers, progress=progress, signer=checkpoint_signer)
        now_ms = int(time.time() * 1000)
        if signatures:
            signed = verify_signatures(settings, where)
    except (DatabaseUnavailableError, NotMigratedError) as e:
        fail(str(e))
    except AgentlogError as e:
        fail_for(e)
    behind = report.lag_beyond(max_lag_ms, now_ms) if max_lag_ms is not None else {}
    clean = report.clean and not behind and (signed is None or signed.clean)
    recorded_as: int | None = None
    if record:
        checked = Checked(deep, signatures, max_lag, checkpoint_signer)
        try:
            recorded_as = record_verification(settings, started_at, report, signed, checked, clean, where)
        except AgentlogError as e:
            fail_for(e)
    if as_json:
        print(json.dumps(_verify_document(report, signed, clean, now_ms, recorded_as), indent=2))
    else:
        _print_verify(report, signed, now_ms)
        if recorded_as is not None:
            print(f"recorded as verification {recorded_as} in {where}.audit_verifications")
    _verdict(report, signed, behind, max_lag)
    if not as_json:
        print("every audit row matches Kafka and every chain verifies" + (", every signature too" if signed else ""))


def _verdict(report: VerifyReport, signed: SignatureReport | None, behind: dict[str, int], max_lag: str | None) -> None:
    """Exit 1 naming the first failure: differences, lag beyond --max-lag, signatures that do not verify."""
    if not report.clean:
        n = len(report.differences)
        fail(f"{n} difference{'s' * (n != 1)} between the audit log, Kafka and its checkpoints", EXIT_FAILURE)
    if behind:
        named = ", ".join(f"{where} (oldest {_age(age)})" for where, age in behind.items())
        fail(f"records older than --max-lag {max_lag} are not projected yet: {named}", EXIT_FAILURE)
    if signed is not None and not signed.clean:
        fail(f"{len(signed.invalid)} audit rows carry a signature that no key on the keyring made", EXIT_FAILURE)


def _verify_document(
    report: VerifyReport, signed: SignatureReport | None, clean: bool, now_ms: int, recorded_as: int | None
) -> dict[str, object]:
    document: dict[str, object] = {
        "clean": clean,
        "records": report.records,
        "rows": report.rows,
        "partitions": report.partitions,
        "lag": report.lag,
        "lag_age_s": {w: (now_ms - since) / 1000 for w, since in sorted(report.lag_since_ms.items())},
        "compacted": report.compacted,
        "anchors": report.anchors.describe() if report.anchors is not None else None,
        "differences": [d.as_json() for d in report.differences],
        "recorded_as": recorded_as,
    }
    if signed is not None:
        document["signatures"] = signed.as_json()
    return document


@app.command("verifications")
def verifications_command(
    schema: Schema = DEFAULT_SCHEMA,
    limit: Annotated[int, typer.Option(min=1, help="How many of the newest to show.")] = 10,
    as_json: AsJson = False,
) -> None:
    """The recorded verifications (``replay verify --record``), newest first: when, by whom, what was found."""
    from agentlog.replay.verifications import recorded

    try:
        rows = recorded(get_settings(), _schema(schema), limit=limit)
    except (DatabaseUnavailableError, NotMigratedError) as e:
        fail(str(e))
    if as_json:
        print(json.dumps([r.as_json() for r in rows], indent=2))
        return
    if not rows:
        print(f"no verification recorded in {schema} (run `agentlog replay verify --record` as an auditor)")
        return
    for r in rows:
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(r.differences.items())) or "no difference"
        lag = sum(int(p.get("lag", 0)) for p in r.partitions.values())
        verdict = "clean" if r.clean else "FAILED"
        print(
            f"#{r.id} {r.finished_at:%Y-%m-%d %H:%M:%S %Z} by {r.recorded_by}: {verdict}; {r.kafka_records:,} records,"
            f" {r.audit_rows:,} rows in {len(r.partitions)} partitions; {found}; {lag:,} records not projected yet"
        )


def _max_lag_ms(text: str | None) -> int | None:
    if text is None:
        return None
    from agentlog.cli.tail import parse_duration

    try:
        return int(parse_duration(text, "--max-lag").total_seconds() * 1000)
    except ValueError as e:
        fail(str(e), EXIT_BAD_INPUT)


def _age(ms: int) -> str:
    seconds = max(ms, 0) / 1000
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def _print_verify(report: VerifyReport, signed: SignatureReport | None, now_ms: int) -> None:
    for difference in report.differences:
        print(difference)
    print(f"{report.records:,} Kafka records, {report.rows:,} audit rows in {report.partitions} partitions")
    if report.compacted:
        print(f"{report.compacted} rows of policy records removed by compaction (their chain checks out)")
    if report.anchors is not None and (report.anchors.newest or report.anchors.rejected):
        print(f"held to {len(report.anchors.newest)} partitions' newest checkpoints; {report.anchors.describe()}")
    for where, n in sorted(report.lag.items()):
        since = report.lag_since_ms.get(where)
        age = f", the oldest appended {_age(now_ms - since)} ago" if since is not None and since >= 0 else ""
        print(f"not projected yet: {n} records of {where}{age}")
    if signed is None:
        return
    for invalid in signed.invalid:
        print(invalid)
    for refused in signed.refused:
        print(f"refused   {str(refused).removeprefix('invalid   ')} (the gate denied it for this)")
    for key, n in sorted(signed.attributed.items()):
        print(f"signed by {key}: {n:,} rows")
    for key, n in sorted(signed.late.items()):
        print(f"signed by {key} after it was revoked or expired (denied by the gate): {n:,} rows")
    for topic, n in sorted(signed.unsigned.items()):
        print(f"unsigned: {n:,} rows of {topic}")
    for problem in signed.keyring_problems:
        print(f"keyring record ignored: {problem}")


@app.command("rebuild")
def rebuild_command(
    schema: Schema = DEFAULT_SCHEMA,
    into: Annotated[
        str | None, typer.Option(help="Fresh schema to rebuild into (default: <schema>_rebuild_<time>).")
    ] = None,
    swap: Annotated[
        bool, typer.Option("--swap", help="Promote the rebuilt schema; the live one becomes <schema>_old_<time>.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Rebuild every projection from offset 0 into a fresh schema and compare it with the live one, table by table."""
    from agentlog.replay.progress import Progress
    from agentlog.replay.rebuild import rebuild

    target = _schema(into) if into is not None else None
    try:
        report = rebuild(
            kafka_settings(), _schema(schema), target, swap=swap, progress=Progress("rebuild", enabled=not quiet)
        )
    except (DatabaseUnavailableError, NotMigratedError) as e:
        fail(str(e))
    except AgentlogError as e:
        fail_for(e)
    rate = report.records / max(report.seconds, 1e-9)
    print(f"rebuilt {report.records:,} records into {report.rebuilt} in {report.seconds:.1f}s ({rate:,.0f}/s)")
    print(f"{'table':<16} {'live rows':>10} {'rebuilt rows':>13}  {'live checksum':<32}  {'rebuilt checksum':<32}")
    for t in report.tables:
        mark = "equal" if t.equal else "DIFFERENT"
        print(
            f"{t.table:<16} {t.live_rows:>10,} {t.rebuilt_rows:>13,}  {t.live_checksum:<32}  {t.rebuilt_checksum:<32}"
            f"  {mark}"
        )
    for difference in report.position_differences:
        print(f"positions differ: {difference}")
    if report.swapped_out:
        print(f"swapped: the rebuild is now {report.live}; the previous {report.live} is kept as {report.swapped_out}")
    if not report.equal:
        different = ", ".join(t.table for t in report.tables if not t.equal)
        fail(f"the rebuilt projections differ from {report.live} in {different}", EXIT_FAILURE)
    print(f"every table of {report.live} equals its rebuild from Kafka")


class Processor(StrEnum):
    """Whose recorded decisions ``replay decisions`` proves."""

    all = "all"
    gate = "gate"
    missions = "missions"
    bus = "bus"


_PROCESSOR_NAMES = {"gate": "spawn gate", "missions": "mission processor", "bus": "consultation bus"}


@app.command("decisions")
def decisions_command(
    root: Annotated[str | None, typer.Option(help="Only the decisions of this tree.")] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="What-if: decide under this policy file instead of the recorded ones."),
    ] = None,
    policy_name: Annotated[
        str | None,
        typer.Option(help="Override the policy the gate enforced (by default, the one its decisions name)."),
    ] = None,
    log: Annotated[
        Path | None, typer.Option("--log", help="Replay an export file (a golden log) instead of Kafka.")
    ] = None,
    schema: Annotated[str, typer.Option(help="Schema whose audit table holds compacted policy versions.")] = (
        DEFAULT_SCHEMA
    ),
    processor: Annotated[
        Processor,
        typer.Option(
            "--processor", help="Whose decisions: the spawn gate's, the mission processor's, the bus's, or all."
        ),
    ] = Processor.all,
    workers: Annotated[int, typer.Option(min=1, help="Processes sharing the partitions.")] = 1,
    clock_margin_ms: Annotated[
        int, typer.Option(min=0, help="The gate's --clock-margin-ms (where its timer ticks fall among the inputs).")
    ] = 5,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Re-run the processors' pure cores over the recorded inputs; prove every recorded decision, or show a what-if."""
    from agentlog.processors.policy import load_policy
    from agentlog.replay.decisions import DecisionReport
    from agentlog.replay.runs import decisions_report

    what_if = None
    if policy is not None:
        try:
            what_if = load_policy(policy)
        except PolicyError as e:
            fail(str(e), EXIT_BAD_INPUT)
    if log is not None and not log.is_file():
        fail(f"--log {log}: no such file", EXIT_BAD_INPUT)
    names = [p.value for p in Processor if p is not Processor.all] if processor is Processor.all else [processor.value]
    reports: dict[str, DecisionReport] = {}
    try:
        for name in names:
            reports[name] = decisions_report(
                get_settings() if log is not None else kafka_settings(),
                log=log,
                what_if=what_if,
                root_id=root,
                policy_name=policy_name,
                schema=_schema(schema),
                progress=not quiet,
                workers=workers,
                clock_margin_ms=clock_margin_ms,
                processor=name,
            )
    except ExportFormatError as e:
        fail(str(e), EXIT_BAD_INPUT)
    except AgentlogError as e:
        fail_for(e)
    total = DecisionReport(what_if=reports[names[0]].what_if, policy_versions=reports[names[0]].policy_versions)
    for report in reports.values():
        total.merge(report)
    if root is not None and total.inputs == 0 and total.recorded == 0:
        fail(f"no inputs or decisions of tree {root!r} on these topics: nothing to prove", EXIT_FAILURE)
    _print_reports(total, reports, as_json)
    if total.what_if is None and not total.clean:
        whose = ", ".join(f"{_PROCESSOR_NAMES[n]} {len(r.outcomes)}" for n, r in reports.items())
        fail(
            f"{len(total.outcomes)} recorded decisions are not reproduced by the processors' cores ({whose})",
            EXIT_FAILURE,
        )


def _print_reports(total: DecisionReport, reports: dict[str, DecisionReport], as_json: bool) -> None:
    from agentlog.replay.render import decision_report_text

    if as_json:
        document = _report_json(total)
        document["processors"] = {name: _report_json(report) for name, report in reports.items()}
        print(json.dumps(document, indent=2, default=str))
        return
    for name, report in reports.items():
        if len(reports) > 1:
            print(f"{_PROCESSOR_NAMES[name]}:")
        print("\n".join(decision_report_text(report)))


def _report_json(report: DecisionReport) -> dict[str, object]:
    return {
        "what_if": report.what_if,
        "clean": report.clean,
        "partitions": report.partitions,
        "inputs": report.inputs,
        "recorded": report.recorded,
        "reproduced": report.reproduced,
        "pending": report.pending,
        "policy_versions": report.policy_versions,
        "outcomes": [o.as_json() for o in report.outcomes],
    }
