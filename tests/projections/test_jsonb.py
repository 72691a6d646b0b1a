"""orjson writes the audit log's JSON only where its text is the standard library's, byte for byte."""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from agentlog import events as ev
from agentlog.projections.jsonb import _default, floatless, jsonb_text, prepare
from agentlog.samples import sample_record
from agentlog.serde import Serde

SERDE = Serde()


def standard(value: Any) -> str:
    """The standard library's text, the reference (what ``jsonb_text`` wrote before orjson)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default)


def decoded(name: str, seed: int) -> tuple[Any, Any]:
    schema = SERDE.store.get(name)
    value = SERDE.decode_value(SERDE.encode_value(name, sample_record(schema, seed), "t")).value
    return schema, value


@pytest.mark.parametrize("name", sorted(ev.EVENT_TYPES))
def test_every_record_of_the_contract_has_the_standard_text(name: str) -> None:
    for seed in range(4):
        schema, value = decoded(name, seed)
        assert jsonb_text(value, floats=False) == standard(value) == jsonb_text(value)
        assert prepare(value, schema)[0] == standard(value)


def test_every_code_point_is_written_the_standard_way() -> None:
    points = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF and c != 0]
    for first in range(0, len(points), 4096):
        chunk = points[first : first + 4096]
        value = {"keys": {c: c for c in chunk}, "text": "".join(chunk), "list": chunk}
        assert jsonb_text(value, floats=False) == standard(value)


def test_integers_uuids_and_times_at_their_extremes() -> None:
    value = {
        "long": [2**63 - 1, -(2**63), 0, -1, 2**31, True, False, None],
        "uuid": [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.uuid4()],
        "time": [
            datetime(1, 1, 1, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(2026, 12, 4, 12, 0, 0, 5, tzinfo=UTC),
            datetime(999, 1, 1, tzinfo=UTC),
        ],
        "bytes": b"\x00\xff",
    }
    assert jsonb_text(value, floats=False) == standard(value)


def test_what_orjson_refuses_goes_the_standard_way() -> None:
    deep: Any = 1
    for _ in range(300):  # deeper than orjson nests
        deep = [deep]
    assert jsonb_text(deep, floats=False) == standard(deep)
    assert jsonb_text({"big": 2**70}, floats=False) == '{"big":1180591620717411303424}'
    assert jsonb_text({"nul": "a\x00b"}, floats=False) == '{"nul":"a\ufffdb"}'  # jsonb refuses \u0000


def test_schemas_with_floats_keep_the_standard_text_of_floats() -> None:
    with_floats = [name for name in ev.EVENT_TYPES if not floatless(SERDE.store.get(name))]
    assert "agentlog.lifecycle.AgentCompleted" in with_floats
    assert floatless(SERDE.store.get("agentlog.spawn.SpawnRequested"))
    assert jsonb_text({"score": 2.5e-05}) == '{"score":2.5e-05}'  # orjson would write 0.000025


def test_headers_have_the_standard_text() -> None:
    from agentlog.projections.batch import _headers_json

    headers = [("traceparent", b"00-abc-01"), ("agentlog-signature", b"\xff\xfe not utf-8"), ("empty", None)]
    assert _headers_json(headers) == standard([[k, v.decode("utf-8", "replace") if v else v] for k, v in headers])
