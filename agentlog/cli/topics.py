"""``agentlog topics``: the catalogue, and creating it on the broker."""

from __future__ import annotations

from typing import Annotated

import typer
from confluent_kafka import KafkaException
from rich.console import Console
from rich.table import Table

from agentlog.cli.output import fail, fail_for, kafka_settings
from agentlog.errors import AgentlogError
from agentlog.settings import get_settings
from agentlog.topic_admin import ensure_topics
from agentlog.topics import DEPLOYED, EPHEMERAL

app = typer.Typer(help="The topic catalogue.", no_args_is_help=True)


@app.command("list")
def list_topics() -> None:
    """Show the catalogue: topics, partitions, retention, records and keys.

    ``tree`` partitions: the deployment's count, shared by every tree-keyed topic (chosen
    when the first is created; AGENTLOG_TREE_PARTITIONS, default 12).
    """
    settings = get_settings()
    table = Table("topic", "partitions", "retention", "cleanup", "key", "records")
    tree = "tree" + (f" ({settings.tree_partitions} when created)" if settings.tree_partitions else "")
    for spec in DEPLOYED:
        retention = _duration(spec.retention_ms)
        if spec in EPHEMERAL:
            retention += " (not audited)"
        records = ", ".join(r.__name__ for r in spec.records) or "any (original bytes)"
        partitions = tree if spec.tree_keyed else str(spec.partitions)
        table.add_row(settings.topic_prefix + spec.name, partitions, retention, spec.cleanup_policy, spec.key, records)
    Console().print(table)


def _duration(ms: int) -> str:
    if ms < 0:
        return "forever"
    return f"{ms // 86_400_000}d" if ms % 86_400_000 == 0 else f"{ms // 3_600_000}h"


@app.command("create")
def create(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")] = False,
) -> None:
    """Create missing topics and align the configs of existing ones (idempotent)."""
    settings = kafka_settings()
    try:
        changes = ensure_topics(settings, dry_run=dry_run)
    except AgentlogError as e:
        fail_for(e)
    except KafkaException as e:
        fail(f"broker at {settings.bootstrap_servers} did not answer: {e}")
    for change in changes:
        detail = f"  ({change.detail})" if change.detail else ""
        print(f"{change.action:<10} {change.topic}{detail}")
    if any(c.action == "mismatch" for c in changes):
        fail(
            "some topics differ in partition count; partitions are never changed in place (a tree's partition"
            " follows from the count): unset AGENTLOG_TREE_PARTITIONS or set it to the existing count, or migrate"
            " as the README's 'Partitions' section says"
        )
