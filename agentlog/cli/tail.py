"""``agentlog tail``: read topics back, decoded."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from agentlog.cli.output import EXIT_BAD_INPUT, fail, fail_for, kafka_settings
from agentlog.errors import AgentlogError
from agentlog.records import at
from agentlog.serde import dumps
from agentlog.tail import TailedRecord, TailOptions, tail
from agentlog.topics import CATALOGUE, by_name

_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, option: str) -> timedelta:
    """``90s``, ``10m``, ``24h`` or ``7d``; raises ValueError naming ``option`` for anything else (or zero)."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{option} {text!r}: expected a positive duration like 30m, 24h or 7d")
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError as e:
        raise ValueError(f"{option} {text!r}: too long") from e


def parse_since(text: str, now: datetime | None = None, option: str = "--since") -> datetime:
    """``10m``, ``2h``, ``1d`` ago, or an ISO-8601 timestamp (UTC when no zone is given).

    Raises ValueError naming ``option`` for text that is neither, or for a moment before
    the year 1 or after 9999.
    """
    match = _DURATION.match(text.strip())
    if match:
        try:
            return (now or datetime.now(UTC)) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        except OverflowError as e:
            raise ValueError(f"{option} {text!r}: that is before the year 1") from e
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise ValueError(f"{option} {text!r}: expected a duration like 10m/2h/1d or an ISO-8601 timestamp") from e
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_filters(items: list[str]) -> dict[str, str]:
    """``FIELD=VALUE`` pairs into a dict; raises ValueError naming the bad one."""
    filters = {}
    for item in items:
        path, sep, value = item.partition("=")
        if not sep or not path:
            raise ValueError(f"--filter {item!r}: expected FIELD=VALUE, e.g. meta.root_id=root-1")
        filters[path] = value
    return filters


def render_pretty(console: Console, record: TailedRecord) -> None:
    """One record as a readable line (plus the raw bytes when it could not be decoded)."""
    when = record.timestamp.isoformat(timespec="milliseconds") if record.timestamp else "-"
    where = at(record.topic, record.partition, record.offset)
    if record.error is not None:
        console.print(
            f"[dim]{when}[/] {where} key={escape(str(record.key))} [bold red]UNDECODABLE[/] {escape(record.error)}"
        )
        console.print(f"    raw={(record.raw or b'').hex()}", highlight=False, soft_wrap=True)
        return
    name = (record.record or "?").rsplit(".", 1)[-1]
    console.print(
        f"[dim]{when}[/] {where} key={escape(str(record.key))} [bold cyan]{name}[/] {escape(dumps(record.value))}",
        soft_wrap=True,
    )


def tail_command(
    topics: Annotated[
        list[str] | None, typer.Argument(help="Topics to read; catalogue names get the topic prefix.")
    ] = None,
    all_topics: Annotated[bool, typer.Option("--all", help="Read every topic of the catalogue.")] = False,
    output: Annotated[str, typer.Option("--output", "-o", help="pretty or json (JSON lines).")] = "pretty",
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the oldest record.")] = False,
    since: Annotated[str | None, typer.Option(help="Start at records newer than 10m / 2h / 1d or a timestamp.")] = None,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", "-F", help="Keep reading new records.")] = False,
    max_records: Annotated[int | None, typer.Option("--max", min=1, help="Stop after N records.")] = None,
    filter_items: Annotated[
        list[str] | None, typer.Option("--filter", help="FIELD=VALUE on the decoded value (dotted path); repeatable.")
    ] = None,
) -> None:
    """Print the records of topics, decoded.

    Without --follow it reads from the start (the beginning unless --since is given) to the
    current end and stops; with --follow it starts at the end (unless --from-beginning or
    --since) and keeps going. Records that cannot be decoded are shown with their raw
    bytes and the reason, and tailing goes on.
    """
    settings = kafka_settings()
    if output not in ("pretty", "json"):
        fail(f"--output {output!r}: expected pretty or json", EXIT_BAD_INPUT)
    names = [settings.topic_prefix + spec.name for spec in CATALOGUE] if all_topics else []
    for topic in topics or []:
        spec = by_name(topic, settings.topic_prefix)
        names.append(settings.topic_prefix + spec.name if spec else topic)
    if not names:
        fail("name at least one topic, or --all", EXIT_BAD_INPUT)
    try:
        options = TailOptions(
            topics=names,
            from_beginning=from_beginning,
            since=parse_since(since) if since else None,
            follow=follow,
            max_records=max_records,
            filters=parse_filters(filter_items or []),
        )
    except ValueError as e:
        fail(str(e), EXIT_BAD_INPUT)
    console = Console(highlight=False)
    try:
        for record in tail(settings, options):
            if output == "json":
                print(json.dumps(record.as_json(), ensure_ascii=False), flush=True)
            else:
                render_pretty(console, record)
    except AgentlogError as e:
        fail_for(e)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
