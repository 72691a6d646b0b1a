"""The spawn policy: limits and the config whitelist, loaded from YAML or a ``PolicyPublished``.

A policy is validated once, where it enters (a file, an event); the decision path then
trusts it. Its content hash is the SHA-256 of the canonical JSON of limits and configs
(keys sorted, no spaces, configs sorted by name with their name lists sorted), so the
same content always hashes the same, whatever order the YAML listed it in. Fields added to
the contract after a policy was published are hashed only where they differ from their
default (:data:`HASHED_FIELDS`), so an old policy keeps its hash when the contract grows.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from agentlog import events as ev
from agentlog.limits import MAX_CHARS
from agentlog.processors.errors import PolicyError

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "policies" / "default.yaml"
POLICY_PRODUCER = "agentlog.policy"

# (field, smallest allowed value) of Limits; the schema only bounds them by the int width.
_LIMIT_MINIMA = {
    "max_depth": 0,
    "max_parallel_children": 0,
    "max_active_per_tenant": 0,
    "max_active_platform": 0,
    "default_max_runtime_ms": 1,
    "circuit_denials": 1,
    "circuit_window_ms": 1,
    "circuit_cooldown_ms": 0,
    "ended_tree_retention_ms": 0,
    "heartbeat_interval_ms": 0,
    "heartbeat_misses": 1,
    "mission_retention_ms": 0,
}


_PROBLEMS = "policy_problems"


_TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000
_LIMIT_MAXIMA = {
    "default_max_runtime_ms": _TEN_YEARS_MS,
    "circuit_window_ms": _TEN_YEARS_MS,
    "circuit_cooldown_ms": _TEN_YEARS_MS,
    "ended_tree_retention_ms": _TEN_YEARS_MS,
    "heartbeat_interval_ms": 24 * 3600 * 1000,
    "heartbeat_misses": 1000,
    "mission_retention_ms": _TEN_YEARS_MS,
}
"""Durations must keep deadlines representable (and a heartbeat timeout far below a deadline's range)."""
MIN_HEARTBEAT_INTERVAL_MS = 100
"""The shortest heartbeat interval a policy may set (0 turns heartbeats off): every beat is a record."""


def _problems_error(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """A validation error carrying ``(field path, reason)`` pairs; :func:`parse_policy` unpacks them."""
    summary = "; ".join(f"{path}: {reason}" for path, reason in problems)
    return PydanticCustomError(_PROBLEMS, "{summary}", {"summary": summary, "problems": problems})


MAX_POLICY_VERSION = 1_000_000
"""The highest policy version: a new one every minute for almost two years, yet far from freezing Avro's int."""


class Policy(BaseModel):
    """A versioned spawn policy: numeric limits and the whitelisted configs with their authority."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        min_length=1, max_length=MAX_CHARS["id"], description="Policy name; the key of the compacted policy topic."
    )
    version: int = Field(
        default=1,
        ge=1,
        le=MAX_POLICY_VERSION,
        strict=True,
        description="Version: 1 first, then one more per publication.",
    )
    limits: ev.Limits = Field(default_factory=ev.Limits, description="Numeric limits.")
    configs: tuple[ev.ConfigRule, ...] = Field(min_length=1, description="Whitelisted configs; others are denied.")

    @field_validator("limits")
    @classmethod
    def _check_limits(cls, limits: ev.Limits) -> ev.Limits:
        problems = [
            (f"limits.{name}", f"must be at least {minimum}, got {getattr(limits, name)}")
            for name, minimum in _LIMIT_MINIMA.items()
            if getattr(limits, name) < minimum
        ]
        problems += [
            (f"limits.{name}", f"must be at most {maximum}, got {getattr(limits, name)}")
            for name, maximum in _LIMIT_MAXIMA.items()
            if getattr(limits, name) > maximum
        ]
        if 0 < limits.heartbeat_interval_ms < MIN_HEARTBEAT_INTERVAL_MS:
            reason = (
                f"must be 0 (no heartbeats) or at least {MIN_HEARTBEAT_INTERVAL_MS}, got {limits.heartbeat_interval_ms}"
            )
            problems.append(("limits.heartbeat_interval_ms", reason))
        if problems:
            raise _problems_error(problems)
        return limits.model_copy(update={"operators": sorted(set(limits.operators))})

    @field_validator("configs")
    @classmethod
    def _check_configs(cls, configs: tuple[ev.ConfigRule, ...]) -> tuple[ev.ConfigRule, ...]:
        problems: list[tuple[str, str]] = []
        names = [c.name for c in configs]
        known = set(names)
        for i, rule in enumerate(configs):
            if not rule.name.strip():
                problems.append((f"configs.{i}.name", "must not be empty"))
            if names.index(rule.name) != i:
                problems.append((f"configs.{i}.name", f"duplicate config {rule.name!r}"))
            if rule.max_token_grant < 0:
                problems.append((f"configs.{i}.max_token_grant", f"must not be negative, got {rule.max_token_grant}"))
            if rule.max_spawn_grant < 0:
                problems.append((f"configs.{i}.max_spawn_grant", f"must not be negative, got {rule.max_spawn_grant}"))
            problems.extend(
                (f"configs.{i}.spawnable_by", f"unknown config {parent!r} (known: {', '.join(sorted(known))})")
                for parent in rule.spawnable_by
                if parent not in known
            )
            problems.extend(
                (f"configs.{i}.terminable_by", f"unknown config {ancestor!r} (known: {', '.join(sorted(known))})")
                for ancestor in rule.terminable_by
                if ancestor not in known
            )
        if problems:
            raise _problems_error(problems)
        return tuple(
            rule.model_copy(
                update={
                    "spawnable_by": sorted(set(rule.spawnable_by)),
                    "forbidden_actions": sorted(set(rule.forbidden_actions)),
                    "terminable_by": sorted(set(rule.terminable_by)),
                }
            )
            for rule in sorted(configs, key=lambda c: c.name)
        )

    @cached_property
    def rules_by_name(self) -> dict[str, ev.ConfigRule]:
        """The configs indexed by name."""
        return {rule.name: rule for rule in self.configs}

    def rule(self, config: str) -> ev.ConfigRule | None:
        """The rule of a whitelisted config, or None: not whitelisted."""
        return self.rules_by_name.get(config)

    @property
    def config_names(self) -> list[str]:
        """Whitelisted config names, sorted."""
        return [rule.name for rule in self.configs]

    def content_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of limits and configs."""
        return content_hash(self.limits, self.configs)


HASHED_FIELDS: dict[str, frozenset[str]] = {
    "limits": frozenset(
        {
            "circuit_cooldown_ms",
            "circuit_denials",
            "circuit_window_ms",
            "default_max_runtime_ms",
            "max_active_per_tenant",
            "max_active_platform",
            "max_depth",
            "max_parallel_children",
        }
    ),
    "configs": frozenset(
        {"forbidden_actions", "max_spawn_grant", "max_token_grant", "may_spawn", "name", "spawnable_by"}
    ),
}
"""The fields of ``Limits`` and ``ConfigRule`` the hash covered when policies were first published.

They are always hashed. A field added to the contract since is hashed only where it differs
from its default: every policy published before the field existed (and read back with the
default filled in) keeps the hash it was published with, so restarts and replay still
accept it, while a policy that sets the new field hashes differently. Never remove a name.
"""


def _canonical(model: BaseModel, always: frozenset[str]) -> dict[str, Any]:
    """A model's JSON fields: those in ``always``, and the others where they differ from their default."""
    fields = type(model).model_fields
    return {
        name: value
        for name, value in model.model_dump(mode="json").items()
        if name in always
        or fields[name].is_required()
        or getattr(model, name) != fields[name].get_default(call_default_factory=True)
    }


_NAME_SETS = ("terminable_by", "operators")
"""List fields added since the first policies whose order and repeats mean nothing (hashed sorted, deduplicated)."""


def _name_sets(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: sorted(set(v)) if k in _NAME_SETS else v for k, v in fields.items()}


def content_hash(limits: ev.Limits, configs: tuple[ev.ConfigRule, ...] | list[ev.ConfigRule]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``limits`` and ``configs``.

    Canonical: configs sorted by name with their name lists (``spawnable_by``,
    ``forbidden_actions``, ``terminable_by``) and the operators sorted and deduplicated, the
    fields of :data:`HASHED_FIELDS` present (later ones only when not at their default), keys
    sorted, compact separators, UTF-8.
    """
    rules = [
        _name_sets(
            {
                **_canonical(rule, HASHED_FIELDS["configs"]),
                "spawnable_by": sorted(set(rule.spawnable_by)),
                "forbidden_actions": sorted(set(rule.forbidden_actions)),
            }
        )
        for rule in sorted(configs, key=lambda c: c.name)
    ]
    document = {"limits": _name_sets(_canonical(limits, HASHED_FIELDS["limits"])), "configs": rules}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_policy(data: object, source: str = "<policy>") -> Policy:
    """Validate a mapping (parsed YAML or JSON) as a policy; errors name the field and ``source``."""
    if not isinstance(data, dict):
        expected = f"expected a mapping with name, version, limits, configs; got {type(data).__name__}"
        raise PolicyError(source, [("", expected)])
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        problems: list[tuple[str, str]] = []
        for err in e.errors():
            if err["type"] == _PROBLEMS:
                problems.extend(err.get("ctx", {})["problems"])
            else:
                problems.append((".".join(str(part) for part in err["loc"]), err["msg"]))
        raise PolicyError(source, problems) from e


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError(source, [("", f"cannot read the file: {e.strerror or e}")]) from e
    except UnicodeDecodeError as e:
        raise PolicyError(source, [("", f"not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})")]) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise PolicyError(source, [("", f"not valid YAML{where}: {getattr(e, 'problem', None) or e}")]) from e
    return parse_policy(data, source)


def load_default_policy() -> Policy:
    """The default policy shipped in ``processors/policies/default.yaml``."""
    return load_policy(DEFAULT_POLICY_PATH)


def requiring_signatures(policy: Policy) -> Policy:
    """``policy`` with ``limits.require_signatures`` on (the secure stack's first policy)."""
    return policy.model_copy(update={"limits": policy.limits.model_copy(update={"require_signatures": True})})


def to_event(
    policy: Policy,
    *,
    published_by: str,
    occurred_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
    tenant_id: str = "platform",
) -> ev.PolicyPublished:
    """The ``PolicyPublished`` announcing ``policy`` (``meta.root_id`` is the policy name)."""
    meta: dict[str, Any] = {"tenant_id": tenant_id, "root_id": policy.name, "producer": POLICY_PRODUCER}
    if occurred_at is not None:
        meta["occurred_at"] = occurred_at
    if event_id is not None:
        meta["event_id"] = event_id
    return ev.PolicyPublished(
        meta=ev.Meta(**meta),
        policy_name=policy.name,
        version=policy.version,
        content_hash=policy.content_hash(),
        limits=policy.limits,
        configs=list(policy.configs),
        published_by=published_by,
    )


def from_event(event: ev.PolicyPublished) -> Policy:
    """The policy a ``PolicyPublished`` carries, after checking its content hash."""
    source = f"{event.policy_name} v{event.version} (event {event.meta.event_id})"
    policy = parse_policy(
        {"name": event.policy_name, "version": event.version, "limits": event.limits, "configs": event.configs},
        source,
    )
    actual = policy.content_hash()
    if actual != event.content_hash:
        raise PolicyError(source, [("content_hash", f"is {event.content_hash}, but the content hashes to {actual}")])
    return policy
