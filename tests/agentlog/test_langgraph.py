"""LangGraph under agentlog, against a running gate: subgraphs as child agents, tokens, denials, cancellation."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from agentlog import events as ev
from agentlog.client import AgentlogClient
from agentlog.handles import OutcomeStatus, SpawnRefused
from agentlog.integrations.langgraph import AgentCancelled, handle_of, one_step_graph, run_as_agent, spawn_subgraph
from agentlog.replay import read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import AGENT_LIFECYCLE, POLICY_DECISIONS
from tests.processors.gate_harness import Worker
from tests.support import REPO, agentlog_env


class Research(TypedDict, total=False):
    question: str
    summary: str
    notes: list[str]
    steps: int


def _model(tokens: int) -> GenericFakeChatModel:
    """A chat model without a network: answers with a fixed text and reports ``tokens`` used."""
    usage = {"input_tokens": tokens // 2, "output_tokens": tokens - tokens // 2, "total_tokens": tokens}
    return GenericFakeChatModel(messages=iter([AIMessage(content="three sources", usage_metadata=usage)] * 10))


def _summarizer() -> Any:
    def summarize(state: Research) -> Research:
        answer = _model(400).invoke(f"summarize {state['question']}")
        return {"summary": f"summary: {answer.content}"}

    return one_step_graph(Research, summarize)


def _researcher() -> Any:
    summarizer = _summarizer()

    def dig(state: Research, config: RunnableConfig) -> Research:
        found = spawn_subgraph(
            config, summarizer, {"question": state["question"]}, agent_config="summarizer",
            task="summarize the sources", token_budget=5_000,
        )  # fmt: skip
        try:  # more than the researcher's grant allows: the gate says no, and the node hears why
            spawn_subgraph(config, summarizer, state, agent_config="summarizer", task="more", token_budget=500_000)
        except SpawnRefused as refused:
            return {"summary": found["summary"], "notes": [str(refused)]}
        raise AssertionError("the gate granted more than the config allows")

    return one_step_graph(Research, dig)


@pytest.mark.timeout(240)
def test_a_three_level_graph_runs_through_the_gate(settings: Settings, gate: Worker) -> None:
    researcher = _researcher()

    def plan(state: Research, config: RunnableConfig) -> Research:
        found = spawn_subgraph(
            config, researcher, {"question": state["question"]}, agent_config="researcher",
            task="research the question", token_budget=20_000, spawn_budget=2,
        )  # fmt: skip
        return {"summary": found["summary"], "notes": found.get("notes", [])}

    with AgentlogClient("acme", settings, timeout=60) as client:
        root = client.start_root("orchestrator", 100_000, 10)
        final = run_as_agent(root, one_step_graph(Research, plan), {"question": "what limits agent proliferation?"})
        assert root.result(60).status is OutcomeStatus.completed
    assert final["summary"] == "summary: three sources"
    assert (
        final["notes"] and "Cannot spawn: config 'summarizer' may be granted at most 50000 tokens" in final["notes"][0]
    )

    serde = Serde()
    decisions = [
        serde.decode(r.value or b"") for r in read_topic(settings, settings.topic_prefix + POLICY_DECISIONS.name)
    ]
    approved = [d.child_config for d in decisions if isinstance(d, ev.SpawnApproved)]
    assert approved == ["researcher", "summarizer"]
    ended = sorted(d.outcome.name for d in decisions if isinstance(d, ev.AgentEnded))
    assert ended == ["COMPLETED"] * 3
    reports = [serde.decode(r.value or b"") for r in read_topic(settings, settings.topic_prefix + AGENT_LIFECYCLE.name)]
    usage = [(r.agent_id, r.tokens) for r in reports if isinstance(r, ev.TokensConsumed)]
    (summarizer,) = [
        d.child_agent_id for d in decisions if isinstance(d, ev.SpawnApproved) and d.child_config == "summarizer"
    ]
    assert usage == [(summarizer, 400)]  # the model call, reported by the callbacks once, for the agent that made it


@pytest.mark.timeout(240)
def test_a_cascade_termination_stops_the_running_child_graph(settings: Settings, gate: Worker) -> None:
    started = threading.Event()

    def work(state: Research, config: RunnableConfig) -> Research:
        started.set()
        handle_of(config).wait_cancelled(0.2)  # a step of work
        return {"steps": state.get("steps", 0) + 1}

    loop = StateGraph(Research)
    loop.add_node("work", work)
    loop.add_edge(START, "work")
    loop.add_conditional_edges("work", lambda s: END if s.get("steps", 0) >= 1_000 else "work")
    endless = loop.compile()
    with AgentlogClient("acme", settings, timeout=60) as client:
        root = client.start_root("orchestrator", 100_000, 10)
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                spawn_subgraph(root, endless, {"steps": 0}, agent_config="researcher", task="loop", token_budget=1_000)
            except AgentCancelled as e:
                outcome.append(e)

        runner = threading.Thread(target=run)
        runner.start()
        assert started.wait(60)
        root.terminate("mission over")
        runner.join(60)
        assert not runner.is_alive()
    (cancelled,) = outcome
    assert isinstance(cancelled, AgentCancelled)
    assert cancelled.outcome.status is OutcomeStatus.terminated
    assert cancelled.outcome.termination is ev.TerminationReason.ANCESTOR_ENDED


@pytest.mark.timeout(240)
def test_the_example_research_agent_runs_into_its_budget(settings: Settings, gate: Worker) -> None:
    example = REPO / "deploy/local/langgraph_research.py"
    done = subprocess.run(
        [sys.executable, str(example)],
        env=agentlog_env(settings),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: Cannot spawn: your token budget is exhausted" in done.stdout, done.stdout
    assert done.stdout.rstrip().endswith("done: 2 sources read; the root completed"), done.stdout
