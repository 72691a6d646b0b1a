"""The spawn gate's admission rules: root registration and every reason a spawn is approved or denied."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from agentlog import events as ev
from agentlog.processors.ids import NAMESPACE, child_agent_id
from agentlog.processors.spawn_gate import decide, expire
from agentlog.processors.testing import GateScenario, one, small_policy
from agentlog.processors.tree_state import PartitionState

R = ev.DenialReason


def _scenario(**limits: Any) -> GateScenario:
    gate = GateScenario(small_policy(**limits))
    one(gate.register_root("root"), ev.RootAdmitted)
    return gate


def _denied(outputs: list[ev.Event]) -> ev.SpawnDenied:
    return one(outputs, ev.SpawnDenied)


# -- root registration ----------------------------------------------------------------------


def test_root_is_admitted_with_the_tree_budgets() -> None:
    """A valid registration yields RootAdmitted with the grants, a deadline, the checks and the policy version."""
    gate = GateScenario(small_policy(version=7))
    admitted = one(gate.register_root("root", tokens=5_000, spawns=4), ev.RootAdmitted)
    assert (admitted.agent_id, admitted.config, admitted.token_budget, admitted.spawn_budget) == (
        "root",
        "orchestrator",
        5_000,
        4,
    )
    assert admitted.policy_version == 7
    assert admitted.deadline == admitted.meta.occurred_at + timedelta(hours=1)
    assert {c.name for c in admitted.checks} >= {"max_token_grant", "max_spawn_grant", "tenant_partition_quota"}
    assert all(c.passed for c in admitted.checks)
    assert "5000 tokens" in admitted.message


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"config": "hacker"}, R.CONFIG_NOT_WHITELISTED),
        ({"tokens": 2_000_000}, R.GRANT_TOO_LARGE),
        ({"spawns": 31}, R.GRANT_TOO_LARGE),
        ({"tokens": -1}, R.INVALID_REQUEST),
        ({"spawns": -1}, R.INVALID_REQUEST),
        ({"max_runtime_ms": 0}, R.INVALID_REQUEST),
        ({"agent_id": "someone-else"}, R.INVALID_REQUEST),
        ({"capabilities": ["deploy", "read"], "config": "worker"}, R.FORBIDDEN_ACTION),
    ],
)
def test_root_registration_denials(kwargs: dict[str, object], reason: ev.DenialReason) -> None:
    """Bad root registrations are rejected with the matching reason, and no tree is created."""
    gate = GateScenario(small_policy())
    rejected = one(gate.register_root("root", **kwargs), ev.RootRejected)  # type: ignore[arg-type]
    assert rejected.reason is reason
    assert rejected.message.startswith("Cannot register the root agent")
    assert gate.state.trees == {} and gate.state.active_total == 0


def test_root_without_policy_is_rejected() -> None:
    """With no policy in force every registration is rejected with NO_POLICY and policy version 0."""
    rejected = one(GateScenario(None).register_root("root"), ev.RootRejected)
    assert (rejected.reason, rejected.policy_version) == (R.NO_POLICY, 0)


def test_duplicate_root_is_rejected_while_live_and_after_it_ended() -> None:
    """A root id in use, or of an ended tree not yet forgotten by a tick, cannot be registered again.

    The registration's own clock does not count: one claiming to come two days later is
    still rejected. Only the tick that forgets the tree (``TreeForgotten``) frees the id.
    """
    gate = _scenario()
    assert one(gate.register_root("root", spawns=3), ev.RootRejected).reason is R.DUPLICATE_REQUEST
    assert one(gate.register_root("root", tenant="evil"), ev.RootRejected).reason is R.TENANT_MISMATCH
    gate.complete("root")
    rejected = one(gate.register_root("root"), ev.RootRejected)
    assert rejected.reason is R.DUPLICATE_REQUEST and "ended" in rejected.message
    gate.now += timedelta(days=2)
    assert one(gate.register_root("root"), ev.RootRejected).reason is R.DUPLICATE_REQUEST
    one(expire(gate.state, gate.now, gate.policy), ev.TreeForgotten)
    one(gate.register_root("root"), ev.RootAdmitted)


def test_a_retried_root_registration_is_answered_with_the_admission() -> None:
    """Registering a live root again with the same tenant, config and spawn budget repeats the admission."""
    gate = _scenario()
    again = one(gate.register_root("root"), ev.RootAdmitted)
    assert again.repeat and again.agent_id == "root" and "Already registered" in again.message
    assert len(gate.state.trees["root"].agents) == 1


def test_root_quota_per_tenant_and_platform() -> None:
    """Root registrations count against the tenant's and the platform's partition quotas."""
    gate = GateScenario(small_policy(max_active_per_tenant=2, max_active_platform=3))
    one(gate.register_root("a1", tenant="a"), ev.RootAdmitted)
    one(gate.register_root("a2", tenant="a"), ev.RootAdmitted)
    assert one(gate.register_root("a3", tenant="a"), ev.RootRejected).reason is R.TENANT_CONCURRENCY
    one(gate.register_root("b1", tenant="b"), ev.RootAdmitted)
    assert one(gate.register_root("b2", tenant="b"), ev.RootRejected).reason is R.PLATFORM_CONCURRENCY


# -- approvals ------------------------------------------------------------------------------


def test_spawn_is_approved_with_reservations_and_a_derived_child_id() -> None:
    """An approval names the uuid5 child id, depth, grants, the parent's remaining budgets and all checks."""
    gate = _scenario()
    request_id = uuid.UUID(int=42)
    approved = one(gate.spawn("root", tokens=4_000, spawns=3, request_id=request_id), ev.SpawnApproved)
    assert approved.child_agent_id == child_agent_id(request_id) == str(uuid.uuid5(NAMESPACE, str(request_id)))
    assert (approved.depth, approved.granted_token_budget, approved.granted_spawn_budget) == (1, 4_000, 3)
    assert approved.parent_remaining_tokens == 100_000 - 4_000
    assert approved.parent_remaining_spawn_budget == 10 - (1 + 3)
    names = [c.name for c in approved.checks]
    assert names == [
        "forbidden_capabilities",
        "max_token_grant",
        "max_spawn_grant",
        "max_depth",
        "parent_spawn_budget",
        "parent_remaining_tokens",
        "max_parallel_children",
        "tenant_partition_quota",
        "platform_partition_quota",
    ]
    assert all(c.passed for c in approved.checks)


def test_output_envelope_is_derived_from_the_input() -> None:
    """Outputs get uuid5(input id/index) ids, the input's time, tenant, tree and correlation, and cite it as cause."""
    gate = _scenario()
    outputs = gate.spawn("root")
    request = gate.log[-1][0]
    assert isinstance(request, ev.SpawnRequested)
    meta = outputs[0].meta
    assert meta.event_id == uuid.uuid5(NAMESPACE, f"{request.meta.event_id}/0")
    assert meta.occurred_at == request.meta.occurred_at
    assert (meta.tenant_id, meta.root_id, meta.correlation_id) == ("acme", "root", "scenario")
    assert meta.causation_id == request.meta.event_id
    assert meta.producer == "agentlog.spawn_gate"


def test_child_deadline_is_capped_by_runtime_task_and_parent() -> None:
    """A child's deadline is the earliest of its runtime limit, its task's deadline and its parent's deadline."""
    gate = _scenario()
    root_deadline = one(gate.log[0][1], ev.RootAdmitted).deadline
    long_runner = one(gate.spawn("root", max_runtime_ms=10 * 3_600_000), ev.SpawnApproved)
    assert long_runner.deadline == root_deadline
    short = one(gate.spawn("root", max_runtime_ms=60_000), ev.SpawnApproved)
    assert short.deadline == short.meta.occurred_at + timedelta(minutes=1)
    task_deadline = gate.now + timedelta(seconds=30)
    by_task = one(gate.spawn("root", task=ev.TaskSpec(title="t", deadline=task_deadline)), ev.SpawnApproved)
    assert by_task.deadline == task_deadline


# -- denials, one per reason ----------------------------------------------------------------


def test_depth_limit() -> None:
    """A spawn below max_depth is denied DEPTH_EXCEEDED with the sentence agents are shown."""
    gate = _scenario(max_depth=2)
    w1 = gate.spawned("root", spawns=3)
    w2 = gate.spawned(w1, spawns=1)
    denied = _denied(gate.spawn(w2))
    assert denied.reason is R.DEPTH_EXCEEDED
    assert denied.message == "Cannot spawn: maximum depth 2 reached. Handle this sub-task directly."
    failing = denied.checks[-1]
    assert (failing.name, failing.limit, failing.value, failing.passed) == ("max_depth", 2, 3, False)


def test_spawn_budget_is_hierarchical() -> None:
    """A child costs 1 + its spawn budget out of its parent's; when it does not fit, SPAWN_BUDGET_EXHAUSTED."""
    gate = GateScenario(small_policy())
    gate.register_root("root", spawns=5)
    gate.spawned("root", spawns=3)  # costs 4 of 5
    denied = _denied(gate.spawn("root", spawns=1))  # would cost 2 of 1
    assert denied.reason is R.SPAWN_BUDGET_EXHAUSTED
    assert (denied.checks[-1].limit, denied.checks[-1].value) == (1, 2)
    gate.spawned("root", spawns=0)  # costs the last 1
    assert _denied(gate.spawn("root")).reason is R.SPAWN_BUDGET_EXHAUSTED


def test_spawn_budget_is_not_returned_when_a_child_ends() -> None:
    """Spawn budget is spent for good, so a tree never has more than root spawn budget + 1 agents."""
    gate = GateScenario(small_policy())
    gate.register_root("root", spawns=1)
    gate.complete(gate.spawned("root"))
    assert _denied(gate.spawn("root")).reason is R.SPAWN_BUDGET_EXHAUSTED


def test_token_budget_is_reserved_from_the_parent() -> None:
    """A grant larger than the parent's remaining tokens is denied TOKEN_BUDGET_EXHAUSTED."""
    gate = GateScenario(small_policy())
    gate.register_root("root", tokens=10_000)
    gate.spawned("root", tokens=6_000)
    gate.consume("root", 1_000)
    denied = _denied(gate.spawn("root", tokens=3_001))
    assert denied.reason is R.TOKEN_BUDGET_EXHAUSTED
    assert (denied.checks[-1].name, denied.checks[-1].limit) == ("parent_remaining_tokens", 3_000)
    one(gate.spawn("root", tokens=3_000), ev.SpawnApproved)


def test_config_must_be_whitelisted() -> None:
    """An unknown child config is denied CONFIG_NOT_WHITELISTED, listing the allowed ones."""
    denied = _denied(_scenario().spawn("root", config="hacker"))
    assert denied.reason is R.CONFIG_NOT_WHITELISTED
    assert "helper, orchestrator, worker" in denied.message


def test_parent_config_must_be_allowed_to_spawn() -> None:
    """A parent whose config has may_spawn false is denied NOT_AUTHORIZED."""
    gate = _scenario()
    worker = gate.spawned("root", spawns=2)
    helper = gate.spawned(worker, config="helper")
    denied = _denied(gate.spawn(helper, config="helper"))
    assert denied.reason is R.NOT_AUTHORIZED and "may not spawn children" in denied.message


def test_child_config_must_list_the_parent_config() -> None:
    """A child config whose spawnable_by lacks the parent's config is denied NOT_AUTHORIZED."""
    gate = _scenario()
    denied = _denied(gate.spawn("root", config="helper"))
    assert denied.reason is R.NOT_AUTHORIZED and "may not spawn 'helper'" in denied.message
    assert _denied(gate.spawn("root", config="orchestrator")).reason is R.NOT_AUTHORIZED


def test_forbidden_capabilities() -> None:
    """Asking for a capability the child config may never have is denied FORBIDDEN_ACTION."""
    denied = _denied(_scenario().spawn("root", capabilities=["read", "deploy"]))
    assert denied.reason is R.FORBIDDEN_ACTION and "deploy" in denied.message
    assert (denied.checks[-1].name, denied.checks[-1].value) == ("forbidden_capabilities", 1)


@pytest.mark.parametrize(("tokens", "spawns", "check"), [(100_001, 0, "max_token_grant"), (10, 11, "max_spawn_grant")])
def test_grant_limits_of_the_child_config(tokens: int, spawns: int, check: str) -> None:
    """Grants beyond the child config's max_token_grant or max_spawn_grant are denied GRANT_TOO_LARGE."""
    gate = GateScenario(small_policy())
    gate.register_root("root", tokens=1_000_000, spawns=30)
    denied = _denied(gate.spawn("root", tokens=tokens, spawns=spawns))
    assert denied.reason is R.GRANT_TOO_LARGE and denied.checks[-1].name == check


def test_parallel_children_per_parent() -> None:
    """More active children than max_parallel_children is denied PARENT_CONCURRENCY; an ended child frees a slot."""
    gate = _scenario(max_parallel_children=2)
    first = gate.spawned("root")
    gate.spawned("root")
    assert _denied(gate.spawn("root")).reason is R.PARENT_CONCURRENCY
    gate.complete(first)
    one(gate.spawn("root"), ev.SpawnApproved)


def test_tenant_and_platform_quotas_for_spawns() -> None:
    """Spawns count against the tenant's and the platform's partition quotas."""
    gate = GateScenario(small_policy(max_active_per_tenant=2, max_active_platform=3))
    gate.register_root("a", tenant="t1")
    gate.spawned("a")
    assert _denied(gate.spawn("a")).reason is R.TENANT_CONCURRENCY
    gate.register_root("b", tenant="t2")
    assert _denied(gate.spawn("b")).reason is R.PLATFORM_CONCURRENCY


def test_quotas_are_the_partition_share_of_the_cap() -> None:
    """Partition p of n enforces cap//n (+1 for p < cap % n) of each cap."""
    policy = small_policy(max_active_per_tenant=4, max_active_platform=1000)
    for partition, allowed in [(0, 2), (1, 1), (2, 1)]:
        gate = GateScenario(policy, state=PartitionState(partition=partition, partitions=3))
        results = [gate.register_root(f"r{i}")[0] for i in range(3)]
        assert sum(isinstance(r, ev.RootAdmitted) for r in results) == allowed


def test_unknown_parent_and_unknown_tree() -> None:
    """A parent not in the tree, or a tree never registered, is denied UNKNOWN_PARENT."""
    gate = _scenario()
    assert _denied(gate.spawn("nobody", root="root")).reason is R.UNKNOWN_PARENT
    assert _denied(gate.spawn("nobody", root="no-such-tree")).reason is R.UNKNOWN_PARENT


def test_parent_from_another_tree_is_unknown() -> None:
    """A request keyed to one tree cannot name a parent of another tree."""
    gate = _scenario()
    gate.register_root("other")
    worker = gate.spawned("other")
    assert _denied(gate.spawn(worker, root="root")).reason is R.UNKNOWN_PARENT


def test_ended_parent_and_ended_tree_are_not_active() -> None:
    """A parent that ended, or any parent of a tree whose root ended, is denied PARENT_NOT_ACTIVE."""
    gate = _scenario()
    worker = gate.spawned("root", spawns=2)
    gate.fail(worker)
    denied = _denied(gate.spawn(worker))
    assert denied.reason is R.PARENT_NOT_ACTIVE and "failed" in denied.message
    gate.complete("root")
    assert _denied(gate.spawn("root")).reason is R.PARENT_NOT_ACTIVE


def test_parent_past_its_deadline_may_not_spawn() -> None:
    """A parent past its deadline may not spawn even before the timer has timed it out."""
    gate = _scenario()
    worker = gate.spawned("root", spawns=2, max_runtime_ms=5_000)
    gate.now += timedelta(seconds=10)
    denied = _denied(gate.spawn(worker))
    assert denied.reason is R.PARENT_NOT_ACTIVE and "deadline" in denied.message


@pytest.mark.parametrize(
    "kwargs",
    [{"tokens": -1}, {"spawns": -2}, {"max_runtime_ms": 0}, {"max_runtime_ms": -5}, {"max_runtime_ms": 10**15}],
)
def test_invalid_requests(kwargs: dict[str, int]) -> None:
    """Negative budgets and impossible runtimes are denied INVALID_REQUEST, never raised."""
    assert _denied(_scenario().spawn("root", **kwargs)).reason is R.INVALID_REQUEST  # type: ignore[arg-type]


def test_request_from_another_tenant_is_denied_as_such() -> None:
    """A spawn or top-up whose tenant differs from the tree's is denied TENANT_MISMATCH."""
    gate = _scenario()
    assert _denied(gate.spawn("root", tenant="intruder")).reason is R.TENANT_MISMATCH
    assert one(gate.top_up("root", 10, tenant="intruder"), ev.TopUpDenied).reason is R.TENANT_MISMATCH


def test_task_deadline_in_the_past_is_invalid() -> None:
    """A task whose deadline has passed is denied INVALID_REQUEST."""
    gate = _scenario()
    task = ev.TaskSpec(title="late", deadline=gate.now - timedelta(seconds=1))
    assert _denied(gate.spawn("root", task=task)).reason is R.INVALID_REQUEST


def test_self_parenting_is_invalid() -> None:
    """A request whose derived child id equals its parent id is denied INVALID_REQUEST."""
    gate = _scenario()
    request_id = uuid.UUID(int=7)
    denied = _denied(gate.spawn(child_agent_id(request_id), root="root", request_id=request_id))
    assert denied.reason is R.INVALID_REQUEST and "own parent" in denied.message


def test_a_retried_request_is_answered_with_its_original_outcome() -> None:
    """A request id already approved or denied gets the same outcome again, marked repeat; nothing is reserved twice."""
    gate = _scenario()
    approved_id, denied_id = uuid.UUID(int=1), uuid.UUID(int=2)
    first = one(gate.spawn("root", request_id=approved_id), ev.SpawnApproved)
    again = one(gate.spawn("root", request_id=approved_id), ev.SpawnApproved)
    assert (first.repeat, again.repeat) == (False, True)
    same = ("child_agent_id", "parent_agent_id", "child_config", "depth", "granted_token_budget", "deadline")
    assert {f: getattr(again, f) for f in same} == {f: getattr(first, f) for f in same}
    assert again.parent_remaining_tokens == first.parent_remaining_tokens and again.checks == []
    assert _denied(gate.spawn("root", config="hacker", request_id=denied_id)).reason is R.CONFIG_NOT_WHITELISTED
    repeated = _denied(gate.spawn("root", request_id=denied_id))
    assert (repeated.reason, repeated.repeat) == (R.CONFIG_NOT_WHITELISTED, True)
    root = gate.state.trees["root"].agents["root"]
    assert (root.active_children, root.tokens_reserved) == (1, 1_000)
    stranger = _denied(gate.spawn("root", request_id=approved_id, tenant="evil"))
    assert (stranger.reason, stranger.repeat) == (R.TENANT_MISMATCH, False)


def test_repeats_do_not_open_the_circuit() -> None:
    """Retries of a denied request are answered, but only the first denial counts towards the circuit breaker."""
    gate = _scenario()
    denied_id = uuid.UUID(int=3)
    for _ in range(50):
        _denied(gate.spawn("root", config="hacker", request_id=denied_id))
    assert gate.state.trees["root"].denials == [gate.state.trees["root"].denials[0]]  # type: ignore[index]
    assert gate.state.trees["root"].open_until is None


def test_no_policy_denies_every_spawn() -> None:
    """Without a policy a spawn is denied NO_POLICY with policy version 0 (fail closed)."""
    gate = _scenario()
    gate.policy = None
    denied = _denied(gate.spawn("root"))
    assert (denied.reason, denied.policy_version) == (R.NO_POLICY, 0)


def test_new_policy_version_applies_to_later_decisions() -> None:
    """Decisions name the version in force when they were made, and its limits apply."""
    gate = _scenario()
    worker = gate.spawned("root", spawns=3)
    gate.policy = small_policy(version=2, max_depth=1)
    denied = _denied(gate.spawn(worker))
    assert (denied.reason, denied.policy_version) == (R.DEPTH_EXCEEDED, 2)


def test_parent_whose_config_left_the_policy_may_not_spawn() -> None:
    """If a new policy drops the parent's config, its spawns are denied NOT_AUTHORIZED (fail closed)."""
    gate = _scenario()
    worker = gate.spawned("root", spawns=3)
    gate.policy = small_policy(
        version=2,
        configs=[
            {"name": "orchestrator", "may_spawn": True, "max_token_grant": 10**6, "max_spawn_grant": 30},
            {"name": "helper", "spawnable_by": ["orchestrator"], "max_token_grant": 10},
        ],
    )
    denied = _denied(gate.spawn(worker, config="helper", tokens=1))
    assert denied.reason is R.NOT_AUTHORIZED and "no longer in the policy" in denied.message


def test_unhandled_events_produce_nothing() -> None:
    """Events that are not spawn directives or lifecycle reports are ignored."""
    state = PartitionState()
    alert = ev.AgentAlert(meta=ev.Meta(tenant_id="t", root_id="r", producer="x"), from_agent_id="a", text="hello")
    assert decide(state, alert, small_policy()) == []
    assert state.trees == {}


def test_a_tree_remembers_a_bounded_number_of_request_ids() -> None:
    """A runaway tree's remembered request ids stay capped, so its changelog record stays small."""
    import json
    import uuid as _uuid

    from agentlog.processors.tree_state import REMEMBERED_REQUESTS, TreeState

    tree = TreeState(root_id="r", tenant_id="t")
    ids = [_uuid.uuid4().int for _ in range(REMEMBERED_REQUESTS + 100)]
    for request_id in ids:
        tree.remember(request_id, R.PARENT_CONCURRENCY)
    tree.remember(ids[-1], None)
    assert not tree.has_seen(ids[0]) and tree.has_seen(ids[-1])
    assert len(json.dumps(tree.header())) < 300_000
    restored = TreeState.from_dict(json.loads(json.dumps(tree.to_dict())))
    restored.remember(_uuid.uuid4().int, R.DEPTH_EXCEEDED)
    assert not restored.has_seen(ids[100]) and restored.has_seen(ids[101])
    assert (restored.outcome_of(ids[101]), restored.outcome_of(ids[-1])) == (R.PARENT_CONCURRENCY, None)


def test_request_ids_remembered_without_outcomes_read_as_duplicates() -> None:
    """A snapshot from before outcomes were kept (bare ids) restores; a retry of those is answered DUPLICATE_REQUEST."""
    from agentlog.processors.tree_state import TreeState

    legacy = {"root": "r", "tenant": "t", "seen": [7, 8], "denials": [], "open_until": None, "ended_at": None}
    tree = TreeState.from_dict({**legacy, "agents": []})
    assert tree.outcome_of(7) is R.DUPLICATE_REQUEST and tree.has_seen(8)


def test_under_tenant_root_prefix_root_ids_live_in_their_tenants_namespace() -> None:
    """``limits.tenant_root_prefix``: a root id begins with ``<tenant>/``, so no tenant can take another's,
    not even once the ended tree that held it is forgotten."""
    gate = GateScenario(small_policy(tenant_root_prefix=True, ended_tree_retention_ms=1_000))
    outside = one(gate.register_root("root"), ev.RootRejected)
    assert outside.reason is R.INVALID_REQUEST and "to begin with 'acme/'" in outside.message
    one(gate.register_root("acme/r1"), ev.RootAdmitted)
    gate.complete("acme/r1")
    gate.now += timedelta(seconds=5)
    one(expire(gate.state, gate.now, gate.policy), ev.TreeForgotten)
    taken = one(gate.register_root("acme/r1", tenant="evil"), ev.RootRejected)  # forgotten, still not evil's
    assert taken.reason is R.INVALID_REQUEST and "'evil/'" in taken.message
    one(gate.register_root("evil/r1", tenant="evil"), ev.RootAdmitted)
