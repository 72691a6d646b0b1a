"""The ACLs of each role: least privilege over the deployment's topics (the broker's answers are in tests/secure)."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AclOperation, ResourceType  # type: ignore[attr-defined]

from agentlog.access import Role, role_of_user, rules
from agentlog.settings import Settings
from agentlog.topics import CATALOGUE, KEYRING, POLICY_CONFIG, POLICY_DECISIONS

PREFIX = "prod."


def _writes(role: Role) -> set[str]:
    settings = Settings(topic_prefix=PREFIX)
    return {
        r.name + ("*" if r.prefixed else "")
        for r in rules(role, settings)
        if r.resource == ResourceType.TOPIC and r.operation == AclOperation.WRITE
    }


def test_only_the_gate_writes_decisions_and_nobody_but_the_admin_writes_policy_or_keyring() -> None:
    for role in Role:
        writes = _writes(role)
        assert (PREFIX + POLICY_DECISIONS.name in writes) is (role is Role.gate), role
        assert PREFIX + POLICY_CONFIG.name not in writes and PREFIX + KEYRING.name not in writes, role
        assert all(name.startswith(PREFIX) for name in writes), (role, writes)  # nothing outside the deployment
    assert _writes(Role.projector) == {PREFIX + "agentlog.dlq", PREFIX + "agentlog.audit.checkpoints"}
    assert not any(PREFIX + "agentlog.audit.checkpoints" in _writes(r) for r in Role if r is not Role.projector)
    assert _writes(Role.missions) == {  # the mission facts, its changelog (under its name) and dead letters
        PREFIX + "agentlog.mission.events",
        PREFIX + "agentlog.missions-processor*",
        PREFIX + "agentlog.dlq",
    }
    assert not any(PREFIX + "agentlog.mission.events" in _writes(r) for r in Role if r is not Role.missions)
    assert _writes(Role.auditor) == set()
    assert _writes(Role.tenant) == {
        PREFIX + name
        for name in (
            "agentlog.spawn.requests",
            "agentlog.agent.lifecycle",
            "agentlog.agent.heartbeats",
            "agentlog.messages",
            "agentlog.missions",
        )
    }


@pytest.mark.parametrize("role", [Role.projector, Role.auditor])
def test_projector_and_auditor_read_every_topic(role: Role) -> None:
    reads = {r.name for r in rules(role, Settings(topic_prefix=PREFIX)) if r.operation == AclOperation.READ}
    assert {PREFIX + spec.name for spec in CATALOGUE} <= reads


def test_each_rule_appears_once_even_without_a_prefix() -> None:
    for role in Role:
        found = rules(role, Settings(topic_prefix=""))
        assert len(found) == len(set(found)), role


def test_the_naming_convention_gives_users_their_roles() -> None:
    assert role_of_user("gate") is Role.gate
    assert role_of_user("auditor") is Role.auditor
    assert role_of_user("missions") is Role.missions
    assert role_of_user("tenant-acme") is Role.tenant
    assert role_of_user("tenant") is None and role_of_user("admin") is None and role_of_user("broker") is None
