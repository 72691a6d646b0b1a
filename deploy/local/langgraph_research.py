"""A three-level LangGraph research agent under agentlog that runs into its budget.

The orchestrator's graph spawns a researcher subgraph; the researcher spawns summarizer
subgraphs, one per source, each calling a chat model (langchain-core's fake model: no
network, a fixed answer, 3,000 tokens a call). The researcher's 10,000 tokens run out: the
gate reports ``BudgetExhausted`` and refuses the next spawn with a sentence the node hands
back, and the graph finishes with what it found.

Needs the stack and a gate worker (``make up``, ``agentlog policy publish``, ``agentlog
processors run --worker-id demo``) and ``pip install 'agentlog[langgraph]'``; then
``python deploy/local/langgraph_research.py``.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig

from agentlog.client import AgentlogClient
from agentlog.handles import SpawnRefused
from agentlog.integrations.langgraph import handle_of, one_step_graph, run_as_agent, spawn_subgraph

SOURCES = ["kafka docs", "owasp llm08", "a survey of agent frameworks", "a postmortem", "a blog post"]
USAGE = {"input_tokens": 1_000, "output_tokens": 2_000, "total_tokens": 3_000}


class State(TypedDict, total=False):
    question: str
    source: str
    summary: str
    notes: list[str]


def summarizer() -> Any:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="a useful finding", usage_metadata=USAGE)] * 100))

    def summarize(state: State) -> State:
        answer = model.invoke(f"summarize {state['source']}")
        return {"summary": f"{state['source']}: {answer.content}"}

    return one_step_graph(State, summarize)


def researcher() -> Any:
    summarize = summarizer()

    def read_sources(state: State, config: RunnableConfig) -> State:
        notes: list[str] = []
        for source in SOURCES:
            try:
                found = spawn_subgraph(
                    config, summarize, {"source": source}, agent_config="summarizer",
                    task=f"summarize {source}", token_budget=3_000,
                )  # fmt: skip
            except SpawnRefused as refused:
                notes.append(f"refused: {refused}")
                break
            handle_of(config).report_usage(3_000)  # reading the summary costs the researcher too
            notes.append(found["summary"])
        read = sum(not note.startswith("refused") for note in notes)
        return {"notes": notes, "summary": f"{read} sources read"}

    return one_step_graph(State, read_sources)


def orchestrator() -> Any:
    research = researcher()

    def plan(state: State, config: RunnableConfig) -> State:
        found = spawn_subgraph(
            config, research, {"question": state["question"]}, agent_config="researcher",
            task=state["question"], token_budget=10_000, spawn_budget=5,
        )  # fmt: skip
        return {"summary": found["summary"], "notes": found["notes"]}

    return one_step_graph(State, plan)


def main() -> None:
    with AgentlogClient("acme", timeout=30) as client:
        root = client.start_root("orchestrator", 200_000, 20)
        print(f"root {root.root_id}")
        final = run_as_agent(root, orchestrator(), {"question": "what limits agent proliferation?"})
        for note in final["notes"]:
            print(f"  {note}")
        print(f"done: {final['summary']}; the root {root.result(30).status.value}")


if __name__ == "__main__":
    main()
