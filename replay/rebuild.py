"""``replay rebuild``: every projection rebuilt from offset 0 into a fresh schema, and compared with the live one.

1. Snapshot where each partition's records end now (:func:`agentlog.replay.topic_reader.record_ends`).
2. Migrate a fresh schema (``<live>_rebuild_<time>`` unless named; refused if it exists).
3. Run the projector (:class:`agentlog.projections.projector.Projector`, the very code the live one
   runs) into it with a consumer group of its own, until its stored positions reach the
   snapshot; progress on stderr. Dead letters are *not* produced again: the live projector
   already did, and a rebuild must not write to Kafka.
4. Compare table by table (:func:`agentlog.projections.checksums.table_checksums`: row count and a
   digest of the ordered rows) and the positions of both schemas.
5. With ``swap``: in one transaction rename the live schema to ``<live>_old_<time>`` and
   the rebuilt one to ``<live>``. Stop the live projectors first; the old schema is kept.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from psycopg import sql

from agentlog import kafka_config
from agentlog.projections import (
    DEFAULT_SCHEMA,
    Conn,
    Projector,
    ProjectorOptions,
    check_schema_name,
    connect,
    migrate,
    projected_offsets,
    require_tables,
    table_checksums,
)
from agentlog.replay.errors import ReplayError
from agentlog.replay.progress import Progress
from agentlog.replay.topic_reader import record_ends
from agentlog.settings import Settings
from agentlog.topics import CATALOGUE


@dataclass(frozen=True)
class TableComparison:
    """One projection table in the live and the rebuilt schema."""

    table: str
    live_rows: int
    live_checksum: str
    rebuilt_rows: int
    rebuilt_checksum: str

    @property
    def equal(self) -> bool:
        """Same rows (count and checksum)."""
        return (self.live_rows, self.live_checksum) == (self.rebuilt_rows, self.rebuilt_checksum)


@dataclass
class RebuildReport:
    """What a rebuild did and found."""

    live: str
    rebuilt: str
    records: int = 0
    seconds: float = 0.0
    tables: list[TableComparison] = field(default_factory=list)
    position_differences: list[str] = field(default_factory=list)
    """``topic[partition]: live N, rebuilt M`` where the two stand at different offsets."""
    swapped_out: str | None = None
    """Where the old live schema went, after ``swap``."""

    @property
    def equal(self) -> bool:
        """Every table equal (positions may differ when the live projector is behind or ahead)."""
        return all(t.equal for t in self.tables)


def _exists(conn: Conn, schema: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None


def rebuild(
    settings: Settings,
    live: str = DEFAULT_SCHEMA,
    target: str | None = None,
    *,
    swap: bool = False,
    progress: Progress | None = None,
    poll_s: float = 0.5,
) -> RebuildReport:
    """Rebuild every projection from offset 0 into ``target`` and compare it with ``live``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    target = check_schema_name(target or f"{live}_rebuild_{stamp}"[:63])
    progress = progress or Progress("rebuild", enabled=False)
    report = RebuildReport(live, target)
    with connect(settings, live) as conn:
        require_tables(conn, live)
        if _exists(conn, target):
            raise ReplayError(f"schema {target!r} already exists; a rebuild goes into a fresh schema")
    topics = [settings.topic_prefix + spec.name for spec in CATALOGUE]
    ends = record_ends(settings, topics)
    migrate(settings, target)
    group = f"{settings.topic_prefix}agentlog-rebuild-{target}"
    projector = Projector(settings, ProjectorOptions(schema=target, group_id=group, dead_letters=False))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            projector.run()
        except BaseException as e:  # re-raised in the caller's thread below
            failure.append(e)

    started = time.monotonic()
    thread = threading.Thread(target=run, name="rebuild-projector", daemon=True)
    thread.start()
    total = sum(ends.values())
    try:
        with connect(settings, target) as conn:
            conn.autocommit = True
            while thread.is_alive():
                positions = projected_offsets(conn, topics)
                behind = [tp for tp, end in ends.items() if positions.get(tp, 0) < end]
                done = sum(min(positions.get(tp, 0), end) for tp, end in ends.items())
                progress.advance(
                    projector.stats.records - progress.count, f"{100 * done / max(total, 1):.0f}% of offsets"
                )
                if not behind:
                    break
                time.sleep(poll_s)
    finally:
        projector.stop()
        thread.join()
    if failure:
        raise ReplayError(f"the rebuild projector failed: {failure[0]}") from failure[0]
    report.records = projector.stats.records
    report.seconds = time.monotonic() - started
    _forget_group(settings, group)
    _compare(settings, report, topics)
    if swap:
        report.swapped_out = _swap(settings, live, target, stamp)
    return report


def _compare(settings: Settings, report: RebuildReport, topics: list[str]) -> None:
    """Checksums and positions of both schemas, each schema on a connection of its own at the same time: hashing
    every row is the database's work, and two backends use two cores."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rebuild-live-checksums") as pool:
        live = pool.submit(_checksums, settings, report.live, topics)
        rebuilt_sums, rebuilt_positions = _checksums(settings, report.rebuilt, topics)
        live_sums, live_positions = live.result()
    for table, (rows, checksum) in live_sums.items():
        other_rows, other_checksum = rebuilt_sums[table]
        report.tables.append(TableComparison(table, rows, checksum, other_rows, other_checksum))
    for tp in sorted(set(live_positions) | set(rebuilt_positions)):
        a, b = live_positions.get(tp, 0), rebuilt_positions.get(tp, 0)
        if a != b:
            report.position_differences.append(f"{tp[0]}[{tp[1]}]: live {a}, rebuilt {b}")


def _checksums(
    settings: Settings, schema: str, topics: list[str]
) -> tuple[dict[str, tuple[int, str]], dict[tuple[str, int], int]]:
    with connect(settings, schema) as conn:
        return table_checksums(conn), projected_offsets(conn, topics)


def _swap(settings: Settings, live: str, target: str, stamp: str) -> str:
    old = check_schema_name(f"{live}_old_{stamp}"[:63])
    with connect(settings, target) as conn, conn.transaction():
        conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(live), sql.Identifier(old)))
        conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(target), sql.Identifier(live)))
    return old


def _forget_group(settings: Settings, group: str) -> None:
    """Delete the rebuild's consumer group (it only held monitoring offsets)."""
    admin = AdminClient(kafka_config.base(settings))
    try:
        for future in admin.delete_consumer_groups([group], request_timeout=10).values():
            future.result()
    except KafkaException:
        pass  # an empty group may already be gone; it holds no state that matters
