"""Decoded values as text PostgreSQL accepts for ``jsonb``.

``jsonb`` refuses two things JSON encoders produce: the escape ``\\u0000`` and the
non-standard ``NaN``/``Infinity``. Such values are rare, so the fast path is a plain dump;
only when it fails are NUL characters replaced by U+FFFD and non-finite floats by strings.
The exact bytes are kept next to the JSON in the audit log anyway.
"""

from __future__ import annotations

import json
import math
from typing import Any

from agentlog.serde import to_jsonable

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=to_jsonable)


def jsonb_text(value: Any) -> str:
    """Compact JSON of a decoded Avro value that ``jsonb`` accepts (as :func:`~agentlog.serde.dumps` writes it)."""
    try:
        text = _ENCODER.encode(value)  # the C encoder; to_jsonable only for UUIDs, datetimes, bytes
    except ValueError:
        return json.dumps(_clean(to_jsonable(value)), separators=(",", ":"), ensure_ascii=False)
    if "\\u0000" in text:
        return json.dumps(_clean(to_jsonable(value)), separators=(",", ":"), ensure_ascii=False)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def without_nul(value: Any) -> Any:
    """``value`` with NUL characters in its strings replaced by U+FFFD (other types kept)."""
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    return value


def prepare(value: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The ``jsonb`` text of a decoded value and the value fit for ``text`` columns (no NULs)."""
    text = jsonb_text(value)
    if "\ufffd" in text:
        return text, without_nul(value)  # a NUL was replaced (or U+FFFD was there already)
    return text, value
