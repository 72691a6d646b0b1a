"""``agentlog slo`` and ``agentlog report``: the proliferation SLOs and the weekly governance report."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agentlog.cli.output import EXIT_BAD_INPUT, MetricsPort, fail, start_telemetry
from agentlog.cli.projections import Schema, as_of_option, reading
from agentlog.projections import governance, slo_render
from agentlog.projections.db import DEFAULT_SCHEMA
from agentlog.projections.slo import SloReport, Status, evaluate

EXIT_BREACHED = 3
"""``agentlog slo``'s exit code when an SLO is past its alert threshold (or, with ``--fail-on target``, short of
its target): distinct from 1 (could not compute) and 2 (bad input)."""


class Output(StrEnum):
    pretty = "pretty"
    json = "json"


class FailOn(StrEnum):
    alert = "alert"
    target = "target"
    never = "never"


Tenant = Annotated[str | None, typer.Option("--tenant", help="Only this tenant (its concurrency against its cap).")]
Policy = Annotated[str, typer.Option("--policy", help="The policy whose limits the concurrency is held against.")]


def _duration(text: str, option: str) -> timedelta:
    from agentlog.cli.tail import parse_duration

    try:
        return parse_duration(text, option)
    except ValueError as e:
        fail(str(e), EXIT_BAD_INPUT)


def slo_command(
    window: Annotated[str, typer.Option("--window", help="The rolling window: 30m, 24h, 7d.")] = "24h",
    tenant: Tenant = None,
    at: Annotated[
        str | None, typer.Option("--at", help="The window's end: ISO-8601 or 10m/2h/1d ago [default: now].")
    ] = None,
    policy: Policy = "default",
    output: Annotated[Output, typer.Option("--output", "-o", help="pretty or json.")] = Output.pretty,
    fail_on: Annotated[
        FailOn,
        typer.Option(help="Exit 3 when an SLO is past its alert threshold (alert), short of its target, or never."),
    ] = FailOn.alert,
    serve: Annotated[
        bool, typer.Option("--serve", help="Keep evaluating and export the SLOs as metrics (--metrics-port, OTLP).")
    ] = False,
    interval: Annotated[str, typer.Option(help="With --serve: how often to evaluate.")] = "60s",
    metrics_port: MetricsPort = None,
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """The proliferation SLOs over a window, from the projections; exit 3 on a breach, so that it runs as a check.

    Spawn policy violation rate (≤ 1 %, alert > 3 %), child completion rate (≥ 97 %, alert
    < 93 %), average spawn depth per task (≤ 2, alert > 2.5), concurrent agents against the
    policy's platform (or tenant) cap (any breach).
    """
    span = _duration(window, "--window")
    if serve:
        _serve(span, tenant, policy, _duration(interval, "--interval"), metrics_port, schema)
        return
    end = as_of_option(at, "--at") or datetime.now(UTC)
    with reading(schema) as conn:
        report = evaluate(conn, end, span, tenant, policy)
    if output is Output.json:
        print(slo_render.slo_json(report))
    else:
        Console().print(slo_render.slo_table(report))
    failing = _failing(report, fail_on)
    if failing:
        print(slo_render.breach_message(report) if report.breached else _missed_message(report), file=sys.stderr)
        raise typer.Exit(EXIT_BREACHED)


def _failing(report: SloReport, fail_on: FailOn) -> bool:
    if fail_on is FailOn.never:
        return False
    return bool(report.breached if fail_on is FailOn.alert else report.missed)


def _missed_message(report: SloReport) -> str:
    named = ", ".join(f"{r.objective.name} {slo_render.number(r.objective, r.value)}" for r in report.missed)
    return f"SLO short of its target: {named}"


def _serve(window: timedelta, tenant: str | None, policy: str, every: timedelta, port: int | None, schema: str) -> None:
    """Evaluate every ``every`` and export ``agentlog.slo.value`` / ``agentlog.slo.breached`` gauges."""
    from agentlog.metrics import SLO_BREACHED, SLO_VALUE, Snapshot, enabled, meter

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start_telemetry("agentlog-slo", port)
    if not enabled():
        fail(
            "--serve exports metrics: give --metrics-port, or configure OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)",
            EXIT_BAD_INPUT,
        )
    snapshot = Snapshot()
    m = meter()
    m.create_observable_gauge(SLO_VALUE, [snapshot.callback(SLO_VALUE)], "", "The SLO value over its window")
    m.create_observable_gauge(
        SLO_BREACHED, [snapshot.callback(SLO_BREACHED)], "", "1 when the SLO is past its alert threshold"
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log = logging.getLogger("agentlog.slo")
    while not stop.is_set():
        with reading(schema) as conn:
            report = evaluate(conn, datetime.now(UTC), window, tenant, policy)
        labels = {"tenant": tenant or ""}
        values, breached = [], []
        for result in report.results:
            attributes = {**labels, "slo": result.objective.name}
            if result.value is not None:
                values.append((result.value, attributes))
            if result.status is not Status.no_data:
                breached.append((1.0 if result.status is Status.alert else 0.0, attributes))
        snapshot.set({SLO_VALUE: values, SLO_BREACHED: breached})
        if report.breached:
            log.warning("%s", slo_render.breach_message(report))
        stop.wait(every.total_seconds())


def report_command(
    since: Annotated[str, typer.Option("--since", help="The period: 7d (a week up to now), or ISO-8601.")] = "7d",
    until: Annotated[str | None, typer.Option("--until", help="The period's end [default: now].")] = None,
    tenant: Tenant = None,
    policy: Policy = "default",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write report.md and its charts (SVG) into this folder instead of printing."),
    ] = None,
    schema: Schema = DEFAULT_SCHEMA,
) -> None:
    """The spawn depth and budget utilisation report (Markdown): SLOs, depth, the deepest and largest trees,
    denials and the parents denied most, budget utilisation; with --out, charts as SVG beside it."""
    end = as_of_option(until, "--until") or datetime.now(UTC)
    start = as_of_option(since, "--since")
    assert start is not None
    if start >= end:
        fail(f"--since {since}: the period must start before it ends ({end:%Y-%m-%d %H:%M} UTC)", EXIT_BAD_INPUT)
    with reading(schema) as conn:
        report = governance.gather(conn, start, end, tenant, policy)
    if out is None:
        print(governance.markdown(report))
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        pictures = governance.charts(report)
        for name, svg in pictures.items():
            (out / name).write_text(svg, encoding="utf-8")
        (out / "report.md").write_text(governance.markdown(report, pictures), encoding="utf-8")
    except OSError as e:
        fail(f"--out {out}: {e.strerror}", EXIT_BAD_INPUT)
    print(f"wrote {out / 'report.md'} and {', '.join(sorted(pictures))}")
