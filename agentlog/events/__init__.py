"""The event models of the agentlog contract, generated from ``schemas/*.avsc``.

``EVENT_TYPES`` maps each Avro full name to its model; an event's type is its Avro
full name (``SpawnRequested.avro_name``), never a string typed a second time.
"""

from agentlog.errors import UnknownRecordError
from agentlog.events import _models
from agentlog.events._models import *  # noqa: F403  (the generated module is the public surface)
from agentlog.events._models import EVENT_TYPES, Event

__all__ = [*_models.__all__, "event_type"]  # noqa: PLE0604  (extends the generated list)


def event_type(name: str) -> type[Event]:
    """The model called ``name``, short (``SpawnRequested``) or full (``agentlog.spawn.SpawnRequested``)."""
    if name in EVENT_TYPES:
        return EVENT_TYPES[name]
    for full_name, cls in EVENT_TYPES.items():
        if full_name.rsplit(".", 1)[-1] == name:
            return cls
    raise UnknownRecordError(name, sorted(n.rsplit(".", 1)[-1] for n in EVENT_TYPES))
