"""Field types shared by the generated event models: Avro's int widths and UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field


def _as_utc(value: datetime) -> datetime:
    """Read naive datetimes as UTC; convert aware ones to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    """The current time, UTC, truncated to the microsecond Avro keeps."""
    return datetime.now(UTC)


Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
"""Avro ``int``."""
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""Avro ``long``."""
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""Avro ``long`` with ``logicalType: timestamp-micros``."""
