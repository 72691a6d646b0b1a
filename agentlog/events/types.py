"""Field types shared by the generated event models: Avro's int widths, UTC timestamps, bounded strings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from agentlog.limits import MAX_CHARS


def as_utc(value: datetime) -> datetime:
    """Read naive datetimes as UTC; convert aware ones to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    """The current time, UTC, truncated to the microsecond Avro keeps."""
    return datetime.now(UTC)


Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
"""Avro ``int``."""
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""Avro ``long``."""
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
"""Avro ``long`` with ``logicalType: timestamp-micros``."""
Id = Annotated[str, Field(max_length=MAX_CHARS["id"])]
"""A string of kind ``id`` (ids, names, configs): see :mod:`agentlog.limits`."""
ShortText = Annotated[str, Field(max_length=MAX_CHARS["short"])]
"""A string of kind ``short`` (titles, subjects, list items)."""
Text = Annotated[str, Field(max_length=MAX_CHARS["text"])]
"""A string of kind ``text`` (descriptions, summaries, messages)."""
