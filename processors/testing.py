"""Helpers to drive the spawn gate without a broker: for tests, demos and golden replays.

``GateScenario`` builds input events with deterministic ids and an advancing clock, feeds
them to :func:`agentlog.processors.spawn_gate.decide` and keeps every input and output.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from agentlog import events as ev
from agentlog.keyring import UNSIGNED, Attribution
from agentlog.processors.cascade import Silent
from agentlog.processors.ids import child_agent_id
from agentlog.processors.policy import Policy, parse_policy
from agentlog.processors.spawn_gate import decide, expire
from agentlog.processors.tree_state import PartitionState

START = datetime(2026, 1, 1, tzinfo=UTC)
_INPUTS = uuid.UUID("3d7e2a90-5b1c-4f6e-8a2d-9c0b1e4f7a65")


def small_policy(version: int = 1, configs: list[dict[str, Any]] | None = None, **limits: Any) -> Policy:
    """A compact policy for tests: orchestrator → worker → helper, with tight limits by default.

    ``limits`` override the defaults below; ``configs`` replaces the config list.
    """
    base_limits = {
        "max_depth": 3,
        "max_parallel_children": 3,
        "max_active_per_tenant": 50,
        "max_active_platform": 100,
        "default_max_runtime_ms": 3_600_000,
        "circuit_denials": 5,
        "circuit_window_ms": 60_000,
        "circuit_cooldown_ms": 120_000,
        "operators": ["operator"],
    }
    base_configs = [
        {
            "name": "orchestrator",
            "may_spawn": True,
            "spawnable_by": [],
            "max_token_grant": 1_000_000,
            "max_spawn_grant": 30,
        },
        {
            "name": "worker",
            "may_spawn": True,
            "spawnable_by": ["orchestrator", "worker"],
            "max_token_grant": 100_000,
            "max_spawn_grant": 10,
            "forbidden_actions": ["deploy"],
        },
        {
            "name": "helper",
            "may_spawn": False,
            "spawnable_by": ["worker"],
            "max_token_grant": 10_000,
            "max_spawn_grant": 0,
            "forbidden_actions": ["deploy", "shell"],
        },
    ]
    return parse_policy(
        {
            "name": "test",
            "version": version,
            "limits": {**base_limits, **limits},
            "configs": base_configs if configs is None else configs,
        },
        "small_policy",
    )


class GateScenario:
    """Feeds events to the spawn gate one by one, one ``step`` of event time apart."""

    def __init__(
        self,
        policy: Policy | None,
        *,
        tenant: str = "acme",
        start: datetime = START,
        step: timedelta = timedelta(seconds=1),
        state: PartitionState | None = None,
    ) -> None:
        self.policy = policy
        self.tenant = tenant
        self.now = start
        self.step = step
        self.state = state if state is not None else PartitionState()
        self.log: list[tuple[ev.Event | datetime, list[ev.Event]]] = []
        """Every input (an event, or the time of an expire tick) with its outputs, in order."""
        self._roots: dict[str, str] = {}
        self._tenants: dict[str, str] = {}
        self._count = 0
        self.signer: Callable[[ev.Event], Attribution] | None = None
        """Who the gate is told signed each input sent from now on (None: nobody, the inputs are unsigned)."""

    # -- plumbing -------------------------------------------------------------------------

    def meta(self, root_id: str, tenant: str | None = None) -> ev.Meta:
        """A fresh envelope at the current time (the clock then advances one step).

        The tenant is ``tenant``, else the one the tree was registered with, else the scenario's.
        """
        self._count += 1
        meta = ev.Meta(
            event_id=uuid.uuid5(_INPUTS, f"input/{self._count}"),
            occurred_at=self.now,
            tenant_id=tenant or self._tenants.get(root_id, self.tenant),
            root_id=root_id,
            producer="processors.testing",
            correlation_id="scenario",
        )
        self.now += self.step
        return meta

    def request_id(self) -> uuid.UUID:
        """A deterministic request id."""
        self._count += 1
        return uuid.uuid5(_INPUTS, f"request/{self._count}")

    def root_of(self, agent_id: str) -> str:
        """The tree an agent was created in (an unknown agent is taken as a root)."""
        return self._roots.get(agent_id, agent_id)

    def send(self, event: ev.Event) -> list[ev.Event]:
        """Decide one event and record it with its outputs."""
        attribution = self.signer(event) if self.signer is not None else UNSIGNED
        outputs = decide(self.state, event, self.policy, attribution=attribution)
        for output in outputs:
            if isinstance(output, ev.SpawnApproved):
                self._roots[output.child_agent_id] = output.meta.root_id
        self.log.append((event, outputs))
        return outputs

    def tick(self, advance: timedelta = timedelta(0), silent: Silent | None = None) -> list[ev.Event]:
        """Advance the clock, then run :func:`expire` at the new time (``silent``: agents whose heartbeats stopped)."""
        self.now += advance
        outputs = expire(self.state, self.now, self.policy, silent)
        self.log.append((self.now, outputs))
        return outputs

    # -- inputs ---------------------------------------------------------------------------

    def register_root(
        self,
        root_id: str,
        config: str = "orchestrator",
        tokens: int = 100_000,
        spawns: int = 10,
        tenant: str | None = None,
        **fields: Any,
    ) -> list[ev.Event]:
        """Send a ``RootAgentRegistered``."""
        fields.setdefault("agent_id", root_id)
        self._tenants.setdefault(root_id, tenant or self.tenant)  # the first registration owns the id, as in the gate
        return self.send(
            ev.RootAgentRegistered(
                meta=self.meta(root_id, tenant), config=config, token_budget=tokens, spawn_budget=spawns, **fields
            )
        )

    def spawn(
        self,
        parent: str,
        config: str = "worker",
        tokens: int = 1_000,
        spawns: int = 0,
        root: str | None = None,
        request_id: uuid.UUID | None = None,
        tenant: str | None = None,
        **fields: Any,
    ) -> list[ev.Event]:
        """Send a ``SpawnRequested``."""
        fields.setdefault("task", ev.TaskSpec(title=f"task of a {config}"))
        return self.send(
            ev.SpawnRequested(
                meta=self.meta(root or self.root_of(parent), tenant),
                request_id=request_id or self.request_id(),
                parent_agent_id=parent,
                child_config=config,
                requested_token_budget=tokens,
                requested_spawn_budget=spawns,
                **fields,
            )
        )

    def start(self, agent: str, root: str | None = None, *, heartbeat: bool = False) -> list[ev.Event]:
        """Send an ``AgentStarted`` (promising heartbeats with ``heartbeat``)."""
        meta = self.meta(root or self.root_of(agent))
        return self.send(ev.AgentStarted(meta=meta, agent_id=agent, heartbeat=heartbeat))

    def consume(self, agent: str, tokens: int, root: str | None = None) -> list[ev.Event]:
        """Send a ``TokensConsumed``."""
        return self.send(ev.TokensConsumed(meta=self.meta(root or self.root_of(agent)), agent_id=agent, tokens=tokens))

    def complete(self, agent: str, tokens_used: int = 0, root: str | None = None) -> list[ev.Event]:
        """Send an ``AgentCompleted``."""
        return self.send(
            ev.AgentCompleted(meta=self.meta(root or self.root_of(agent)), agent_id=agent, tokens_used=tokens_used)
        )

    def fail(self, agent: str, tokens_used: int = 0, root: str | None = None) -> list[ev.Event]:
        """Send an ``AgentFailed``."""
        return self.send(
            ev.AgentFailed(
                meta=self.meta(root or self.root_of(agent)), agent_id=agent, error="it broke", tokens_used=tokens_used
            )
        )

    def terminate(self, agent: str, requested_by: str = "operator", root: str | None = None) -> list[ev.Event]:
        """Send a ``TerminationRequested``."""
        return self.send(
            ev.TerminationRequested(
                meta=self.meta(root or self.root_of(agent)), agent_id=agent, requested_by=requested_by
            )
        )

    def top_up(
        self,
        agent: str,
        tokens: int,
        root: str | None = None,
        request_id: uuid.UUID | None = None,
        tenant: str | None = None,
    ) -> list[ev.Event]:
        """Send a ``BudgetTopUpRequested``."""
        return self.send(
            ev.BudgetTopUpRequested(
                meta=self.meta(root or self.root_of(agent), tenant),
                request_id=request_id or self.request_id(),
                agent_id=agent,
                additional_tokens=tokens,
                requested_by="operator",
            )
        )

    def spawned(self, parent: str, config: str = "worker", tokens: int = 1_000, spawns: int = 0, **fields: Any) -> str:
        """Spawn and return the child's id; raises AssertionError if the spawn is not approved."""
        outputs = self.spawn(parent, config, tokens, spawns, **fields)
        approved = [o for o in outputs if isinstance(o, ev.SpawnApproved)]
        if not approved:
            raise AssertionError(f"spawn was not approved: {[getattr(o, 'message', o) for o in outputs]}")
        return approved[0].child_agent_id


E = TypeVar("E", bound=ev.Event)


def admitted_tree(root_id: str, agents: list[str], tenant: str = "acme") -> list[ev.Event]:
    """The gate's facts of a tree whose root and ``agents`` (its children) were approved: the input a processor
    that follows the gate (the mission processor) needs, for tests and benchmarks that run no gate."""

    def meta() -> ev.Meta:
        return ev.Meta(tenant_id=tenant, root_id=root_id, producer="test")

    facts: list[ev.Event] = [
        ev.RootAdmitted(meta=meta(), agent_id=root_id, config="orchestrator", token_budget=1,
                        spawn_budget=len(agents), policy_version=0, message="")
    ]  # fmt: skip
    facts += [
        ev.SpawnApproved(meta=meta(), request_id=uuid.uuid5(_INPUTS, f"{root_id}/{agent}"), parent_agent_id=root_id,
                         child_agent_id=agent, child_config="worker", depth=1, granted_token_budget=1,
                         granted_spawn_budget=0, parent_remaining_tokens=0, parent_remaining_spawn_budget=0,
                         policy_version=0, message="")
        for agent in agents
    ]  # fmt: skip
    return facts


def one(outputs: list[ev.Event], kind: type[E]) -> E:
    """The single output of type ``kind``; raises AssertionError if there is not exactly one."""
    found = [o for o in outputs if isinstance(o, kind)]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind.__name__}, got {[type(o).__name__ for o in outputs]}")
    return found[0]


def wide_tree_policy() -> Policy:
    """The policy ``default`` v1 under which one tree may hold 20,001 agents: 100 leads of 199 workers each."""
    return parse_policy(
        {
            "name": "default",
            "version": 1,
            "limits": {
                "max_depth": 2,
                "max_parallel_children": 200,
                "max_active_per_tenant": 1_000_000,
                "max_active_platform": 1_000_000,
            },
            "configs": [
                {
                    "name": "orchestrator",
                    "may_spawn": True,
                    "spawnable_by": [],
                    "max_token_grant": 10**9,
                    "max_spawn_grant": 30_000,
                },
                {
                    "name": "lead",
                    "may_spawn": True,
                    "spawnable_by": ["orchestrator"],
                    "max_token_grant": 10**6,
                    "max_spawn_grant": 199,
                },
                {"name": "worker", "may_spawn": False, "spawnable_by": ["lead"], "max_token_grant": 100},
            ],
        },
        "wide_tree_policy",
    )


def wide_tree(root_id: str = "big", leads: int = 100, workers_per_lead: int = 199, seed: int = 3) -> list[ev.Event]:
    """A root, ``leads`` leads and their workers, as requests with deterministic ids (all approved under
    :func:`wide_tree_policy`): ``1 + leads * (1 + workers_per_lead)`` agents in one tree."""
    rng = random.Random(seed)

    def meta() -> ev.Meta:
        return ev.Meta(event_id=uuid.UUID(int=rng.getrandbits(128)), tenant_id="acme", root_id=root_id, producer="t")

    def spawn(parent: str, config: str, tokens: int, spawns: int = 0) -> ev.SpawnRequested:
        return ev.SpawnRequested(
            meta=meta(),
            request_id=uuid.UUID(int=rng.getrandbits(128)),
            parent_agent_id=parent,
            child_config=config,
            task=ev.TaskSpec(title=config),
            requested_token_budget=tokens,
            requested_spawn_budget=spawns,
        )

    spawn_budget = leads * (1 + workers_per_lead)
    root = ev.RootAgentRegistered(
        meta=meta(), agent_id=root_id, config="orchestrator", token_budget=10**8, spawn_budget=spawn_budget
    )
    lead_requests = [spawn(root_id, "lead", 10_000, workers_per_lead) for _ in range(leads)]
    ids = [child_agent_id(r.request_id) for r in lead_requests]
    workers = [spawn(ids[i % leads], "worker", 50) for i in range(leads * workers_per_lead)]
    return [root, *lead_requests, *workers]
