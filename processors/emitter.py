"""Builds the spawn gate's output events with deterministic envelopes.

Every output of one input shares the input's time, tree and correlation id, the tree's tenant, and
names the input as its cause; its event id is derived from the input's event id and its
position in the output (see :mod:`agentlog.processors.ids`). No clock, no randomness: replaying
the same input gives byte-identical output. Decisions that name their policy get the
emitter's ``policy_name`` (empty when no policy is in force).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from agentlog import events as ev
from agentlog.events.trusted import trusted
from agentlog.events.types import as_utc
from agentlog.processors.ids import output_event_id

PRODUCER = "agentlog.spawn_gate"

E = TypeVar("E", bound=ev.Event)

_NAMES_POLICY = frozenset(
    t for name, t in ev.EVENT_TYPES.items() if name.startswith("agentlog.decision.") and "policy_name" in t.model_fields
)
"""The decisions that carry the name of the policy applied beside its version."""


class Emitter:
    """Collects the outputs caused by one input (an event, or one agent's timeout)."""

    __slots__ = (
        "_causation",
        "_correlation",
        "_occurred_at",
        "_policy_name",
        "_producer",
        "_root_id",
        "_source",
        "_tenant_id",
        "core",
        "events",
    )

    def __init__(
        self,
        source: str,
        occurred_at: datetime,
        tenant_id: str,
        root_id: str,
        causation_id: uuid.UUID | None = None,
        correlation_id: str | None = None,
        policy_name: str = "",
        producer: str = PRODUCER,
    ) -> None:
        self._producer = producer
        self._source = source
        self._occurred_at = as_utc(occurred_at)
        self._tenant_id = tenant_id
        self._root_id = root_id
        self._causation = causation_id
        self._correlation = correlation_id
        self._policy_name = policy_name
        self.events: list[ev.Event] = []
        self.core = 2
        """The version of the gate's core deciding (:data:`~agentlog.processors.spawn_gate.CORE_VERSION`)."""

    @classmethod
    def caused_by(
        cls, event: ev.Event, policy_name: str = "", tenant_id: str | None = None, producer: str = PRODUCER
    ) -> Emitter:
        """The emitter of the decisions about ``event`` under the policy named ``policy_name``.

        ``tenant_id``: the tenant of the tree the decisions concern (default: the input's); ``producer``: the
        processor that decides (``meta.producer``).
        """
        meta = event.meta
        return cls(
            str(meta.event_id),
            meta.occurred_at,
            tenant_id if tenant_id is not None else meta.tenant_id,
            meta.root_id,
            meta.event_id,
            meta.correlation_id,
            policy_name,
            producer,
        )

    def emit(self, record: type[E], **fields: Any) -> E:
        """Append one output event of type ``record``."""
        meta = trusted(  # every value comes from the validated input, or is the producer's name
            ev.Meta,
            {
                "event_id": output_event_id(self._source, len(self.events)),
                "occurred_at": self._occurred_at,
                "tenant_id": self._tenant_id,
                "root_id": self._root_id,
                "producer": self._producer,
                "causation_id": self._causation,
                "correlation_id": self._correlation,
            },
        )
        if record in _NAMES_POLICY:
            fields.setdefault("policy_name", self._policy_name)
        event = record(meta=meta, **fields)
        self.events.append(event)
        return event

    def fact(self, record: type[E], **fields: Any) -> E | None:
        """Emit the gate's answer to a lifecycle report (accepted or rejected), if this core answers reports."""
        return self.emit(record, **fields) if self.core >= 2 else None
