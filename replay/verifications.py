"""``replay verify --record``: each verification's result kept in ``audit_verifications``, by an auditor.

Of the roles that use the projections, only an auditor (``agentlog db role create NAME
--auditor``) may add to the table (migration ``0007_audit_verifications``): the projector and
tenant roles have no grant on it. The schema's owner owns the table, so ``--record`` itself
refuses a login that is not an auditor role. The database stamps who recorded a row and when,
and a trigger refuses to change or delete one. Operators (and the console) read when the
audit log was last verified, by whom and with what result: :func:`recorded`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from agentlog.projections import DEFAULT_SCHEMA, Conn, ProjectionError, connect, is_auditor
from agentlog.replay.signatures import SignatureReport
from agentlog.replay.verify import VerifyReport
from agentlog.settings import Settings

MAX_FINDINGS = 1000
"""Differences kept per recorded run (the counts per kind are always whole)."""


class NotAnAuditorError(ProjectionError):
    """``--record`` was asked of a login that is not an auditor role."""


class RecordError(ProjectionError):
    """The database refused to store a verification's result."""


@dataclass(frozen=True)
class Checked:
    """What a verification checked (the options it ran with)."""

    deep: bool
    signatures: bool
    max_lag: str | None
    checkpoint_signer: str

    def as_json(self) -> dict[str, Any]:
        """As stored in ``checked``."""
        return {**vars(self), "agentlog": version("agentlog")}


@dataclass(frozen=True)
class RecordedVerification:
    """One row of ``audit_verifications``."""

    id: int
    started_at: datetime
    finished_at: datetime
    recorded_by: str
    topic_prefix: str
    checked: dict[str, Any]
    clean: bool
    kafka_records: int
    audit_rows: int
    differences: dict[str, int]
    partitions: dict[str, dict[str, Any]]
    anchors: str

    def as_json(self) -> dict[str, Any]:
        """The row as JSON (times in ISO 8601)."""
        return {**vars(self), "started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat()}


def _table_exists(conn: Conn) -> bool:
    row = conn.execute("SELECT to_regclass('audit_verifications')").fetchone()
    return row is not None and row[0] is not None


def require_auditor(settings: Settings, schema: str = DEFAULT_SCHEMA) -> None:
    """Raise :class:`NotAnAuditorError` unless this login may record verifications in ``schema`` (checked first,
    so that a run that cannot be recorded is refused before it starts)."""
    with connect(settings, schema) as conn:
        if not _table_exists(conn):
            raise NotAnAuditorError(f"schema {schema} has no audit_verifications table: run `agentlog db migrate`")
        if not is_auditor(conn):
            user = conn.execute("SELECT session_user").fetchone()
            raise NotAnAuditorError(
                f"--record: the login {user[0] if user else '?'} is not an auditor role; only an auditor records"
                " verifications (create one with `agentlog db role create NAME --auditor` and connect as it through"
                " AGENTLOG_DATABASE_URL)"
            )


def record(
    settings: Settings,
    started_at: datetime,
    report: VerifyReport,
    signed: SignatureReport | None,
    checked: Checked,
    clean: bool,
    schema: str = DEFAULT_SCHEMA,
) -> int:
    """Store one verification's result; its id."""
    kinds = Counter(d.kind for d in report.differences)
    if signed is not None and signed.invalid:
        kinds["invalid_signature"] = len(signed.invalid)
    partitions = {f"{o.topic}[{o.partition}]": o.as_json() for o in report.outcomes}
    findings = [d.as_json() for d in report.differences[:MAX_FINDINGS]]
    anchors = report.anchors.describe() if report.anchors is not None else ""
    try:
        with connect(settings, schema) as conn:
            row = conn.execute(
                "INSERT INTO audit_verifications (started_at, finished_at, recorded_by, topic_prefix, checked, clean,"
                " kafka_records, audit_rows, differences, partitions, findings, anchors)"
                " VALUES (%s, now(), session_user, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    started_at,
                    settings.topic_prefix,
                    Jsonb(checked.as_json()),
                    clean,
                    report.records,
                    report.rows,
                    Jsonb(dict(sorted(kinds.items()))),
                    Jsonb(partitions),
                    Jsonb(findings),
                    anchors,
                ),
            ).fetchone()
    except psycopg.Error as e:
        raise RecordError(f"the verification ran but could not be recorded: {e}") from e
    assert row is not None
    return int(row[0])


def recorded(settings: Settings, schema: str = DEFAULT_SCHEMA, *, limit: int = 10) -> list[RecordedVerification]:
    """The newest recorded verifications, newest first (none when the schema has no table yet)."""
    with connect(settings, schema) as conn:
        if not _table_exists(conn):
            return []
        rows = conn.execute(
            "SELECT id, started_at, finished_at, recorded_by, topic_prefix, checked, clean, kafka_records,"
            " audit_rows, differences, partitions, anchors FROM audit_verifications"
            " ORDER BY finished_at DESC, id DESC LIMIT %s",
            (limit,),
        ).fetchall()
    return [RecordedVerification(*row) for row in rows]
