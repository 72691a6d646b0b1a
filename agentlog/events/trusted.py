"""Records built from values that are already valid, without validating them again.

A processor's core computes its outputs from validated inputs, its own state and constants;
validating each nested record of an output again costs about a microsecond apiece (a spawn
approval holds nine ``LimitCheck``s and a ``Meta``). :func:`trusted` builds such a record as
pydantic's validator would, field for field; the event that holds it is still validated (the
nested records pass as the instances they are), and the contract's tests compare the two ways.
"""

from __future__ import annotations

from typing import Any, TypeVar

from agentlog.events._models import AvroRecord

R = TypeVar("R", bound=AvroRecord)

_new, _set = object.__new__, object.__setattr__


def trusted(record: type[R], fields: dict[str, Any]) -> R:
    """The ``record`` holding ``fields``: every field of the record, in the schema's order, each a value its
    validation would keep as it is (an ``int`` in range, a ``str`` within its length, a ``UUID``, an aware UTC
    ``datetime``). ``fields`` becomes the record's own; the caller does not keep it."""
    made = _new(record)
    _set(made, "__dict__", fields)
    _set(made, "__pydantic_fields_set__", set(fields))
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made
