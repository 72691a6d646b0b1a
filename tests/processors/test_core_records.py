"""The records a core builds without validating them again are the records validation would build."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pydantic
import pytest

from agentlog import events as ev
from agentlog.events.trusted import trusted
from agentlog.processors import ids
from agentlog.processors.checks import Checks
from agentlog.processors.emitter import Emitter

NAMES = ["", "a", "ünïcode/☃", "x" * 300, *(str(uuid.UUID(int=i * 0x1F3D5B79)) for i in range(200))]


@pytest.mark.parametrize("name", NAMES)
def test_derived_ids_are_uuid5(name: str) -> None:
    for index in (0, 1, 17):
        made, expected = ids.output_event_id(name, index), uuid.uuid5(ids.NAMESPACE, f"{name}/{index}")
        assert made == expected
        assert (str(made), repr(made), hash(made), made.bytes, made.version) == (
            str(expected),
            repr(expected),
            hash(expected),
            expected.bytes,
            5,
        )


def test_child_ids_are_uuid5_of_the_request() -> None:
    for request in [uuid.uuid4() for _ in range(500)] + [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]:
        assert ids.child_agent_id(request) == str(uuid.uuid5(ids.NAMESPACE, str(request)))


def test_checks_are_the_validated_records() -> None:
    checks = Checks()
    assert checks.within("max_depth", 3, 2)
    assert not checks.within("parent_remaining_tokens", 5, 6)
    assert checks.within("huge", 2**70, 2**65)  # a sum may leave the Avro long's range: recorded clamped
    assert not checks.within("tiny", -(2**70), 0)
    made = checks.items
    expected = [
        ev.LimitCheck(name="max_depth", limit=3, value=2, passed=True),
        ev.LimitCheck(name="parent_remaining_tokens", limit=5, value=6, passed=False),
        ev.LimitCheck(name="huge", limit=2**63 - 1, value=2**63 - 1, passed=True),
        ev.LimitCheck(name="tiny", limit=-(2**63), value=0, passed=False),
    ]
    assert made == expected
    assert [m.model_dump() for m in made] == [e.model_dump() for e in expected]
    assert [repr(m) for m in made] == [repr(e) for e in expected]
    assert [ev.LimitCheck.model_validate(m.model_dump()) for m in made] == made


def test_a_trusted_record_is_frozen_and_complete() -> None:
    made = trusted(ev.LimitCheck, {"name": "max_depth", "limit": 3, "value": 1, "passed": True})
    assert made.model_fields_set == set(ev.LimitCheck.model_fields)
    assert hash(made) == hash(ev.LimitCheck(name="max_depth", limit=3, value=1, passed=True))
    with pytest.raises(pydantic.ValidationError):
        made.limit = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    "occurred_at",
    [
        datetime(2026, 12, 4, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 12, 4, 12, 0, 0, 123456),  # naive: read as UTC, as validation does
        datetime(2026, 12, 4, 13, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_the_emitted_envelope_is_the_validated_one(occurred_at: datetime) -> None:
    out = Emitter("source", occurred_at, "tenant-a", "root-1", uuid.uuid4(), "corr-7", policy_name="p")
    event = out.emit(ev.AgentRunning, agent_id="agent-1", policy_version=1, message="running")
    expected = ev.Meta.model_validate(
        {
            "event_id": ids.output_event_id("source", 0),
            "occurred_at": occurred_at,
            "tenant_id": "tenant-a",
            "root_id": "root-1",
            "producer": out._producer,
            "causation_id": out._causation,
            "correlation_id": "corr-7",
        }
    )
    assert event.meta == expected
    assert event.meta.occurred_at.tzinfo is UTC
    assert event.meta.model_dump() == expected.model_dump()
    assert ev.Meta.model_validate(event.meta.model_dump()) == event.meta
