"""Turning JSON payloads typed by people into validated event models."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from agentlog.errors import PayloadError
from agentlog.events import Event, RootAgentRegistered


def parse_documents(text: str) -> list[tuple[int, Any]]:
    """One JSON object, or JSON lines; returns ``(line number, document)`` pairs.

    Raises :class:`PayloadError` naming the line of the first document that is not JSON.
    """
    stripped = text.strip()
    if not stripped:
        raise PayloadError("payload", [("<input>", "no JSON given")])
    try:
        return [(1, json.loads(stripped))]
    except json.JSONDecodeError:
        pass
    documents = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            documents.append((number, json.loads(line)))
        except json.JSONDecodeError as e:
            raise PayloadError("payload", [("<input>", f"not JSON: {e.msg} at column {e.colno}")], line=number) from e
    return documents


def build_event(model: type[Event], document: Any, *, producer: str, line: int | None = None) -> Event:
    """Validate ``document`` as ``model``, filling what ``meta`` leaves out.

    ``meta.event_id`` and ``meta.occurred_at`` default to a new id and now; ``meta.producer``
    to ``producer``; a root registration's ``meta.root_id`` to its ``agent_id``.
    """
    if not isinstance(document, dict):
        raise PayloadError(
            model.__name__, [("<input>", f"expected a JSON object, got {type(document).__name__}")], line
        )
    payload = dict(document)
    meta = payload.get("meta", {})
    if isinstance(meta, dict):
        meta = {"producer": producer, **meta}
        if model is RootAgentRegistered and "root_id" not in meta and isinstance(payload.get("agent_id"), str):
            meta["root_id"] = payload["agent_id"]
        payload["meta"] = meta
    try:
        return model.model_validate(payload)
    except ValidationError as e:
        raise PayloadError(model.__name__, describe(e), line) from e


def describe(error: ValidationError) -> list[tuple[str, str]]:
    """``(dotted field path, reason)`` for each problem pydantic found."""
    problems = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "<input>"
        reason = item["msg"]
        if item["type"] == "extra_forbidden":
            reason = "unknown field"
        problems.append((path, reason))
    return problems
