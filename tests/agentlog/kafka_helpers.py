"""Small helpers for tests that read what landed on a topic."""

from __future__ import annotations

import subprocess
from typing import Any

from agentlog.settings import Settings
from agentlog.tail import TailedRecord, TailOptions, tail


def read_all(settings: Settings, base_topic: str) -> list[TailedRecord]:
    """Every committed record of a catalogue topic, from the beginning to the current end."""
    return list(tail(settings, TailOptions(topics=[settings.topic_prefix + base_topic], from_beginning=True)))


def agentlog(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the agentlog CLI as a user would."""
    return subprocess.run(
        ["agentlog", *args], input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False
    )


def root_payload(root: str, **extra: Any) -> dict[str, Any]:
    """A RootAgentRegistered payload as a person would type it."""
    return {
        "meta": {"tenant_id": "acme"},
        "agent_id": root,
        "config": "orchestrator",
        "token_budget": 100_000,
        "spawn_budget": 10,
        **extra,
    }
