"""The token ledger: usage reports, over-use (``BudgetExhausted``) and top-ups.

Usage counts against the reporting agent's own grant; usage reported by an agent that
already ended is charged to its nearest active ancestor (it happened, and the tree pays).
An agent whose remaining tokens drop below zero gets one ``BudgetExhausted`` and may not
spawn until a top-up is granted. A top-up of a child is reserved from its parent's
remaining tokens; a top-up of a root adds to the whole tree's budget. A retried top-up
(its ``request_id`` already decided) is answered with the original outcome, ``repeat``
set, and adds nothing.
"""

from __future__ import annotations

from agentlog import events as ev
from agentlog.processors import reports
from agentlog.processors.checks import Checks, Denial
from agentlog.processors.emitter import Emitter
from agentlog.processors.policy import Policy
from agentlog.processors.tree_state import AgentState, PartitionState, TreeState

INT64_MAX = 2**63 - 1
_PREFIX = "Cannot top up the budget"


def add_spent(agent: AgentState, tokens: int) -> None:
    """Charge ``tokens`` to the agent (saturating at the Avro long's maximum)."""
    agent.tokens_spent = min(agent.tokens_spent + tokens, INT64_MAX)


def check_exhausted(agent: AgentState, out: Emitter, policy_version: int) -> None:
    """Emit ``BudgetExhausted`` once when an active agent's remaining tokens drop below zero."""
    if agent.active and not agent.exhausted and agent.remaining_tokens < 0:
        agent.exhausted = True
        out.emit(
            ev.BudgetExhausted,
            agent_id=agent.agent_id,
            token_budget=agent.token_grant,
            tokens_used=agent.tokens_spent,
            policy_version=policy_version,
            message=(
                f"Token budget exhausted: {agent.tokens_spent} tokens used of {agent.token_grant} granted "
                f"({agent.tokens_reserved} reserved for children). Request a top-up before spawning again."
            ),
        )


def nearest_active(tree: TreeState, agent: AgentState) -> AgentState | None:
    """The agent itself if active, else its closest active ancestor."""
    current: AgentState | None = agent
    while current is not None and not current.active:
        current = tree.agents.get(current.parent) if current.parent is not None else None
    return current


def decide_usage(state: PartitionState, event: ev.TokensConsumed, policy: Policy | None, out: Emitter) -> None:
    """Charge a usage report (``TokensCharged``); reports of unknown agents or of no tokens are rejected."""
    found = reports.reported_agent(state, event, policy, out)
    if found is None:
        return
    # Since core 4 a report may carry a partial result, and then no tokens.
    partial = event.partial_result if out.core >= 4 else None
    if event.tokens < 0 or (event.tokens == 0 and partial is None):
        why = f"it reports {event.tokens} tokens; usage is a positive number of tokens"
        why += " (or 0 with a partial result)." if out.core >= 4 else "."
        reports.reject(out, event, policy, ev.DenialReason.INVALID_REQUEST, why)
        return
    tree, agent = found
    charge(tree, agent, event.tokens, policy, out, partial)


def charge(
    tree: TreeState, agent: AgentState, tokens: int, policy: Policy | None, out: Emitter, partial: str | None = None
) -> None:
    """Charge ``tokens`` the agent reported to it or, once it ended, to its nearest active ancestor."""
    payer = nearest_active(tree, agent)
    if payer is None:  # not in a live tree, whose root is active
        return
    version = policy.version if policy else 0
    add_spent(payer, tokens)
    charged(out, agent, payer, tokens, version, partial)
    check_exhausted(payer, out, version)


def charged(
    out: Emitter, agent: AgentState, payer: AgentState, tokens: int, policy_version: int, partial: str | None = None
) -> None:
    """The ``TokensCharged`` fact of ``tokens`` reported by ``agent`` (with its ``partial`` result) and charged
    to ``payer``."""
    instead = "" if payer is agent else " (it ended, so its nearest active ancestor pays)"
    out.fact(
        ev.TokensCharged,
        agent_id=agent.agent_id,
        charged_agent_id=payer.agent_id,
        tokens=tokens,
        tokens_used=payer.tokens_spent,
        remaining_tokens=payer.remaining_tokens,
        partial_result=partial,
        policy_version=policy_version,
        message=f"Charged {tokens} tokens reported by {agent.agent_id} to {payer.agent_id}{instead}:"
        f" {payer.tokens_spent} used, {payer.remaining_tokens} remaining.",
    )


def decide_top_up(
    state: PartitionState, event: ev.BudgetTopUpRequested, policy: Policy | None, now: int, out: Emitter
) -> None:
    """Grant a top-up (``BudgetToppedUp``) or deny it (``TopUpDenied``); every request id is remembered."""
    checks = Checks()
    version = policy.version if policy else 0
    tree = state.live_tree(event.meta.root_id)
    own = tree is not None and event.meta.tenant_id == tree.tenant_id  # another tenant's request changes nothing
    if tree is not None and own and tree.has_seen(event.request_id.int):
        _repeat(tree, event, version, out)
        return
    result = _evaluate(state, tree, event, policy, now, checks)
    if tree is not None and own:
        tree.remember(event.request_id.int, result.reason if isinstance(result, Denial) else None)
    if isinstance(result, Denial):
        _denied(out, event, result, version, checks.items)
        return
    agent, parent = result
    agent.token_grant += event.additional_tokens
    if parent is not None:
        parent.tokens_reserved += event.additional_tokens
    unblocked = agent.exhausted and agent.remaining_tokens >= 0
    if unblocked:
        agent.exhausted = False
    still = " It is still over budget and may not spawn." if agent.exhausted else ""
    message = (
        f"Added {event.additional_tokens} tokens to agent {agent.agent_id}: grant {agent.token_grant}, "
        f"{agent.remaining_tokens} remaining.{still}"
    )
    _granted(event, agent, parent, version, out, message, unblocked=unblocked, checks=checks.items)


def refuse(
    out: Emitter, event: ev.BudgetTopUpRequested, policy: Policy | None, reason: ev.DenialReason, why: str
) -> None:
    """Deny ``event`` without deciding it (its sender may not send it): ``why`` is the sentence; nothing changes."""
    _denied(out, event, Denial(reason, f"{_PREFIX}: {why}"), policy.version if policy else 0)


def _denied(
    out: Emitter,
    event: ev.BudgetTopUpRequested,
    denial: Denial,
    version: int,
    checks: list[ev.LimitCheck] | None = None,
    *,
    repeat: bool = False,
) -> None:
    out.emit(
        ev.TopUpDenied,
        request_id=event.request_id,
        agent_id=event.agent_id,
        additional_tokens=event.additional_tokens,
        reason=denial.reason,
        checks=checks or [],
        policy_version=version,
        message=denial.message,
        repeat=repeat,
    )


def _granted(
    event: ev.BudgetTopUpRequested,
    agent: AgentState,
    parent: AgentState | None,
    version: int,
    out: Emitter,
    message: str,
    *,
    unblocked: bool = False,
    checks: list[ev.LimitCheck] | None = None,
    repeat: bool = False,
) -> None:
    """Emit the ``BudgetToppedUp`` of a granted top-up (or of its repeat), with the ledger as it now stands."""
    out.emit(
        ev.BudgetToppedUp,
        request_id=event.request_id,
        agent_id=agent.agent_id,
        additional_tokens=event.additional_tokens,
        token_budget=agent.token_grant,
        remaining_tokens=agent.remaining_tokens,
        parent_remaining_tokens=parent.remaining_tokens if parent is not None else None,
        spawns_unblocked=unblocked,
        checks=checks or [],
        policy_version=version,
        message=message,
        repeat=repeat,
    )


def _repeat(tree: TreeState, event: ev.BudgetTopUpRequested, version: int, out: Emitter) -> None:
    """Answer a retried top-up with its original outcome; nothing is added twice."""
    reason = tree.outcome_of(event.request_id.int)
    agent = tree.agents.get(event.agent_id)
    if reason is not None or agent is None:
        reason = reason or ev.DenialReason.DUPLICATE_REQUEST
        why = f"{_PREFIX}: request {event.request_id} was already denied ({reason.value}); that stands."
        _denied(out, event, Denial(reason, why), version, repeat=True)
        return
    parent = tree.agents.get(agent.parent) if agent.parent is not None else None
    message = (
        f"Already granted: request {event.request_id} topped up agent {agent.agent_id}; its grant is "
        f"{agent.token_grant}, {agent.remaining_tokens} remaining. Nothing was added again."
    )
    _granted(event, agent, parent, version, out, message, repeat=True)


def _evaluate(
    state: PartitionState,
    tree: TreeState | None,
    event: ev.BudgetTopUpRequested,
    policy: Policy | None,
    now: int,
    checks: Checks,
) -> Denial | tuple[AgentState, AgentState | None]:
    """The first denial that applies, or the agent and its parent (None for a root) when every check passes."""
    if policy is None:
        return Denial(ev.DenialReason.NO_POLICY, f"{_PREFIX}: no spawn policy is in force, so every request is denied.")
    known = state.trees.get(event.meta.root_id)
    if known is not None and event.meta.tenant_id != known.tenant_id:  # before telling whether the tree ended
        return Denial(
            ev.DenialReason.TENANT_MISMATCH, f"{_PREFIX}: the agent tree {known.root_id} belongs to another tenant."
        )
    if tree is None:
        reason = ev.DenialReason.AGENT_NOT_ACTIVE if known is not None else ev.DenialReason.UNKNOWN_AGENT
        what = "has ended" if known is not None else "is not known"
        return Denial(reason, f"{_PREFIX}: the agent tree {event.meta.root_id} {what}.")
    if event.additional_tokens <= 0:
        return Denial(
            ev.DenialReason.INVALID_REQUEST,
            f"{_PREFIX}: the additional tokens must be positive (got {event.additional_tokens}).",
        )
    agent = tree.agents.get(event.agent_id)
    if agent is None:
        return Denial(ev.DenialReason.UNKNOWN_AGENT, f"{_PREFIX}: agent {event.agent_id} is not known in this tree.")
    if not agent.live_at(now):
        how = "passed its deadline" if agent.active else f"ended ({agent.status.name.lower()})"
        return Denial(ev.DenialReason.AGENT_NOT_ACTIVE, f"{_PREFIX}: agent {agent.agent_id} has {how}.")
    rule = policy.rule(agent.config)
    if rule is None:
        return Denial(
            ev.DenialReason.CONFIG_NOT_WHITELISTED,
            f"{_PREFIX}: config '{agent.config}' is no longer in policy '{policy.name}'.",
        )
    new_grant = agent.token_grant + event.additional_tokens
    if not checks.within("max_token_grant", rule.max_token_grant, new_grant):
        return Denial(
            ev.DenialReason.GRANT_TOO_LARGE,
            f"{_PREFIX}: config '{rule.name}' may be granted at most {rule.max_token_grant} tokens; "
            f"the top-up would make it {new_grant}.",
        )
    parent = tree.agents.get(agent.parent) if agent.parent is not None else None
    if parent is not None and not checks.within(
        "parent_remaining_tokens", parent.remaining_tokens, event.additional_tokens
    ):
        return Denial(
            ev.DenialReason.TOKEN_BUDGET_EXHAUSTED,
            f"{_PREFIX}: the parent agent {parent.agent_id} has only {max(parent.remaining_tokens, 0)} tokens left; "
            f"{event.additional_tokens} requested. Ask the parent for a top-up first.",
        )
    return agent, parent
