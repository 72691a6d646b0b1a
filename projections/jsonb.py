"""Decoded values as text PostgreSQL accepts for ``jsonb``.

``jsonb`` refuses two things JSON encoders produce: the escape ``\\u0000`` and the
non-standard ``NaN``/``Infinity``. Such values are rare, so the fast path is a plain dump;
only when it fails are NUL characters replaced by U+FFFD and non-finite floats by strings.
The exact bytes are kept next to the JSON in the audit log anyway.

The text is the standard library's compact JSON (``ensure_ascii=False``). For a value whose
schema holds no ``float`` or ``double`` (:func:`floatless`) orjson writes it, ten times
faster: on such values -- strings of any code point, integers of Avro's widths, UUIDs, aware
datetimes, lists and maps of them -- its output is the same text (``tests/projections/test_jsonb.py``
compares the two on every record of the contract and on every code point). Floats it writes
its own way (``1e-7`` for ``1e-07``), so values that may hold them keep the standard library.
Anything orjson refuses (an integer beyond 64 bits, nesting deeper than 254) goes the standard way.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from json import encoder as _json_encoder
from typing import Any

import orjson

from agentlog.schema_store import RecordSchema
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


def floatless(schema: RecordSchema) -> bool:
    """Whether no value of ``schema`` (a reader schema: decoded values take its shape) can hold a float."""
    known = _FLOATLESS.get(schema.fingerprint)
    if known is None:
        known = _FLOATLESS[schema.fingerprint] = not _holds_float(schema.expanded)
    return known


_FLOATLESS: dict[bytes, bool] = {}


def _holds_float(schema: Any) -> bool:
    # A name met again refers to a type defined earlier in the same expanded schema, and walked there.
    if isinstance(schema, str):
        return schema in ("float", "double")
    if isinstance(schema, list):
        return any(_holds_float(branch) for branch in schema)
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            return any(_holds_float(f["type"]) for f in schema.get("fields", []))
        if kind == "array":
            return _holds_float(schema["items"])
        if kind == "map":
            return _holds_float(schema["values"])
        return _holds_float(kind)
    return False


def jsonb_text(value: Any, floats: bool = True) -> str:
    """Compact JSON of a decoded Avro value that ``jsonb`` accepts (as :func:`~agentlog.serde.dumps` writes it).

    ``floats`` False: ``value`` holds no float (its schema is :func:`floatless`), and orjson may write it.
    """
    if not floats:
        try:
            text = orjson.dumps(value, default=_default).decode()
        except orjson.JSONEncodeError:
            pass  # the standard library's way, which writes it or raises its own error
        else:
            if "\\u0000" not in text:
                return text
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


def prepare(value: dict[str, Any], schema: RecordSchema) -> tuple[str, dict[str, Any]]:
    """The ``jsonb`` text of a value decoded with ``schema`` and the value fit for ``text`` columns (no NULs)."""
    text = jsonb_text(value, floats=not floatless(schema))
    if "\ufffd" in text:
        return text, without_nul(value)  # a NUL was replaced (or U+FFFD was there already)
    return text, value
