"""LangGraph under agentlog: a sub-agent is a subgraph run as a child agent, through the spawn gate.

Install with ``pip install 'agentlog[langgraph]'``. Three functions:

- :func:`run_as_agent` runs a compiled graph as the agent of a handle: it reports the
  start, publishes the token usage the framework's callbacks see as ``TokensConsumed``,
  checks the handle's cancellation flag between two steps of the graph (a cascade
  termination stops the graph at its next step: :class:`AgentCancelled`), and reports the
  end, completed with a summary of the final state or failed with the error.
- :func:`spawn_subgraph` asks the gate for a child of the handle that runs the current
  node, runs the subgraph as that child and returns its final state: the child's result
  comes back to the parent node. A denied spawn raises
  :class:`~agentlog.handles.SpawnRefused`, whose message is the gate's sentence for the
  agent (catch it in the node to hand the sentence to the model).
- :func:`one_step_graph` builds the graph of an agent whose work is one function.
- :func:`handle_of` gives a node the handle of the agent running it, from the node's
  ``RunnableConfig`` (``run_as_agent`` puts it there).

A node that blocks for a long time is not interrupted inside: cancellation takes effect
between steps, so keep long work in several steps (or poll ``handle_of(config).cancelled``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel

from agentlog import events as ev
from agentlog.errors import AgentlogError
from agentlog.handles import AgentHandle, Outcome

HANDLE_KEY = "agentlog_handle"
"""Where in ``config["configurable"]`` a node finds the handle of the agent that runs it."""
AGENT_KEY = "agentlog_agent_id"
"""The run metadata that names the agent a model call is charged to."""

Summary = Callable[[Any], str]


class AgentCancelled(AgentlogError):
    """The control plane ended the agent while its graph ran; ``outcome`` says how (terminated, timed out)."""

    def __init__(self, handle: AgentHandle) -> None:
        outcome = handle.outcome()
        assert outcome is not None, "raised for an agent that is over"
        self.handle = handle
        self.outcome: Outcome = outcome
        super().__init__(f"agent {handle.agent_id} was stopped: {outcome.message}")


class TokenUsage(BaseCallbackHandler):
    """Publishes the tokens each model call of the handle's agent used as one ``TokensConsumed``.

    A subgraph's runs inherit the callbacks of the graph that spawned it, so every agent's
    handler sees the calls of its descendants too; each counts only the calls whose run
    metadata names its own agent (:data:`AGENT_KEY`, set by :func:`run_as_agent`, and
    overridden by each nested run): a call is charged once, to the agent that made it.
    """

    def __init__(self, handle: AgentHandle) -> None:
        self.handle = handle
        self.tokens = 0
        """Tokens reported so far."""
        self._mine: set[UUID] = set()

    def _started(self, run_id: UUID, metadata: dict[str, Any] | None) -> None:
        if (metadata or {}).get(AGENT_KEY) == self.handle.agent_id:
            self._mine.add(run_id)

    def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        self._started(run_id, metadata)

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID,
        metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        self._started(run_id, metadata)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        if run_id not in self._mine:
            return
        self._mine.discard(run_id)
        used = 0
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
                used += int(usage.get("total_tokens", 0))
        if not used and response.llm_output:  # models that report usage per call, not per message
            used = int((response.llm_output.get("token_usage") or {}).get("total_tokens", 0))
        if used > 0:
            model = (response.llm_output or {}).get("model_name")
            self.handle.report_usage(used, model if isinstance(model, str) else None)
            self.tokens += used


def one_step_graph(state_schema: type[Any], step: Callable[..., Any]) -> Pregel[Any, Any, Any, Any]:
    """A compiled graph of one node, ``step`` (named after it): an agent whose work is one function."""
    graph = StateGraph(state_schema)
    graph.add_node(step.__name__, step)
    graph.add_edge(START, step.__name__)
    graph.add_edge(step.__name__, END)
    return graph.compile()


def handle_of(config: RunnableConfig) -> AgentHandle:
    """The handle of the agent running the node that got ``config``."""
    handle = (config.get("configurable") or {}).get(HANDLE_KEY)
    if not isinstance(handle, AgentHandle):
        raise AgentlogError("this node does not run under agentlog: run its graph with run_as_agent()")
    return handle


def _summary(state: Any) -> str:
    text = state.get("summary") if isinstance(state, dict) else None
    return str(text if text is not None else state)[:1000]


def run_as_agent(
    handle: AgentHandle,
    graph: Pregel[Any, Any, Any, Any],
    graph_input: Any,
    *,
    config: RunnableConfig | None = None,
    summary: Summary = _summary,
) -> Any:
    """Run ``graph`` as ``handle``'s agent and return its final state (see the module's description)."""
    usage = TokenUsage(handle)
    base: RunnableConfig = config or {}
    callbacks = [*(base.get("callbacks") or []), usage]  # type: ignore[misc]
    configurable = {**(base.get("configurable") or {}), HANDLE_KEY: handle}
    metadata = {**(base.get("metadata") or {}), AGENT_KEY: handle.agent_id}
    run_config: RunnableConfig = {**base, "callbacks": callbacks, "configurable": configurable, "metadata": metadata}
    handle.started("langgraph")
    state: Any = None
    try:
        for step in graph.stream(graph_input, run_config, stream_mode="values"):
            state = step
            if handle.cancelled:
                break
    except Exception as e:
        if not handle.cancelled:  # the graph failed (a child's end alone is the graph's failure too)
            handle.fail(f"{type(e).__name__}: {e}")
            raise
        raise AgentCancelled(handle) from e  # a child stopped because this agent's end reached it first
    if handle.cancelled:
        raise AgentCancelled(handle)
    handle.complete(summary(state))  # the tokens were reported call by call
    return state


def spawn_subgraph(
    parent: AgentHandle | RunnableConfig,
    graph: Pregel[Any, Any, Any, Any],
    graph_input: Any,
    *,
    agent_config: str,
    task: ev.TaskSpec | str,
    token_budget: int,
    spawn_budget: int = 0,
    summary: Summary = _summary,
) -> Any:
    """Spawn a child of ``parent`` (a handle, or the calling node's config) that runs ``graph``; its final state.

    Raises :class:`~agentlog.handles.SpawnRefused` (the gate's sentence) when the gate denies the child,
    and :class:`AgentCancelled` when the child is ended while it runs.
    """
    handle = parent if isinstance(parent, AgentHandle) else handle_of(parent)
    with handle.spawn(agent_config, task, token_budget, spawn_budget) as child:
        return run_as_agent(child, graph, graph_input, summary=summary)
