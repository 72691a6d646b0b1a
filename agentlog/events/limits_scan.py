"""A cheap check of the string limits of a decoded record, without building its model.

Consumers that keep records as plain values for speed (the projector) still must not
put an over-long id into an index. :func:`over_limit` checks the string fields at the
top of a record and in its ``meta`` against the ``max_length`` the generated model
declares for them (:mod:`agentlog.limits`) — a handful of ``len`` calls per record.
Nested records and list items are left to full validation.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from annotated_types import MaxLen

from agentlog.events._models import EVENT_TYPES, AvroRecord, Meta


@cache
def _string_limits(model: type[AvroRecord]) -> tuple[tuple[str, int], ...]:
    """(field, max length) of the model's required string fields (their constraint is in the field's metadata)."""
    return tuple(
        (name, constraint.max_length)
        for name, info in model.model_fields.items()
        if info.annotation is str
        for constraint in info.metadata
        if isinstance(constraint, MaxLen)
    )


def over_limit(full_name: str, value: dict[str, Any]) -> str | None:
    """The first top-level or ``meta`` string of ``value`` longer than its limit, as a sentence; else ``None``."""
    model = EVENT_TYPES.get(full_name)
    if model is None:
        return None
    for fields, record, prefix in (
        (_string_limits(model), value, ""),
        (_string_limits(Meta), value.get("meta"), "meta."),
    ):
        if not isinstance(record, dict):
            continue
        for name, limit in fields:
            text = record.get(name)
            if isinstance(text, str) and len(text) > limit:
                return f"{prefix}{name} is {len(text):,} characters; the contract allows {limit:,}"
    return None
