"""Scripted agent trees for the golden logs and the replay tests: every denial, cascades, returns, timeouts.

A scenario is a list of steps; each step publishes events (in order: the gate decides by
append time, so no step waits for a decision) or a policy version, or waits (for deadlines
to pass). Ids are derived from the scenario's name, so a re-recording names the same agents.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agentlog import events as ev
from agentlog.keyring_admin import key_published
from agentlog.messages import MESSAGE_TYPES
from agentlog.processors.ids import child_agent_id
from agentlog.processors.policy import Policy, load_default_policy, to_event
from agentlog.producer import Producer
from agentlog.records import Headers
from agentlog.settings import Settings
from agentlog.signing import SIGNATURE_HEADER, SigningKey, sign_batch

NS = uuid.UUID("1f0a6f2e-7c41-5d0e-9b7a-3a9e5c0d2b11")


@dataclass
class Step:
    """Events to publish (signed with ``signer``, or with ``headers`` as given), a policy to publish, or a pause."""

    events: list[ev.Event] = field(default_factory=list)
    policy: Policy | None = None
    pause_s: float = 0.0
    signer: SigningKey | None = None
    headers: Headers | None = None
    made: Callable[[], list[ev.Event]] | None = None
    """Events made when the step is played (they depend on the time), published unsigned."""


class Script:
    """Builds a scenario's steps with deterministic ids."""

    def __init__(self, name: str, tenant: str = "acme") -> None:
        self.name = name
        self.tenant = tenant
        self.steps: list[Step] = []
        self._n = 0
        self.signer: SigningKey | None = None
        """The key the next events are signed with (None: unsigned)."""

    def _id(self) -> uuid.UUID:
        self._n += 1
        return uuid.uuid5(NS, f"{self.name}/{self._n}")

    def meta(self, root: str, tenant: str | None = None) -> ev.Meta:
        return ev.Meta(event_id=self._id(), tenant_id=tenant or self.tenant, root_id=root, producer="golden")

    def publish(self, *events: ev.Event) -> None:
        self.steps.append(Step(events=list(events), signer=self.signer))

    def root(self, root: str, tokens: int, spawns: int, config: str = "orchestrator", **kw: Any) -> str:
        self.publish(
            ev.RootAgentRegistered(
                meta=self.meta(root), agent_id=root, config=config, token_budget=tokens, spawn_budget=spawns, **kw
            )
        )
        return root

    def spawn(self, root: str, parent: str, config: str, tokens: int, spawns: int = 0, **kw: Any) -> str:
        """Publish a spawn request; returns the id the child gets if approved."""
        request_id = kw.pop("request_id", None) or self._id()
        self.publish(
            ev.SpawnRequested(
                meta=self.meta(root),
                request_id=request_id,
                parent_agent_id=parent,
                child_config=config,
                task=ev.TaskSpec(title=f"{config} work"),
                requested_token_budget=tokens,
                requested_spawn_budget=spawns,
                **kw,
            )
        )
        return child_agent_id(request_id)

    def fact(self, make: Callable[[ev.Meta], ev.Event], root: str) -> None:
        self.publish(make(self.meta(root)))

    def policy(self, policy: Policy) -> None:
        self.steps.append(Step(policy=policy))

    def pause(self, seconds: float) -> None:
        self.steps.append(Step(pause_s=seconds))


def policy_version(version: int, **limits: Any) -> Policy:
    """The default policy as ``version``, with some limits changed (the circuit trips after 20 denials)."""
    base = load_default_policy()
    changed = base.limits.model_copy(update={"circuit_denials": 20, **limits})
    return base.model_copy(update={"version": version, "limits": changed})


def denials() -> Script:
    """One tree that meets every denial the gate has, a runaway tree that trips its circuit, four policy versions."""
    s = Script("denials")
    # No NO_POLICY here: a gate refuses to start before its policy is published (the pure core's
    # fail-closed answer without a policy is covered by the unit tests).
    s.policy(policy_version(1))
    s.pause(3.0)  # the gate reads a new version between batches
    r = s.root("golden-denials", 400_000, 30)
    a = s.spawn(r, r, "researcher", 120_000, 6)
    c = s.spawn(r, r, "coder", 100_000, 1)
    b = s.spawn(r, a, "researcher", 40_000, 3)
    d = s.spawn(r, b, "researcher", 10_000, 1)
    s.spawn(r, c, "reviewer", 20_000, 0)
    s.spawn(r, d, "summarizer", 1_000)  # DEPTH_EXCEEDED
    s.spawn(r, c, "reviewer", 5_000)  # SPAWN_BUDGET_EXHAUSTED
    s.spawn(r, b, "researcher", 39_000, 0)  # TOKEN_BUDGET_EXHAUSTED (30,000 left)
    s.spawn(r, r, "crypto-miner", 1_000)  # CONFIG_NOT_WHITELISTED
    s.spawn(r, a, "coder", 10_000)  # NOT_AUTHORIZED
    s.spawn(r, r, "researcher", 1_000, capabilities=["deploy"])  # FORBIDDEN_ACTION
    s.spawn(r, r, "summarizer", 300_000)  # GRANT_TOO_LARGE
    s.spawn(r, "nobody", "summarizer", 1_000)  # UNKNOWN_PARENT
    s.spawn(r, r, "summarizer", -5)  # INVALID_REQUEST
    duplicate = uuid.uuid5(NS, "denials/duplicate")
    s.spawn(r, r, "summarizer", 1_000, request_id=duplicate)
    s.spawn(r, r, "summarizer", 1_000, request_id=duplicate)  # a retry: SpawnApproved again, repeat
    denied_twice = uuid.uuid5(NS, "denials/denied-twice")
    s.spawn(r, r, "crypto-miner", 1_000, request_id=denied_twice)  # CONFIG_NOT_WHITELISTED
    s.spawn(r, r, "crypto-miner", 1_000, request_id=denied_twice)  # a retry: the same denial, repeat
    for _ in range(3):
        s.spawn(r, r, "summarizer", 2_000)  # the 3rd: PARENT_CONCURRENCY (5 active children)
    s.spawn(r, r, "coder", 200_000, 2)  # TOKEN_BUDGET_EXHAUSTED before the researcher's tokens come back
    s.root(r, 1_000, 1)  # RootRejected: DUPLICATE_REQUEST (another registration of a root id in use)
    s.root(r, 400_000, 30)  # a retry of the registration: RootAdmitted again, repeat
    s.fact(lambda m: ev.TokensConsumed(meta=m, agent_id=d, tokens=15_000, model="large"), r)  # BudgetExhausted
    s.fact(lambda m: ev.TokensConsumed(meta=m, agent_id=c, tokens=90_000), r)  # BudgetExhausted (20,000 reserved)
    s.spawn(r, c, "reviewer", 1_000)  # TOKEN_BUDGET_EXHAUSTED (the coder is over budget)
    s.fact(lambda m: ev.BudgetTopUpRequested(meta=m, agent_id="ghost", additional_tokens=5, requested_by=r), r)
    top_up = uuid.uuid5(NS, "denials/top-up")
    for _ in range(2):  # the second is a retry: BudgetToppedUp again, repeat, nothing added
        s.fact(
            lambda m: ev.BudgetTopUpRequested(
                meta=m, request_id=top_up, agent_id=d, additional_tokens=8_000, requested_by=b
            ),
            r,
        )
    # The first researcher completes: its subtree is terminated and its unused tokens return.
    s.fact(lambda m: ev.AgentCompleted(meta=m, agent_id=a, result_summary="12 sources", tokens_used=30_000), r)
    s.spawn(r, b, "summarizer", 1_000)  # PARENT_NOT_ACTIVE
    s.fact(lambda m: ev.BudgetTopUpRequested(meta=m, agent_id=b, additional_tokens=5, requested_by=r), r)
    coder = s.spawn(r, r, "coder", 200_000, 2)  # approved now: the researcher's unused tokens came back
    runaway = s.root("golden-runaway", 50_000, 5)
    for _ in range(21):
        s.spawn(runaway, runaway, "crypto-miner", 1_000)  # 20 denials open the circuit; then CIRCUIT_OPEN
    s.pause(1.0)
    s.policy(policy_version(2, max_active_per_tenant=6))
    s.pause(3.0)
    s.spawn(r, coder, "reviewer", 1_000)  # TENANT_CONCURRENCY
    s.pause(1.0)
    s.policy(policy_version(3, max_active_platform=6))
    s.pause(3.0)
    s.spawn(r, coder, "reviewer", 1_000)  # PLATFORM_CONCURRENCY
    return s


def lifecycle() -> Script:
    """Cascades, requested termination, failure, timeouts, budget returns and late usage."""
    s = Script("lifecycle", tenant="globex")
    s.policy(policy_version(1, operators=["operator"]))
    s.pause(3.0)
    r = s.root("golden-lifecycle", 300_000, 20)
    a = s.spawn(r, r, "researcher", 100_000, 4)
    a1 = s.spawn(r, a, "researcher", 30_000, 1)
    a2 = s.spawn(r, a1, "summarizer", 5_000)
    c = s.spawn(r, r, "coder", 80_000, 2)
    c1 = s.spawn(r, c, "reviewer", 10_000)
    slow = s.spawn(r, r, "researcher", 20_000, 2, max_runtime_ms=1_500)
    s.spawn(r, slow, "summarizer", 2_000)
    s.fact(lambda m: ev.AgentStarted(meta=m, agent_id=a, runtime="golden"), r)
    s.fact(lambda m: ev.TokensConsumed(meta=m, agent_id=a1, tokens=4_000), r)
    s.fact(lambda m: ev.TokensConsumed(meta=m, agent_id=a2, tokens=1_000), r)
    # a1 fails: a2 is terminated, unused tokens flow back to a.
    s.fact(lambda m: ev.AgentFailed(meta=m, agent_id=a1, error="tool crashed", tokens_used=500), r)
    s.fact(lambda m: ev.TokensConsumed(meta=m, agent_id=a2, tokens=300), r)  # late: charged to a
    s.spawn(r, a, "researcher", 90_000)  # fits again only because a1's tokens came back
    # An operator stops the coder: its reviewer goes with it.
    s.fact(lambda m: ev.TerminationRequested(meta=m, agent_id=c, requested_by="operator", reason="off track"), r)
    s.fact(lambda m: ev.TerminationRequested(meta=m, agent_id=c1, requested_by="operator"), r)  # already ended
    s.pause(4.0)  # `slow` passes its deadline: timed out by the gate's timer, its child with it
    s.spawn(r, slow, "summarizer", 1_000)  # PARENT_NOT_ACTIVE
    s.fact(lambda m: ev.TokensConsumed(meta=m, agent_id=r, tokens=295_000), r)  # the root overspends
    s.fact(lambda m: ev.BudgetTopUpRequested(meta=m, agent_id=r, additional_tokens=50_000, requested_by="ops"), r)
    s.fact(lambda m: ev.AgentCompleted(meta=m, agent_id=r, result_summary="done", tokens_used=1_000), r)
    s.spawn(r, r, "summarizer", 1_000)  # the tree has ended
    return s


def forgetting() -> Script:
    """An ended tree forgotten by a timer tick after the policy's retention (1 s), then its root id used again."""
    s = Script("forgetting")
    s.policy(policy_version(1, ended_tree_retention_ms=1_000))
    s.pause(3.0)
    r = s.root("golden-forgotten", 10_000, 4)
    a = s.spawn(r, r, "researcher", 2_000)
    s.fact(lambda m: ev.AgentCompleted(meta=m, agent_id=a, result_summary="found it"), r)
    s.fact(lambda m: ev.AgentCompleted(meta=m, agent_id=r, result_summary="done"), r)
    s.root(r, 10_000, 4)  # DUPLICATE_REQUEST: the ended tree still holds its id
    s.pause(4.0)  # a tick after the retention forgets the tree (TreeForgotten)
    r2 = s.root(r, 20_000, 4)  # admitted: a new tree under the same root id
    s.spawn(r2, r2, "coder", 5_000)
    return s


def tenants() -> Script:
    """Tenant evil acts on acme's tree: every request is denied and every report rejected; acme's tree goes on."""
    s = Script("tenants")
    s.policy(policy_version(1))
    s.pause(3.0)
    r = s.root("golden-tenants", 50_000, 4)
    w = s.spawn(r, r, "researcher", 10_000)
    evil = s.meta(r, tenant="evil")
    s.publish(
        ev.SpawnRequested(
            meta=evil,
            request_id=s._id(),
            parent_agent_id=r,
            child_config="researcher",
            task=ev.TaskSpec(title="evil work"),
            requested_token_budget=1_000,
        ),
        ev.BudgetTopUpRequested(
            meta=s.meta(r, tenant="evil"), request_id=s._id(), agent_id=w, additional_tokens=9_000, requested_by="evil"
        ),
        ev.TokensConsumed(meta=s.meta(r, tenant="evil"), agent_id=w, tokens=60_000),
        ev.TerminationRequested(meta=s.meta(r, tenant="evil"), agent_id=w, requested_by="evil", reason="takeover"),
        ev.AgentCompleted(meta=s.meta(r, tenant="evil"), agent_id=r, result_summary="not yours"),
        ev.RootAgentRegistered(
            meta=s.meta(r, tenant="evil"), agent_id=r, config="orchestrator", token_budget=1, spawn_budget=1
        ),
    )
    s.fact(lambda m: ev.TokensConsumed(meta=m, agent_id=w, tokens=100), r)
    s.fact(lambda m: ev.AgentCompleted(meta=m, agent_id=w, result_summary="done"), r)
    s.fact(lambda m: ev.AgentCompleted(meta=m, agent_id=r, result_summary="done"), r)
    return s


def _in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _key_published(
    s: Script, key: SigningKey, principal: str, tenant: str | None, event_id: uuid.UUID | None = None, **kw: Any
) -> ev.Event:
    record = key_published(key, principal=principal, tenant_id=tenant, published_by="golden", producer="golden", **kw)
    return record.model_copy(update={"meta": record.meta.model_copy(update={"event_id": event_id or s._id()})})


def signatures() -> Script:
    """Signed input under a policy that requires it: every identity denial, an agent-scoped key, an operator's
    platform key, a revocation and an expiry (keys are generated when the scenario is built)."""
    s = Script("signatures")
    acme, evil, ops, stale, unpublished = (SigningKey.generate() for _ in range(5))
    expiring = SigningKey.generate()
    r = "golden-signed"
    w = child_agent_id(uuid.uuid5(NS, "signatures/worker"))
    worker = SigningKey.generate()
    s.policy(policy_version(1, require_signatures=True, operators=["ops"]))
    s.publish(
        _key_published(s, acme, "acme-runtime", "acme"),
        _key_published(s, worker, "worker-runtime", "acme", agent_id=w),
        _key_published(s, evil, "evil-runtime", "evil"),
        _key_published(s, ops, "ops", None),
        _key_published(s, stale, "acme-old", "acme"),
    )
    expiry = s._id()  # the expiring key is published when played: it expires 12 s later
    s.steps.append(Step(made=lambda: [_key_published(s, expiring, "acme-batch", "acme", expiry, expires_at=_in(12.0))]))
    s.pause(3.0)
    s.signer = acme
    s.root(r, 100_000, 10)
    s.spawn(r, r, "researcher", 20_000, 3, request_id=uuid.uuid5(NS, "signatures/worker"))
    s.signer = None
    s.spawn(r, r, "researcher", 1_000)  # UNSIGNED
    forged = s.meta(r)
    other = ev.TokensConsumed(meta=forged, agent_id=w, tokens=1)
    (signature,) = sign_batch(acme, [("x", b"y", b"other bytes")])
    s.steps.append(Step(events=[other], headers=[(SIGNATURE_HEADER, signature.encode())]))  # BAD_SIGNATURE
    s.signer = unpublished
    s.fact(lambda m: ev.TokensConsumed(meta=m, agent_id=w, tokens=1), r)  # UNKNOWN_KEY
    s.signer = evil
    s.fact(lambda m: ev.AgentCompleted(meta=m, agent_id=r, result_summary="not yours"), r)  # SIGNER_NOT_AUTHORIZED
    s.signer = worker
    helper = s.spawn(r, w, "summarizer", 1_000)
    s.fact(lambda m: ev.TokensConsumed(meta=m, agent_id=w, tokens=500), r)
    s.spawn(r, r, "researcher", 1_000)  # SIGNER_NOT_AUTHORIZED: the worker's key acts as the worker only
    s.signer = ops
    s.fact(lambda m: ev.TerminationRequested(meta=m, agent_id=helper, requested_by="ops", reason="stop"), r)
    s.signer = expiring
    s.fact(lambda m: ev.TokensConsumed(meta=m, agent_id=w, tokens=10), r)  # before its expiry: charged
    s.signer = None
    s.publish(
        ev.SigningKeyRevoked(
            meta=ev.Meta(event_id=s._id(), tenant_id="acme", root_id=stale.key_id, producer="golden"),
            key_id=stale.key_id,
            reason="rotated",
            revoked_by="golden",
        )
    )
    s.pause(12.0)  # the gate reads the revocation; the expiring key expires
    s.signer = stale
    s.fact(lambda m: ev.TokensConsumed(meta=m, agent_id=w, tokens=10), r)  # KEY_REVOKED
    s.signer = expiring
    s.fact(lambda m: ev.TokensConsumed(meta=m, agent_id=w, tokens=10), r)  # KEY_EXPIRED
    s.signer = acme
    s.fact(lambda m: ev.AgentCompleted(meta=m, agent_id=r, result_summary="done"), r)
    return s


def missions() -> Script:  # noqa: PLR0915  (a script reads best as one list of steps)
    """The mission processor's every transition and rejection reason, a retry cycle to exhaustion (an attempt lost
    with its agent among them), a blocked chain, a cancelled subtree and archiving; the gate runs the agents."""
    s = Script("missions")
    s.policy(policy_version(1, operators=["operator"]))
    s.pause(3.0)
    r = s.root("golden-missions", 300_000, 20)
    w1 = s.spawn(r, r, "researcher", 20_000)
    w2 = s.spawn(r, r, "coder", 20_000)
    w3 = s.spawn(r, r, "reviewer", 20_000)
    s.pause(1.5)  # the gate admits the agents before the missions name them

    def create(mission: str, parent: str | None = None, root: str = r, tenant: str | None = None, **kw: Any) -> None:
        task = ev.TaskSpec(title=f"{mission or 'nameless'} work")
        s.publish(ev.MissionCreated(meta=s.meta(root, tenant), mission_id=mission, parent_mission_id=parent,
                                    task=task, **kw))  # fmt: skip

    def depend(mission: str, on: str, kind: ev.DependencyKind = ev.DependencyKind.HARD) -> None:
        s.publish(ev.DependencyAdded(meta=s.meta(r), mission_id=mission, depends_on=on, kind=kind))

    def ask(mission: str, to: ev.MissionState, by: str = r, **kw: Any) -> None:
        s.publish(ev.MissionTransitionRequested(meta=s.meta(r), mission_id=mission, to_state=to, requested_by=by,
                                                **kw))  # fmt: skip

    m = ev.MissionState
    for mission in ("plan", "build", "test", "ship", "docs"):
        create(mission)  # UNKNOWN -> READY
    depend("build", "plan")  # READY -> PENDING
    depend("test", "build")
    depend("ship", "test")
    depend("ship", "docs", ev.DependencyKind.SOFT)
    depend("plan", "plan")  # SELF_DEPENDENCY
    depend("plan", "nowhere")  # UNKNOWN_DEPENDENCY
    depend("build", "plan")  # DUPLICATE_DEPENDENCY
    depend("plan", "ship")  # DEPENDENCY_CYCLE: plan -> ship -> test -> build -> plan
    create("build")  # DUPLICATE_MISSION
    create("")  # INVALID_REQUEST
    create("zero", max_attempts=0)  # INVALID_REQUEST
    create("orphan", parent="nowhere")  # UNKNOWN_PARENT
    create("owned", owner_agent_id="stranger")  # NOT_AN_ACTIVE_AGENT
    create("lost", root="golden-missions-nowhere")  # UNKNOWN_TREE
    create("forged", tenant="evil")  # TENANT_MISMATCH
    ask("nowhere", m.RUNNING)  # UNKNOWN_MISSION
    ask("plan", m.COMPLETED)  # NOT_ALLOWED: not running
    ask("plan", m.BLOCKED)  # NOT_ALLOWED: never by request
    ask("plan", m.RUNNING, by="stranger")  # NOT_AN_ACTIVE_AGENT: the requester
    ask("plan", m.RUNNING, agent_id="ghost")  # NOT_AN_ACTIVE_AGENT: the runner
    ask("plan", m.RUNNING, agent_id=w1)  # READY -> RUNNING
    create("outline", parent="plan")
    ask("plan", m.COMPLETED)  # OPEN_CHILDREN
    ask("outline", m.RUNNING, agent_id=w2)
    ask("outline", m.COMPLETED, result_summary="outlined", quality_score=0.7)
    ask("plan", m.COMPLETED, result_summary="planned", quality_score=0.9)  # build: PENDING -> READY
    create("appendix", parent="plan")  # PARENT_FINISHED
    depend("plan", "docs")  # DEPENDENCY_TOO_LATE
    # build: a retryable failure, an attempt lost with its agent, then a final failure -> its chain is BLOCKED.
    ask("build", m.RUNNING, agent_id=w1)
    ask("build", m.FAILED, reason="flaky", retryable=True)  # RUNNING -> FAILED -> READY (attempt 2)
    ask("build", m.RUNNING, agent_id=w1)
    s.fact(
        lambda meta: ev.AgentFailed(meta=meta, agent_id=w1, error="out of memory", retryable=True, tokens_used=100), r
    )
    s.pause(1.5)  # the gate ends w1: build fails with it (attempt 3 next)
    ask("build", m.RUNNING, agent_id=w2)
    ask("build", m.FAILED, reason="cannot compile", retryable=False)  # for good: test and ship BLOCKED
    ask("test", m.CANCELLED, reason="its build failed")  # BLOCKED -> CANCELLED
    create("hotfix")
    depend("hotfix", "build")  # READY -> BLOCKED: build can never complete
    # docs: its agent terminated by an operator, retried, then cancelled while READY.
    ask("docs", m.RUNNING, agent_id=w3)
    s.fact(lambda meta: ev.TerminationRequested(meta=meta, agent_id=w3, requested_by="operator"), r)
    s.pause(1.5)
    ask("docs", m.CANCELLED, by="operator")  # READY -> CANCELLED; ship stays BLOCKED
    # a subtree cancelled from its top: a running child and a waiting grandchild go first; a PENDING mission too.
    create("release")
    create("package", parent="release")
    create("sign", parent="package")
    ask("package", m.RUNNING, agent_id=w2)
    create("announce")
    depend("announce", "sign")  # READY -> PENDING
    ask("announce", m.CANCELLED)  # PENDING -> CANCELLED
    ask("release", m.CANCELLED, reason="plan changed")  # sign, package, release CANCELLED
    ask("package", m.COMPLETED)  # NOT_ALLOWED: cancelled
    for mission in ("plan", "build", "release"):
        ask(mission, m.ARCHIVED)  # COMPLETED, FAILED, CANCELLED -> ARCHIVED
    ask("plan", m.ARCHIVED)  # NOT_ALLOWED: archived already
    create("crowd")
    for n in range(257):
        create(f"crowd-{n:03d}", parent="crowd")  # the last: TOO_MANY_MISSIONS
    return s


def retention() -> Script:
    """Finished missions archived by the mission processor's timer ticks after the policy's retention (1 s)."""
    s = Script("retention")
    s.policy(policy_version(1, mission_retention_ms=1_000))
    s.pause(3.0)
    r = s.root("golden-retention", 100_000, 5)
    w = s.spawn(r, r, "researcher", 10_000)
    s.pause(1.5)
    m = ev.MissionState

    def ask(mission: str, to: ev.MissionState, **kw: Any) -> None:
        s.publish(ev.MissionTransitionRequested(meta=s.meta(r), mission_id=mission, to_state=to, requested_by=r,
                                                **kw))  # fmt: skip

    for mission in ("done", "dropped", "later"):
        s.publish(ev.MissionCreated(meta=s.meta(r), mission_id=mission, task=ev.TaskSpec(title=mission)))
    ask("done", m.RUNNING, agent_id=w)
    ask("done", m.COMPLETED, result_summary="done")
    ask("dropped", m.CANCELLED)
    s.pause(3.0)  # a tick archives both
    ask("done", m.ARCHIVED)  # NOT_ALLOWED: archived already
    ask("later", m.RUNNING, agent_id=w)
    ask("later", m.COMPLETED)
    s.pause(3.0)
    return s


def bus() -> Script:  # noqa: PLR0915  (a script reads best as one list of steps)
    """The consultation bus's every rejection reason, a request answered and one expired (and replied to late), a
    question escalated up the line to the root and expired there (and decided late), a question decided by an
    overriding config and a late second decision, a CRITICAL alert freezing the tree's spawning until an operator
    lifts it (with each refusal of the gate on the way), and the handoffs of missions; gate, missions and bus run."""
    s = Script("bus")
    policy = policy_version(1, operators=["operator"], freeze_on_critical_alert=True, bus_rate_per_agent=12,
                            bus_max_message_chars=4_000)  # fmt: skip
    configs = [c.model_copy(update={"can_override_decisions": c.name == "reviewer"}) for c in policy.configs]
    s.policy(policy.model_copy(update={"configs": configs}))
    s.pause(3.0)
    r = s.root("golden-bus", 300_000, 20)
    lead = s.spawn(r, r, "researcher", 40_000, spawns=3)
    qa = s.spawn(r, r, "coder", 20_000)
    rev = s.spawn(r, r, "reviewer", 20_000)
    flood = s.spawn(r, r, "summarizer", 1_000)
    gone = s.spawn(r, r, "summarizer", 1_000)
    s.pause(1.5)
    dev = s.spawn(r, lead, "researcher", 5_000)
    s.fact(lambda meta: ev.AgentCompleted(meta=meta, agent_id=gone, tokens_used=10), r)
    s.pause(1.5)  # the gate admits the agents (and ends one) before the messages name them
    for mission, owner in (("build", dev), ("shipped", qa)):
        s.publish(ev.MissionCreated(meta=s.meta(r), mission_id=mission, task=ev.TaskSpec(title=mission),
                                    owner_agent_id=owner))  # fmt: skip
    m = ev.MissionState
    for to in (m.RUNNING, m.COMPLETED):
        s.publish(ev.MissionTransitionRequested(meta=s.meta(r), mission_id="shipped", to_state=to, requested_by=qa,
                                                agent_id=qa if to is m.RUNNING else None))  # fmt: skip
    p = ev.Priority

    def mid() -> uuid.UUID:
        return s._id()

    def request(sender: str, to: str, root: str = r, tenant: str | None = None, **kw: Any) -> uuid.UUID:
        message_id = kw.pop("message_id", None) or mid()
        s.publish(ev.AgentRequest(meta=s.meta(root, tenant), message_id=message_id, from_agent_id=sender,
                                  to_agent_id=to, subject=kw.pop("subject", "review this"), **kw))  # fmt: skip
        return message_id

    def reply(sender: str, request_id: uuid.UUID) -> None:
        s.publish(ev.AgentReply(meta=s.meta(r), message_id=mid(), request_id=request_id, from_agent_id=sender,
                                body="looks good", details={"tests": "42 passed"}))  # fmt: skip

    def decide(by: str, question: uuid.UUID, choice: str, **kw: Any) -> None:
        s.publish(ev.DecisionRecorded(meta=s.meta(r), message_id=mid(), question_id=question, decided_by=by,
                                      choice=choice, **kw))  # fmt: skip

    def handoff(sender: str, to: str, mission: str | None) -> None:
        s.publish(ev.Handoff(meta=s.meta(r), message_id=mid(), from_agent_id=sender, to_agent_id=to,
                             task=ev.TaskSpec(title="the rest"), context={"branch": "main"},
                             mission_id=mission))  # fmt: skip

    def soon(seconds: float, make: Callable[[datetime], ev.Event]) -> None:
        """An event whose deadline is ``seconds`` after it is played."""
        s.steps.append(Step(made=lambda: [make(_in(seconds))]))

    # requests and replies
    answered = request(dev, qa, priority=p.HIGH, reply_by=_in(600))
    reply(qa, answered)
    reply(qa, answered)  # ALREADY_ANSWERED
    reply(lead, request(dev, qa))  # NOT_ADDRESSED
    reply(qa, mid())  # UNKNOWN_MESSAGE
    request("stranger", qa)  # NOT_AN_ACTIVE_AGENT
    request(dev, "nobody")  # UNKNOWN_RECIPIENT
    request(dev, gone)  # RECIPIENT_ENDED
    request(dev, qa, root="golden-bus-nowhere")  # UNKNOWN_TREE
    request(dev, qa, tenant="evil")  # TENANT_MISMATCH
    request(dev, qa, message_id=answered)  # DUPLICATE_MESSAGE
    request(dev, qa, max_replies=-1)  # INVALID_MESSAGE
    request(dev, qa, body="x" * 5_000)  # TOO_LARGE
    for n in range(13):
        s.publish(ev.AgentAlert(meta=s.meta(r), message_id=mid(), from_agent_id=flood, priority=p.LOW,
                                text=f"progress {n}"))  # the 13th: RATE_LIMITED  # fmt: skip
    lapsing = mid()
    soon(2.0, lambda at: ev.AgentRequest(meta=s.meta(r), message_id=lapsing, from_agent_id=dev, to_agent_id=qa,
                                         subject="quick look?", reply_by=at))  # fmt: skip
    # questions and decisions: one up the line to the root and expired there, one overridden, one decided
    climbing = mid()
    soon(2.0, lambda at: ev.AgentQuestion(meta=s.meta(r), message_id=climbing, from_agent_id=dev,
                                          question="rewrite the parser?", options=["yes", "no"],
                                          decide_by=at))  # fmt: skip
    overridden = mid()
    s.publish(ev.AgentQuestion(meta=s.meta(r), message_id=overridden, from_agent_id=dev, question="which database?",
                               options=["postgres", "sqlite"], decide_by=_in(600), priority=p.HIGH))  # fmt: skip
    decide(qa, overridden, "sqlite")  # NOT_ALLOWED: neither its recipient nor in the asker's line
    decide(rev, overridden, "postgres", rationale="the projections need it", impact="one more service",
           impact_details={"services": "+1", "risk": "low"})  # fmt: skip
    decide(lead, overridden, "sqlite")  # a late second decision: ALREADY_ANSWERED
    asked = mid()
    s.publish(ev.AgentQuestion(meta=s.meta(r), message_id=asked, from_agent_id=qa, to_agent_id=rev,
                               question="merge now?", options=["merge", "wait"]))  # fmt: skip
    decide(rev, asked, "merge", rationale="all checks pass", impact_details={"release": "today"})
    # handoffs, one moving a mission
    handoff(dev, qa, "build")  # MissionHandedOff
    handoff(lead, rev, "build")  # NOT_THE_OWNER (qa owns it now)
    handoff(qa, rev, "shipped")  # MISSION_FINISHED
    handoff(qa, qa, None)  # INVALID_MESSAGE
    s.pause(7.0)  # the request expires; the question escalates to the root, then expires there
    reply(qa, lapsing)  # EXPIRED
    decide(r, climbing, "yes")  # EXPIRED
    # a CRITICAL alert freezes spawning; the gate refuses who may not freeze or thaw; an operator thaws
    s.publish(ev.AgentAlert(meta=s.meta(r), message_id=mid(), from_agent_id=qa, priority=p.CRITICAL,
                            text="credentials leaked in a log"))  # fmt: skip
    s.pause(2.0)  # the bus hands the freeze to the gate
    s.spawn(r, r, "summarizer", 1_000)  # TREE_FROZEN
    s.fact(lambda meta: ev.TreeFreezeRequested(meta=meta, requested_by="stranger", reason="why not"), r)
    s.fact(lambda meta: ev.TreeFreezeRequested(meta=meta, requested_by="operator"), r)  # TREE_FROZEN: already
    s.fact(lambda meta: ev.TreeThawRequested(meta=meta, requested_by=qa), r)  # NOT_AN_OPERATOR
    s.fact(lambda meta: ev.TreeThawRequested(meta=meta, requested_by="operator", reason="keys rotated"), r)
    s.fact(lambda meta: ev.TreeThawRequested(meta=meta, requested_by="operator"), r)  # NOT_FROZEN
    s.pause(1.5)
    s.spawn(r, r, "summarizer", 1_000)  # approved again
    return s


SCENARIOS: dict[str, Callable[[], Script]] = {
    "denials": denials,
    "lifecycle": lifecycle,
    "forgetting": forgetting,
    "tenants": tenants,
    "signatures": signatures,
    "missions": missions,
    "retention": retention,
    "bus": bus,
}
PROCESSORS: dict[str, tuple[str, ...]] = {
    "missions": ("missions",),
    "retention": ("missions",),
    "bus": ("missions", "bus"),
}
"""Processors besides the gate that a scenario runs (``agentlog processors run --processor NAME``)."""
MISSION_COMMANDS = (ev.MissionCreated, ev.DependencyAdded, ev.MissionTransitionRequested)
"""Inputs the mission processor answers with exactly one fact."""
BUS_MESSAGES = MESSAGE_TYPES
"""Inputs the bus answers with exactly one fact."""


def _now(event: ev.Event) -> ev.Event:
    """``event`` as happening now (the gate's clock is the events' time: deadlines count from it)."""
    return event.model_copy(update={"meta": event.meta.model_copy(update={"occurred_at": datetime.now(UTC)})})


REQUESTS = (ev.RootAgentRegistered, ev.SpawnRequested, ev.BudgetTopUpRequested)
"""Inputs the gate answers with exactly one decision."""


def play(settings: Settings, script: Script, settle: Callable[[int], None] | None = None) -> None:
    """Publish a scenario's steps in order.

    ``settle(n)`` (when given) must wait until the gate has answered ``n`` requests; it is
    called before each policy version and after each pause, so that the decisions before a
    new version are taken under the old one (the gate applies the newest version it has read).
    """
    requests = 0
    signing: dict[str, Producer] = {}
    with Producer(settings) as producer:
        for step in script.steps:
            if step.made is not None:
                producer.publish_many(step.made())
            if step.policy is not None:
                if settle is not None:
                    settle(requests)
                producer.publish(to_event(step.policy, published_by="golden"))
            if step.events:
                events = [_now(e) for e in step.events]
                if step.signer is not None:
                    key = step.signer.key_id
                    signing.setdefault(key, Producer(settings, signing_key=step.signer)).publish_many(events)
                elif step.headers is not None:
                    for event in events:
                        producer.send(event, headers=list(step.headers))
                    producer.flush()
                else:
                    producer.publish_many(events)
                requests += sum(isinstance(e, REQUESTS) for e in step.events)
            if step.pause_s:
                producer.flush()
                time.sleep(step.pause_s)
                if settle is not None:
                    settle(requests)
