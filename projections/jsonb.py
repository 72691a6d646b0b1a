"""Decoded values as text PostgreSQL accepts for ``jsonb``.

``jsonb`` refuses two things JSON encoders produce: the escape ``\\u0000`` and the
non-standard ``NaN``/``Infinity``. Such values are rare, so the fast path is a plain dump;
only when it fails are NUL characters replaced by U+FFFD and non-finite floats by strings.
The exact bytes are kept next to the JSON in the audit log anyway.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from json import encoder as _json_encoder
from typing import Any

from agentlog.serde import to_jsonable


def _default(value: Any) -> Any:
    """What the encoder calls for values JSON has no type for: UUIDs and datetimes first (the common ones)."""
    kind = type(value)
    if kind is datetime:
        return value.isoformat()
    if kind is uuid.UUID:
        return str(value)
    converted = to_jsonable(value)
    if converted is value:
        raise TypeError(f"Object of type {kind.__name__} is not JSON serializable")
    return converted


def _make_encode() -> Callable[[Any], str]:
    # The C encoder made directly: no check for circular references (decoded Avro values have
    # none) and no Python-level wrapper per call -- a quarter of the time of JSONEncoder.encode.
    make = getattr(_json_encoder, "c_make_encoder", None)
    basestring = getattr(_json_encoder, "c_encode_basestring", None)
    if make is None or basestring is None:  # no C accelerator: the same output, slower
        return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default).encode
    chunks: Callable[[Any, int], Iterable[str]] = make(None, _default, basestring, None, ":", ",", False, False, False)
    return lambda value: "".join(chunks(value, 0))


_encode = _make_encode()


def jsonb_text(value: Any) -> str:
    """Compact JSON of a decoded Avro value that ``jsonb`` accepts (as :func:`~agentlog.serde.dumps` writes it)."""
    try:
        text = _encode(value)  # the C encoder; _default only for UUIDs, datetimes, bytes
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
