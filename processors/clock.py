"""Event time as integer microseconds, the unit Avro keeps and the state stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
MAX_MICROS = (datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH) // _MICRO
"""The latest moment a deadline may be (datetime's limit); later ones are clamped to it."""


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch (naive datetimes are read as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICRO


def from_micros(micros: int) -> datetime:
    """The UTC datetime of ``micros`` since the Unix epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def iso(micros: int) -> str:
    """A readable UTC timestamp for messages, to the second."""
    return from_micros(micros).strftime("%Y-%m-%d %H:%M:%SZ")
