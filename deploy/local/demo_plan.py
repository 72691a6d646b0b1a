"""A mission plan against a running spawn gate and mission processor: phases, a parallel group, a retry, a cycle, a
cascade.

A research tree plans its work as missions: two sources to collect in parallel, then an
analysis that hard-depends on both, then a report. One collection fails once and is
retried; a dependency that would close a cycle is refused, naming it; the optional
appendix with a child mission is cancelled, and its child with it. Each answer of the
mission processor is printed as it comes back. Run by `make demo`.
"""

from __future__ import annotations

from agentlog import events as ev
from agentlog.client import AgentlogClient

BOLD, GREEN, RED, DIM, OFF = "\033[1m", "\033[32m", "\033[31m", "\033[2m", "\033[0m"
_S = ev.MissionState


def show(what: str, answer: ev.Event) -> None:
    if isinstance(answer, ev.MissionTransitioned):
        moved = f"{answer.from_state.value} → {answer.to_state.value}"
        print(f"  {GREEN}{moved:<22}{OFF} {answer.mission_id:<12} {what}  {DIM}(attempt {answer.attempt}){OFF}")
    elif isinstance(answer, ev.DependencyAccepted):
        print(f"  {GREEN}{'DEPENDS':<22}{OFF} {answer.mission_id:<12} on {answer.depends_on} ({answer.kind.value})")
    elif isinstance(answer, ev.MissionTransitionRejected | ev.DependencyRejected):
        print(f"  {RED}{answer.reason_code.value:<22}{OFF} {answer.mission_id:<12} {answer.reason}")


def main() -> None:
    with AgentlogClient("acme", timeout=30) as client:
        root = client.start_root("orchestrator", 400_000, 20)
        worker = root.spawn("researcher", "research", 100_000, 4)
        tree, m, me = root.root_id, client.missions, root.agent_id
        print(f"{BOLD}tree {tree}{OFF}")
        for name in ("collect-a", "collect-b", "analyse", "report", "appendix"):
            show("created", m.create(tree, name, name.replace("-", " ")))
        m.create(tree, "figures", "figures for the appendix", parent_mission_id="appendix")
        for mission, needed in (("analyse", "collect-a"), ("analyse", "collect-b"), ("report", "analyse")):
            show("", m.depend(tree, mission, needed))
        show("", m.depend(tree, "collect-a", "report"))  # would close report → analyse → collect-a → report
        show("may not start yet", m.start(tree, "analyse", me))
        print(f"{BOLD}the parallel group: both collections run at once{OFF}")
        show("", m.start(tree, "collect-a", me, agent_id=worker.agent_id))
        show("", m.start(tree, "collect-b", me))
        show("fails once", m.fail(tree, "collect-a", worker.agent_id, "the source timed out"))
        show("second attempt", m.start(tree, "collect-a", me, agent_id=worker.agent_id))
        show("", m.complete(tree, "collect-a", worker.agent_id, "14 sources", 0.8))
        show("analyse is READY now", m.complete(tree, "collect-b", me, "9 sources", 0.7))
        show("", m.start(tree, "analyse", me))
        show("", m.complete(tree, "analyse", me, "three findings", 0.9))
        show("cancels its child first", m.cancel(tree, "appendix", me, "out of scope"))
        show("", m.start(tree, "report", me))
        show("", m.complete(tree, "report", me, "the report", 0.85))
        with open(".state/demo-plan-root", "w") as f:
            f.write(tree)


if __name__ == "__main__":
    main()
