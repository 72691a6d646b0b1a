"""Deterministic ids of everything the spawn gate creates.

Replay re-runs the gate and compares its output byte for byte, so no id may come from a
random source: child agents are named after their request, output events after the
input that caused them and their position in the output.
"""

from __future__ import annotations

import hashlib
import uuid

from agentlog.avro_compiled import uuid_of_int

NAMESPACE = uuid.UUID("9b4a3c1e-2f6d-5e8a-b0c7-61d2e4f8a5b3")
"""The fixed uuid5 namespace of agentlog's derived ids. Never change it: replays compare ids."""

_NAMESPACE_BYTES = NAMESPACE.bytes
_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_SET = (0x8000 << 48) | (5 << 76)


def _uuid5_int(name: str) -> int:
    """``uuid.uuid5(NAMESPACE, name).int``, without building the UUID (the derived ids are made per decision)."""
    return int.from_bytes(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16]) & _CLEAR | _SET


def child_agent_id(request_id: uuid.UUID) -> str:
    """The id of the agent a spawn request creates: ``str(uuid.uuid5(NAMESPACE, str(request_id)))``."""
    return str(uuid_of_int(_uuid5_int(str(request_id))))


def output_event_id(source: str, index: int) -> uuid.UUID:
    """The event id of the ``index``-th output caused by ``source`` (an input event id)."""
    return uuid_of_int(_uuid5_int(f"{source}/{index}"))


def forget_source(root_id: str) -> str:
    """The source name of the output that forgets the tree ``root_id``."""
    return f"forget:{root_id}"


def timeout_source(agent_id: str) -> str:
    """The source name of the outputs of an agent's timeout (a timer tick has no input event)."""
    return f"timeout:{agent_id}"
