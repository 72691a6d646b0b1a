"""A scripted mission against a running spawn gate: every kind of denial, and a cascade.

An orchestrator registers a tree and spawns specialists, which spawn their own children;
the script then provokes each denial the gate knows (depth, spawn budget, token budget,
whitelist, authority, forbidden action, concurrency, circuit breaker), runs an agent over
its token budget, and completes a specialist whose subtree is then terminated. Each
decision is printed as it comes back. Run by `make demo` (after `agentlog processors run`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from agentlog import events as ev
from agentlog.client import AgentlogClient
from agentlog.settings import get_settings
from agentlog.tail import TailOptions, tail
from agentlog.topics import POLICY_DECISIONS

BOLD, GREEN, RED, YELLOW, DIM, OFF = "\033[1m", "\033[32m", "\033[31m", "\033[33m", "\033[2m", "\033[0m"
seen_kinds: set[str] = set()


def show(who: str, what: str, decision: ev.Event) -> str | None:
    """Print one decision; return the new agent's id when it was an approval."""
    if isinstance(decision, ev.SpawnApproved):
        print(
            f"  {GREEN}APPROVED{OFF} {who} → {what}: child {decision.child_agent_id[:8]} at depth {decision.depth}, "
            f"{decision.granted_token_budget:,} tokens, spawn budget {decision.granted_spawn_budget}"
        )
        return decision.child_agent_id
    if isinstance(decision, ev.RootAdmitted):
        print(f"  {GREEN}ADMITTED{OFF} {who}: {decision.message}")
        return decision.agent_id
    if isinstance(decision, ev.SpawnDenied | ev.RootRejected):
        seen_kinds.add(decision.reason.value)
        print(f"  {RED}DENIED{OFF}   {who} → {what}: {BOLD}{decision.reason.value}{OFF}  {decision.message}")
        return None
    print(f"  {YELLOW}{type(decision).__name__}{OFF} {decision}")
    return None


class Mission:
    """The demo's client, with one line of output per decision."""

    def __init__(self, client: AgentlogClient, run: str) -> None:
        self.client = client
        self.root = f"mission-{run}"
        self.runaway = f"runaway-{run}"

    def spawn(
        self, root: str, parent: str, who: str, config: str, tokens: int, spawns: int = 0, **kw: Any
    ) -> str | None:
        decision = self.client.spawn(root, parent, config, f"{config} work", tokens, spawns, **kw)
        return show(who, f"{config} ({tokens:,} tokens, spawn budget {spawns})", decision)

    def build_tree(self) -> tuple[str, str, str, str]:
        """Root, specialists and their children; returns (researcher, coder, sub, subsub)."""
        root = self.root
        print(f"\n{BOLD}== a mission: orchestrator {root} registers with 400,000 tokens and spawn budget 30{OFF}")
        task = ev.TaskSpec(title="Market report")
        show("orchestrator", "root", self.client.register_root(root, "orchestrator", 400_000, 30, task=task))
        print(f"\n{BOLD}== specialists, and their own children{OFF}")
        researcher = self.spawn(root, root, "orchestrator", "researcher", 120_000, 6)
        coder = self.spawn(root, root, "orchestrator", "coder", 100_000, 1)
        assert researcher and coder, "the demo's first spawns must be approved"
        sub = self.spawn(root, researcher, "researcher", "researcher", 40_000, 3)
        assert sub
        subsub = self.spawn(root, sub, "sub-researcher", "researcher", 10_000, 1)
        assert subsub
        self.spawn(root, coder, "coder", "reviewer", 20_000, 0)
        return researcher, coder, sub, subsub

    def provoke_limits(self, researcher: str, coder: str, sub: str, subsub: str) -> None:
        """One request per limit, each of which the gate must deny."""
        root = self.root
        print(f"\n{BOLD}== the limits{OFF}")
        self.spawn(root, subsub, "depth-3 researcher", "summarizer", 1_000)
        self.spawn(root, coder, "coder (spawn budget 1, used)", "reviewer", 5_000)
        self.spawn(root, sub, "sub-researcher (40,000 tokens)", "researcher", 39_000, 0)
        self.spawn(root, root, "orchestrator", "crypto-miner", 1_000)
        self.spawn(root, researcher, "researcher", "coder", 10_000)
        self.spawn(root, root, "orchestrator", "researcher", 1_000, capabilities=["deploy"])
        self.spawn(root, root, "orchestrator", "summarizer", 300_000)
        for _ in range(4):  # the orchestrator may have 5 active children
            self.spawn(root, root, "orchestrator", "summarizer", 2_000)
        print(f"\n{BOLD}== a researcher spends more than it was granted{OFF}")
        self.client.report_usage(root, subsub, 15_000, model="large")
        print(f"  reported 15,000 tokens used by {subsub[:8]} (granted 10,000)")

    def trip_circuit(self) -> None:
        """A second tree keeps asking for a config it may not have until its circuit opens."""
        print(f"\n{BOLD}== the circuit breaker: a runaway tree keeps asking for what it may not have{OFF}")
        show("orchestrator", "root", self.client.register_root(self.runaway, "orchestrator", 50_000, 5))
        for attempt in range(11):
            decision = self.client.spawn(self.runaway, self.runaway, "crypto-miner", "mine", 1_000)
            if attempt in (0, 10):
                show("runaway orchestrator", "crypto-miner (1,000 tokens)", decision)
            elif attempt == 1:
                print(f"  {DIM}… 9 more denied requests …{OFF}")

    def cascade(self, researcher: str) -> None:
        print(f"\n{BOLD}== the first researcher completes: its subtree is terminated, unused tokens return{OFF}")
        self.client.complete(self.root, researcher, "Found 12 sources", tokens_used=30_000)


def report(roots: tuple[str, ...]) -> dict[str, int]:
    """Print the decisions that lifecycle facts caused; return counts per decision type."""
    settings = get_settings()
    print(f"\n{BOLD}== every decision of {', '.join(roots)}, read back from agentlog.policy.decisions{OFF}")
    topic = settings.topic_prefix + POLICY_DECISIONS.name
    kinds: dict[str, int] = {}
    for tree in roots:
        for record in tail(settings, TailOptions(topics=[topic], filters={"meta.root_id": tree})):
            name = (record.record or "?").rsplit(".", 1)[-1]
            kinds[name] = kinds.get(name, 0) + 1
            value = record.value or {}
            if name in ("AgentTerminated", "BudgetExhausted", "CircuitOpened", "AgentTimedOut"):
                print(f"  {YELLOW}{name}{OFF} {DIM}{value.get('agent_id', '')}{OFF} {value.get('message')}")
    print(f"  counts: {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}")
    return kinds


WANTED_DENIALS = {
    "DEPTH_EXCEEDED", "SPAWN_BUDGET_EXHAUSTED", "TOKEN_BUDGET_EXHAUSTED", "CONFIG_NOT_WHITELISTED",
    "NOT_AUTHORIZED", "FORBIDDEN_ACTION", "GRANT_TOO_LARGE", "PARENT_CONCURRENCY", "CIRCUIT_OPEN",
}  # fmt: skip


def main() -> None:
    with AgentlogClient("acme", get_settings(), producer_name="demo-mission", timeout=30) as client:
        mission = Mission(client, time.strftime("%H%M%S"))
        researcher, coder, sub, subsub = mission.build_tree()
        mission.provoke_limits(researcher, coder, sub, subsub)
        mission.trip_circuit()
        mission.cascade(researcher)
    time.sleep(2)  # let the gate decide the completion before reading the decisions back
    kinds = report((mission.root, mission.runaway))
    missing = WANTED_DENIALS - seen_kinds
    if missing or not {"AgentTerminated", "BudgetExhausted", "CircuitOpened"} <= kinds.keys():
        print(f"{RED}demo incomplete: missing {sorted(missing)} / {kinds}{OFF}", file=sys.stderr)
        sys.exit(1)
    print(f"\n{GREEN}shown: every denial kind, a budget overrun, the circuit breaker, a cascade termination{OFF}")
    Path(".state").mkdir(exist_ok=True)
    Path(".state/demo-root").write_text(mission.root)


if __name__ == "__main__":
    main()
