"""The spawn gate's lifecycle rules: usage and top-ups, cascade termination, budget return, timeouts, circuit."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from agentlog import events as ev
from agentlog.processors.ids import NAMESPACE
from agentlog.processors.spawn_gate import expire
from agentlog.processors.testing import GateScenario, one, small_policy
from agentlog.processors.tree_state import Status

R = ev.DenialReason


def _gate(tokens: int = 100_000, spawns: int = 10, **limits: Any) -> GateScenario:
    gate = GateScenario(small_policy(**limits))
    one(gate.register_root("root", tokens=tokens, spawns=spawns), ev.RootAdmitted)
    return gate


# -- usage and BudgetExhausted ----------------------------------------------------------------


def test_usage_within_grant_is_answered_by_tokens_charged() -> None:
    """TokensConsumed within the grant is charged to the agent and answered by TokensCharged alone."""
    gate = _gate()
    worker = gate.spawned("root", tokens=1_000)
    charged = one(outputs := gate.consume(worker, 600), ev.TokensCharged)
    assert len(outputs) == 1
    assert (charged.agent_id, charged.charged_agent_id, charged.tokens) == (worker, worker, 600)
    assert (charged.tokens_used, charged.remaining_tokens) == (600, 400)
    assert gate.state.trees["root"].agents[worker].tokens_spent == 600


def test_over_use_emits_budget_exhausted_once_and_blocks_spawns() -> None:
    """Usage beyond the grant emits one BudgetExhausted; the agent's spawns are then denied TOKEN_BUDGET_EXHAUSTED."""
    gate = _gate()
    worker = gate.spawned("root", tokens=1_000, spawns=3)
    exhausted = one(gate.consume(worker, 1_200), ev.BudgetExhausted)
    assert (exhausted.agent_id, exhausted.token_budget, exhausted.tokens_used) == (worker, 1_000, 1_200)
    assert [type(o) for o in gate.consume(worker, 10)] == [ev.TokensCharged]  # exhausted once only
    denied = one(gate.spawn(worker, config="helper", tokens=0), ev.SpawnDenied)
    assert denied.reason is R.TOKEN_BUDGET_EXHAUSTED and "top-up" in denied.message


def test_usage_counts_against_tokens_not_reserved_for_children() -> None:
    """An agent's own usage may only use what it has not reserved for its children."""
    gate = _gate()
    worker = gate.spawned("root", tokens=1_000, spawns=3)
    gate.spawned(worker, config="helper", tokens=800)
    assert [type(o) for o in gate.consume(worker, 200)] == [ev.TokensCharged]
    assert [type(o) for o in gate.consume(worker, 1)] == [ev.TokensCharged, ev.BudgetExhausted]


def test_top_up_unblocks_an_exhausted_agent() -> None:
    """A granted top-up reserved from the parent lifts the spawn block once the agent is within budget again."""
    gate = _gate(tokens=10_000)
    worker = gate.spawned("root", tokens=1_000, spawns=3)
    gate.consume(worker, 1_500)
    topped = one(gate.top_up(worker, 1_000), ev.BudgetToppedUp)
    assert (topped.token_budget, topped.remaining_tokens, topped.spawns_unblocked) == (2_000, 500, True)
    assert topped.parent_remaining_tokens == 10_000 - 2_000
    one(gate.spawn(worker, config="helper", tokens=500), ev.SpawnApproved)


def test_insufficient_top_up_keeps_the_block() -> None:
    """A top-up that leaves the agent over budget is granted but does not unblock spawning."""
    gate = _gate()
    worker = gate.spawned("root", tokens=1_000, spawns=3)
    gate.consume(worker, 3_000)
    topped = one(gate.top_up(worker, 500), ev.BudgetToppedUp)
    assert not topped.spawns_unblocked and topped.remaining_tokens == -1_500
    assert one(gate.spawn(worker, config="helper", tokens=0), ev.SpawnDenied).reason is R.TOKEN_BUDGET_EXHAUSTED


def test_root_top_up_grows_the_tree_budget() -> None:
    """A root's top-up adds to the tree (bounded by the root config's max_token_grant)."""
    gate = _gate(tokens=1_000)
    topped = one(gate.top_up("root", 4_000), ev.BudgetToppedUp)
    assert (topped.token_budget, topped.parent_remaining_tokens) == (5_000, None)
    denied = one(gate.top_up("root", 1_000_000), ev.TopUpDenied)
    assert denied.reason is R.GRANT_TOO_LARGE


def test_top_up_denials() -> None:
    """Top-ups are denied for every invalid case with its reason."""
    gate = _gate(tokens=2_000)
    worker = gate.spawned("root", tokens=1_000)
    assert one(gate.top_up(worker, 5_000), ev.TopUpDenied).reason is R.TOKEN_BUDGET_EXHAUSTED
    assert one(gate.top_up(worker, 0), ev.TopUpDenied).reason is R.INVALID_REQUEST
    assert one(gate.top_up(worker, -5), ev.TopUpDenied).reason is R.INVALID_REQUEST
    assert one(gate.top_up(worker, 99_500), ev.TopUpDenied).reason is R.GRANT_TOO_LARGE
    assert one(gate.top_up("ghost", 10, root="root"), ev.TopUpDenied).reason is R.UNKNOWN_AGENT
    assert one(gate.top_up("ghost", 10, root="no-tree"), ev.TopUpDenied).reason is R.UNKNOWN_AGENT
    gate.complete(worker)
    assert one(gate.top_up(worker, 10), ev.TopUpDenied).reason is R.AGENT_NOT_ACTIVE
    gate.complete("root")
    assert one(gate.top_up("root", 10), ev.TopUpDenied).reason is R.AGENT_NOT_ACTIVE
    gate.policy = None
    assert one(gate.top_up("root", 10), ev.TopUpDenied).reason is R.NO_POLICY


def test_late_usage_of_an_ended_agent_is_charged_to_its_nearest_active_ancestor() -> None:
    """Tokens reported after an agent ended are charged to the closest active ancestor."""
    gate = _gate(tokens=10_000)
    worker = gate.spawned("root", tokens=1_000)
    gate.complete(worker, tokens_used=100)
    charged = one(gate.consume(worker, 50), ev.TokensCharged)
    assert (charged.agent_id, charged.charged_agent_id, charged.tokens) == (worker, "root", 50)
    root = gate.state.trees["root"].agents["root"]
    assert root.tokens_spent == 150 and root.remaining_tokens == 10_000 - 150
    late = gate.complete(worker, tokens_used=25)  # a second end: its tokens are charged, the end is rejected
    assert [type(o) for o in late] == [ev.TokensCharged, ev.LifecycleRejected]
    assert late[1].reason is R.AGENT_NOT_ACTIVE  # type: ignore[attr-defined]
    assert root.tokens_spent == 175


# -- ending, cascade, budget return ---------------------------------------------------------


def test_completion_returns_unused_tokens_to_the_parent() -> None:
    """When an agent completes, its grant is released and only what it spent is charged to the parent."""
    gate = _gate(tokens=10_000)
    worker = gate.spawned("root", tokens=4_000)
    gate.consume(worker, 1_000)
    outputs = gate.complete(worker, tokens_used=500)
    assert [type(o) for o in outputs] == [ev.TokensCharged, ev.AgentEnded]
    ended = one(outputs, ev.AgentEnded)
    assert (ended.agent_id, ended.outcome, ended.tokens_used, ended.returned_tokens) == (
        worker,
        ev.EndOutcome.COMPLETED,
        1_500,
        2_500,
    )
    root = gate.state.trees["root"].agents["root"]
    assert (root.tokens_reserved, root.tokens_spent, root.remaining_tokens, root.active_children) == (
        0,
        1_500,
        8_500,
        0,
    )


def test_cascade_terminates_active_descendants_deepest_first() -> None:
    """Ending an agent terminates every active descendant, deepest first then by id, citing the ancestor."""
    gate = _gate(tokens=100_000, spawns=20)
    a = gate.spawned("root", tokens=20_000, spawns=6)
    b = gate.spawned(a, tokens=5_000, spawns=2)
    c = gate.spawned(a, tokens=5_000, spawns=2)
    d = gate.spawned(b, config="helper", tokens=1_000)
    e = gate.spawned(c, config="helper", tokens=1_000)
    gate.complete(d)
    outputs = gate.complete(a, tokens_used=100)
    terminated = [o for o in outputs if isinstance(o, ev.AgentTerminated)]
    assert [t.agent_id for t in terminated] == [e, *sorted([b, c])]
    assert all(t.reason is ev.TerminationReason.ANCESTOR_ENDED and t.ended_by_agent_id == a for t in terminated)
    assert [t.returned_tokens for t in terminated] == [1_000, 5_000, 5_000]
    agents = gate.state.trees["root"].agents
    assert agents[d].status is Status.COMPLETED and agents[a].status is Status.COMPLETED
    assert {agents[x].status for x in (b, c, e)} == {Status.TERMINATED}
    root = agents["root"]
    assert (root.tokens_reserved, root.tokens_spent, root.active_children) == (0, 100, 0)
    assert gate.state.active_total == 1


def test_termination_request_ends_the_subtree_and_announces_the_target() -> None:
    """TerminationRequested ends the agent (reason REQUESTED, after its descendants) and returns its tokens."""
    gate = _gate(tokens=10_000)
    worker = gate.spawned("root", tokens=3_000, spawns=2)
    helper = gate.spawned(worker, config="helper", tokens=1_000)
    gate.consume(helper, 400)
    outputs = gate.terminate(worker, requested_by="operator")
    assert [(o.agent_id, o.reason) for o in outputs if isinstance(o, ev.AgentTerminated)] == [
        (helper, ev.TerminationReason.ANCESTOR_ENDED),
        (worker, ev.TerminationReason.REQUESTED),
    ]
    assert [o.returned_tokens for o in outputs if isinstance(o, ev.AgentTerminated)] == [600, 2_600]
    assert "operator" in outputs[-1].message  # type: ignore[attr-defined]
    again = one(gate.terminate(worker), ev.LifecycleRejected)  # already ended: nothing more happens
    assert again.reason is R.AGENT_NOT_ACTIVE and "already ended (terminated)" in again.message


def test_failure_of_the_root_ends_the_tree() -> None:
    """When the root fails, its whole tree is terminated and becomes a tombstone with no active agents."""
    gate = _gate()
    worker = gate.spawned("root", spawns=1)
    gate.spawned(worker, config="helper", tokens=10)
    outputs = gate.fail("root")
    assert len([o for o in outputs if isinstance(o, ev.AgentTerminated)]) == 2
    tree = gate.state.trees["root"]
    assert tree.ended_at is not None and tree.agents == {}
    assert gate.state.active_total == 0 and gate.state.active_by_tenant == {}
    for late in (gate.consume(worker, 10), gate.complete(worker)):
        assert one(late, ev.LifecycleRejected).reason is R.AGENT_NOT_ACTIVE  # the tree has ended


def test_overspending_child_is_charged_in_full_to_its_parent() -> None:
    """A child that spent more than its grant returns nothing and the parent pays the overrun."""
    gate = _gate(tokens=2_000)
    worker = gate.spawned("root", tokens=1_000)
    gate.consume(worker, 1_500)
    outputs = gate.terminate(worker)
    assert one(outputs, ev.AgentTerminated).returned_tokens == 0
    assert gate.state.trees["root"].agents["root"].remaining_tokens == 500


def test_parent_pushed_over_budget_by_a_child_is_exhausted() -> None:
    """When an ended child's overrun leaves the parent below zero, the parent gets BudgetExhausted."""
    gate = _gate(tokens=1_000)
    worker = gate.spawned("root", tokens=1_000)
    gate.consume(worker, 1_600)
    exhausted = one(gate.complete(worker), ev.BudgetExhausted)
    assert exhausted.agent_id == "root" and exhausted.tokens_used == 1_600


def test_reports_about_unknown_agents_are_rejected_and_change_nothing() -> None:
    """Usage, completion and termination of agents the gate does not know are rejected, changing nothing."""
    gate = _gate()
    before = gate.state.to_bytes()
    answers = [
        gate.consume("ghost", 5, root="root"),
        gate.complete("ghost", root="root"),
        gate.terminate("ghost", root="nowhere"),
        gate.consume("root", -5),
    ]
    rejected = [one(a, ev.LifecycleRejected) for a in answers]
    assert [r.reason for r in rejected] == [R.UNKNOWN_AGENT, R.UNKNOWN_AGENT, R.UNKNOWN_AGENT, R.INVALID_REQUEST]
    assert "no agent tree nowhere is known" in rejected[2].message
    assert gate.state.to_bytes() == before


def test_a_start_is_answered_by_agent_running_and_rejected_once_the_agent_ended() -> None:
    """AgentStarted of an active agent gives AgentRunning; of an ended one, AGENT_NOT_ACTIVE."""
    gate = _gate()
    worker = gate.spawned("root", tokens=1_000)
    assert one(gate.start(worker), ev.AgentRunning).agent_id == worker
    gate.complete(worker)
    assert one(gate.start(worker), ev.LifecycleRejected).reason is R.AGENT_NOT_ACTIVE


def test_core_version_1_leaves_accepted_reports_unanswered() -> None:
    """Logs decided before core version 2 replay as they were: accepted reports had no answer."""
    from agentlog.processors.spawn_gate import decide

    gate = _gate()
    worker = gate.spawned("root", tokens=1_000)
    usage = ev.TokensConsumed(meta=gate.meta("root"), agent_id=worker, tokens=600)
    assert decide(gate.state, usage, gate.policy, core=1) == []
    assert gate.state.trees["root"].agents[worker].tokens_spent == 600


# -- deadlines ------------------------------------------------------------------------------


def test_expire_times_out_agents_past_their_deadline_with_their_subtree() -> None:
    """expire emits AgentTimedOut for a due agent after terminating its descendants, and returns tokens."""
    gate = _gate(tokens=10_000)
    worker = gate.spawned("root", tokens=2_000, spawns=2, max_runtime_ms=60_000)
    helper = gate.spawned(worker, config="helper", tokens=500)
    assert gate.tick() == []
    outputs = gate.tick(timedelta(minutes=2))
    assert [type(o).__name__ for o in outputs] == ["AgentTerminated", "AgentTimedOut"]
    terminated, timed_out = outputs
    assert isinstance(terminated, ev.AgentTerminated) and isinstance(timed_out, ev.AgentTimedOut)
    assert terminated.agent_id == helper and terminated.ended_by_agent_id == worker
    assert timed_out.agent_id == worker and timed_out.returned_tokens == 2_000
    assert timed_out.deadline < timed_out.meta.occurred_at == gate.now
    assert timed_out.meta.event_id == uuid.uuid5(NAMESPACE, f"timeout:{worker}/1")
    assert timed_out.meta.causation_id is None and timed_out.meta.root_id == "root"
    assert gate.tick(timedelta(minutes=1)) == []


def test_expire_takes_ancestors_before_descendants() -> None:
    """When parent and child are due at the same tick, the child is terminated as ANCESTOR_ENDED."""
    gate = _gate()
    worker = gate.spawned("root", spawns=2, max_runtime_ms=10_000)
    gate.spawned(worker, config="helper", tokens=10, max_runtime_ms=5_000)
    outputs = gate.tick(timedelta(hours=2))
    assert [type(o).__name__ for o in outputs] == ["AgentTerminated", "AgentTerminated", "AgentTimedOut"]
    assert outputs[-1].agent_id == "root"  # type: ignore[attr-defined]
    assert gate.state.trees["root"].ended_at is not None


def test_expire_is_idempotent_at_the_same_time() -> None:
    """A second expire at the same time finds nothing; replay may call it once per recorded timeout."""
    gate = _gate()
    gate.spawned("root", max_runtime_ms=1_000)
    gate.now += timedelta(seconds=5)
    assert len(expire(gate.state, gate.now, gate.policy)) == 1
    assert expire(gate.state, gate.now, gate.policy) == []


def test_a_tick_forgets_tombstones_after_retention_and_says_so() -> None:
    """An ended tree is forgotten by the first tick after its retention period, with a TreeForgotten."""
    gate = _gate()
    gate.complete("root")
    assert expire(gate.state, gate.now, gate.policy) == []
    assert "root" in gate.state.trees
    later = gate.now + timedelta(days=2)
    [forgotten] = expire(gate.state, later, gate.policy)
    assert isinstance(forgotten, ev.TreeForgotten) and forgotten.meta.root_id == "root"
    assert forgotten.meta.occurred_at == later and forgotten.meta.causation_id is None
    assert forgotten.ended_at <= gate.now and "may be registered again" in forgotten.message
    assert gate.state.trees == {}
    assert expire(gate.state, later, gate.policy) == []


# -- circuit breaker ------------------------------------------------------------------------


def test_circuit_opens_after_too_many_denials_and_closes_lazily() -> None:
    """N denials within the window open the circuit; spawns are CIRCUIT_OPEN until the first event after open_until."""
    gate = _gate(circuit_denials=3, circuit_window_ms=60_000, circuit_cooldown_ms=30_000)
    gate.spawn("root", config="hacker")
    gate.spawn("root", config="hacker")
    outputs = gate.spawn("root", config="hacker")
    assert [type(o).__name__ for o in outputs] == ["SpawnDenied", "CircuitOpened"]
    opened = outputs[1]
    assert isinstance(opened, ev.CircuitOpened)
    assert (opened.denials, opened.threshold, opened.window_ms) == (3, 3, 60_000)
    assert opened.open_until == opened.meta.occurred_at + timedelta(seconds=30)
    for _ in range(5):  # circuit denials do not count, so the circuit does not re-open
        assert one(gate.spawn("root"), ev.SpawnDenied).reason is R.CIRCUIT_OPEN
    gate.now = opened.open_until
    outputs = gate.spawn("root")
    assert [type(o).__name__ for o in outputs] == ["CircuitClosed", "SpawnApproved"]


def test_denials_outside_the_window_do_not_open_the_circuit() -> None:
    """Denials spread wider than the window never reach the threshold."""
    gate = _gate(circuit_denials=3, circuit_window_ms=10_000)
    gate.step = timedelta(seconds=6)
    for _ in range(6):
        assert [type(o).__name__ for o in gate.spawn("root", config="hacker")] == ["SpawnDenied"]


def test_circuit_is_per_tree() -> None:
    """An open circuit in one tree does not affect another tree."""
    gate = _gate(circuit_denials=2)
    gate.register_root("other")
    gate.spawn("root", config="hacker")
    one(gate.spawn("root", config="hacker"), ev.CircuitOpened)
    one(gate.spawn("other"), ev.SpawnApproved)


def test_circuit_closes_on_any_event_of_the_tree() -> None:
    """A lifecycle report after open_until is preceded by CircuitClosed too."""
    gate = _gate(circuit_denials=1, circuit_cooldown_ms=1_000)
    one(gate.spawn("root", config="hacker"), ev.CircuitOpened)
    gate.now += timedelta(seconds=5)
    assert [type(o).__name__ for o in gate.consume("root", 1)] == ["CircuitClosed", "TokensCharged"]


# -- tenant boundary ------------------------------------------------------------------------


def _acme_tree() -> tuple[GateScenario, str]:
    gate = _gate()
    worker = gate.spawned("root", tokens=10_000)
    return gate, worker


REPORTS_FROM_EVIL = {
    "TokensConsumed": lambda m, agent: ev.TokensConsumed(meta=m, agent_id=agent, tokens=60_000),
    "AgentStarted": lambda m, agent: ev.AgentStarted(meta=m, agent_id=agent, runtime="evil"),
    "AgentCompleted": lambda m, agent: ev.AgentCompleted(meta=m, agent_id=agent),
    "AgentFailed": lambda m, agent: ev.AgentFailed(meta=m, agent_id=agent, error="x"),
    "TerminationRequested": lambda m, agent: ev.TerminationRequested(meta=m, agent_id=agent, requested_by="evil"),
}


@pytest.mark.parametrize("name", sorted(REPORTS_FROM_EVIL))
@pytest.mark.parametrize("target", ["root", "worker"])
def test_a_report_about_another_tenants_tree_is_rejected_and_changes_nothing(name: str, target: str) -> None:
    """Usage, start, completion, failure or termination claimed by tenant evil about acme's agents: rejected."""
    gate, worker = _acme_tree()
    agent = "root" if target == "root" else worker
    before = gate.state.trees["root"].to_dict()
    rejected = one(gate.send(REPORTS_FROM_EVIL[name](gate.meta("root", tenant="evil"), agent)), ev.LifecycleRejected)
    assert gate.log[-1][1] == [rejected]
    assert rejected.reason is ev.DenialReason.TENANT_MISMATCH
    assert (rejected.meta.tenant_id, rejected.reported_by_tenant) == ("acme", "evil")
    assert rejected.report == f"agentlog.lifecycle.{name}" and rejected.agent_id == agent
    assert gate.state.trees["root"].to_dict() == before


def test_decisions_carry_the_trees_tenant_and_requests_of_another_are_denied_as_such() -> None:
    """Evil's spawn and top-up in acme's tree are denied with TENANT_MISMATCH, stamped acme; nothing changes."""
    gate, worker = _acme_tree()
    before = gate.state.trees["root"].to_dict()
    denied = one(gate.spawn("root", tenant="evil"), ev.SpawnDenied)
    assert (denied.reason, denied.meta.tenant_id) == (ev.DenialReason.TENANT_MISMATCH, "acme")
    refused = one(gate.top_up(worker, 5_000, tenant="evil"), ev.TopUpDenied)
    assert (refused.reason, refused.meta.tenant_id) == (ev.DenialReason.TENANT_MISMATCH, "acme")
    assert gate.state.trees["root"].to_dict() == before
    gate.complete("root")
    denied = one(gate.spawn("root", tenant="evil"), ev.SpawnDenied)  # an ended tree: still not evil's to probe
    assert denied.reason is ev.DenialReason.TENANT_MISMATCH


def test_a_root_id_of_another_tenant_cannot_be_registered_live_or_ended() -> None:
    """Registering acme's root id as evil is denied TENANT_MISMATCH, saying nothing about acme's tree."""
    gate, _ = _acme_tree()
    for _ in ("live", "ended"):
        rejected = one(gate.register_root("root", tenant="evil"), ev.RootRejected)
        assert (rejected.reason, rejected.meta.tenant_id) == (ev.DenialReason.TENANT_MISMATCH, "acme")
        assert "another tenant" in rejected.message and "ended" not in rejected.message
        gate.complete("root")
    assert one(gate.register_root("root"), ev.RootRejected).reason is ev.DenialReason.DUPLICATE_REQUEST  # acme's own


def test_only_the_agent_its_ancestors_and_the_policys_operators_may_terminate_it() -> None:
    """A termination requested by anyone else is rejected NOT_AUTHORIZED and changes nothing."""
    gate = _gate(tokens=10_000)
    worker = gate.spawned("root", tokens=3_000, spawns=2)
    helper = gate.spawned(worker, config="helper", tokens=1_000)
    sibling = gate.spawned("root", tokens=1_000)
    before = gate.state.to_bytes()
    for stranger in (sibling, "someone", helper):  # a sibling, an unknown identity, a descendant
        refused = one(gate.terminate(worker, requested_by=stranger), ev.LifecycleRejected)
        assert refused.reason is R.NOT_AUTHORIZED and "only they may terminate it" in refused.message
    assert gate.state.to_bytes() == before
    assert one(gate.terminate(helper, requested_by="root"), ev.AgentTerminated).agent_id == helper  # an ancestor
    assert one(gate.terminate(sibling, requested_by=sibling), ev.AgentTerminated).agent_id == sibling  # itself
    assert gate.terminate(worker, requested_by="operator")[-1].agent_id == worker  # type: ignore[attr-defined]


def test_a_config_may_name_the_configs_of_ancestors_that_may_terminate_it() -> None:
    """``terminable_by``: a helper may be terminated by an ancestor worker, not by the orchestrator root."""
    configs = [
        {"name": "orchestrator", "may_spawn": True, "max_token_grant": 100_000, "max_spawn_grant": 10},
        {
            "name": "worker",
            "may_spawn": True,
            "spawnable_by": ["orchestrator"],
            "max_token_grant": 10_000,
            "max_spawn_grant": 5,
        },
        {"name": "helper", "spawnable_by": ["worker"], "terminable_by": ["worker"], "max_token_grant": 1_000},
    ]
    gate = GateScenario(small_policy(configs=configs))
    gate.register_root("root", tokens=100_000, spawns=10)
    worker = gate.spawned("root", tokens=5_000, spawns=2)
    helper = gate.spawned(worker, config="helper", tokens=500)
    refused = one(gate.terminate(helper, requested_by="root"), ev.LifecycleRejected)
    assert refused.reason is R.NOT_AUTHORIZED and "only by ancestors of config worker" in refused.message
    assert one(gate.terminate(helper, requested_by=worker), ev.AgentTerminated).agent_id == helper
