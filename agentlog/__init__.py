"""agentlog core."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentlog.bus_client import (
        BusClient,
        BusTimeout,
        Inbox,
        InboxMessage,
        MessageRefused,
        QuestionExpired,
        RequestExpired,
    )

__all__ = [
    "BusClient",
    "BusTimeout",
    "Inbox",
    "InboxMessage",
    "MessageRefused",
    "QuestionExpired",
    "RequestExpired",
]

_LAZY = {name: "agentlog.bus_client" for name in __all__}
"""Exports loaded at first use, so that ``import agentlog.events`` does not load the Kafka client."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentlog' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
