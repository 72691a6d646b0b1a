"""The spawn policy: the default file, validation errors, and the PolicyPublished round trip."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pydantic import create_model

from agentlog import events as ev
from agentlog.errors import AgentlogError
from agentlog.processors.errors import PolicyError
from agentlog.processors.policy import (
    DEFAULT_POLICY_PATH,
    content_hash,
    from_event,
    load_default_policy,
    load_policy,
    parse_policy,
    to_event,
)
from agentlog.processors.testing import small_policy
from agentlog.serde import Serde

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_default_policy_loads_with_the_documented_roles() -> None:
    """The shipped default policy validates and whitelists the five standard roles with depth 3."""
    policy = load_default_policy()
    assert policy.name == "default"
    assert policy.version >= 1
    assert policy.limits.max_depth == 3
    assert policy.config_names == ["coder", "orchestrator", "researcher", "reviewer", "summarizer"]
    orchestrator = policy.rule("orchestrator")
    summarizer = policy.rule("summarizer")
    assert orchestrator is not None and orchestrator.may_spawn and orchestrator.spawnable_by == []
    assert summarizer is not None and not summarizer.may_spawn
    assert policy.rule("hacker") is None


def test_policy_error_is_an_agentlog_error() -> None:
    """PolicyError derives from the core's root exception."""
    assert issubclass(PolicyError, AgentlogError)


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("name: x\nconfigs: []\n", "configs", "at least 1"),
        ("configs: [{name: a, max_token_grant: 1}]\n", "name", "Field required"),
        (
            "name: x\nlimits: {max_depth: -1}\nconfigs: [{name: a, max_token_grant: 1}]\n",
            "limits.max_depth",
            "at least 0",
        ),
        (
            "name: x\nlimits: {circuit_denials: 0}\nconfigs: [{name: a, max_token_grant: 1}]\n",
            "limits.circuit_denials",
            "at least 1",
        ),
        (
            "name: x\nlimits: {circuit_cooldown_ms: 999999999999999}\nconfigs: [{name: a, max_token_grant: 1}]\n",
            "limits.circuit_cooldown_ms",
            "at most",
        ),
        (
            "name: x\nlimits: {max_dept: 3}\nconfigs: [{name: a, max_token_grant: 1}]\n",
            "limits.max_dept",
            "Extra inputs",
        ),
        ("name: x\nconfigs: [{name: a}]\n", "configs.0.max_token_grant", "Field required"),
        ("name: x\nconfigs: [{name: a, max_token_grant: -5}]\n", "configs.0.max_token_grant", "negative"),
        (
            "name: x\nconfigs: [{name: a, max_token_grant: 1, max_spawn_grant: -1}]\n",
            "configs.0.max_spawn_grant",
            "negative",
        ),
        (
            "name: x\nconfigs: [{name: a, max_token_grant: 1}, {name: a, max_token_grant: 2}]\n",
            "configs.1.name",
            "duplicate",
        ),
        (
            "name: x\nconfigs: [{name: a, max_token_grant: 1, spawnable_by: [b]}]\n",
            "configs.0.spawnable_by",
            "unknown config 'b'",
        ),
        ("name: x\nversion: 0\nconfigs: [{name: a, max_token_grant: 1}]\n", "version", "greater than or equal"),
    ],
)
def test_bad_policy_file_names_the_field_and_the_file(tmp_path: Path, text: str, field: str, reason: str) -> None:
    """Each kind of mistake raises PolicyError naming the file, the dotted field and the problem."""
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.source == str(path)
    assert str(path) in str(caught.value)
    assert any(p == field and reason in r for p, r in caught.value.problems), caught.value.problems


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    """Problems in limits and configs are reported together, not one per attempt."""
    path = _write(tmp_path, "name: x\nlimits: {max_depth: -1}\nconfigs: [{name: a, max_token_grant: -1}]\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert {p for p, _ in caught.value.problems} == {"limits.max_depth", "configs.0.max_token_grant"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [("name: [unclosed\n", "not valid YAML at line"), ("- a\n- b\n", "expected a mapping"), ("", "got NoneType")],
)
def test_unreadable_yaml_is_a_policy_error(tmp_path: Path, text: str, reason: str) -> None:
    """Broken YAML or a document that is not a mapping raise PolicyError with the position or shape."""
    with pytest.raises(PolicyError, match=reason):
        load_policy(_write(tmp_path, text))


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    """A file that does not exist raises PolicyError naming it."""
    with pytest.raises(PolicyError, match="cannot read the file"):
        load_policy(tmp_path / "absent.yaml")


def test_policy_published_round_trip() -> None:
    """to_event and from_event are inverse, and the event carries name, version and content hash."""
    policy = load_default_policy()
    event = to_event(policy, published_by="ops@example.com")
    assert isinstance(event, ev.PolicyPublished)
    assert event.meta.root_id == event.policy_name == "default"
    assert event.version == policy.version
    assert event.content_hash == policy.content_hash()
    assert from_event(event) == policy


def test_content_hash_ignores_listing_order() -> None:
    """Reordering configs and their name lists leaves the content hash unchanged; a change of content does not."""
    policy = small_policy()
    shuffled = [rule.model_copy(update={"spawnable_by": rule.spawnable_by[::-1]}) for rule in policy.configs[::-1]]
    assert content_hash(policy.limits, shuffled) == policy.content_hash()
    changed = policy.limits.model_copy(update={"max_depth": 4})
    assert content_hash(changed, policy.configs) != policy.content_hash()


def test_content_hash_is_sha256_of_canonical_json() -> None:
    """The hash is 64 hex digits and the same for the same content across loads."""
    digest = load_policy(DEFAULT_POLICY_PATH).content_hash()
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest == load_default_policy().content_hash()


def _published_policies() -> list[ev.PolicyPublished]:
    """The PolicyPublished records of the golden logs, as the gate read them when they were recorded."""
    serde = Serde()
    lines = [json.loads(line) for path in sorted(GOLDEN.glob("*.jsonl")) for line in path.read_text().splitlines()]
    events = [
        serde.decode(base64.b64decode(line["value_b64"])) for line in lines if line["topic"].endswith(".policy.config")
    ]
    return [e for e in events if isinstance(e, ev.PolicyPublished)]


def test_fields_added_to_the_policy_keep_old_hashes() -> None:
    """A limit or a config field added to the contract leaves every policy already published valid.

    The new fields are added here with pydantic (as the code generator would add them); a
    policy published before has them at their defaults, so its recorded hash still matches;
    setting one changes the hash.
    """
    published = _published_policies()
    assert len(published) >= 3
    limits_v2 = create_model("Limits", __base__=ev.Limits, max_cost_usd=(int, 0))
    rule_v2 = create_model("ConfigRule", __base__=ev.ConfigRule, max_children_total=(int | None, None))
    for event in published:
        limits = limits_v2(**event.limits.model_dump())
        configs = [rule_v2(**rule.model_dump()) for rule in event.configs]
        assert content_hash(limits, configs) == event.content_hash
        assert from_event(event).content_hash() == event.content_hash
        changed = content_hash(limits.model_copy(update={"max_cost_usd": 5}), configs)
        assert changed != event.content_hash
        first = configs[0].model_copy(update={"max_children_total": 3})
        assert content_hash(limits, [first, *configs[1:]]) != event.content_hash


def test_tampered_policy_event_is_rejected() -> None:
    """A PolicyPublished whose content does not match its hash raises PolicyError on content_hash."""
    event = to_event(small_policy(), published_by="ops")
    tampered = event.model_copy(update={"limits": event.limits.model_copy(update={"max_depth": 9})})
    with pytest.raises(PolicyError) as caught:
        from_event(tampered)
    assert caught.value.problems[0][0] == "content_hash"


def test_parse_policy_accepts_a_plain_mapping() -> None:
    """parse_policy validates a dict (e.g. from JSON) and fills default limits."""
    policy = parse_policy({"name": "p", "configs": [{"name": "a", "max_token_grant": 10}]})
    assert policy.version == 1
    assert policy.limits == ev.Limits()
