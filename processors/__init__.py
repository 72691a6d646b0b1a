"""The stream processors: the spawn gate's pure core, its worker on the processor runtime, and its policy.

``__all__`` is the face other packages use (replay, the CLI's callers, the benchmarks); the
modules behind it are internals of this package.
"""

from agentlog.processors.clock import to_micros
from agentlog.processors.errors import PolicyError, ProcessorError
from agentlog.processors.gate_input import decode_input
from agentlog.processors.input_merge import (
    CLOCK_MARGIN_MS,
    CORE_HEADER,
    DECIDED_HEADER,
    GATE_ORDER,
    LIFECYCLE,
    REQUESTS,
    DecisionPoint,
    InputRecord,
    MergeOrder,
    clamped,
    core_version,
)
from agentlog.processors.policy import Policy, from_event, load_default_policy, load_policy, to_event
from agentlog.processors.spawn_gate import CORE_VERSION, decide, expire
from agentlog.processors.tree_state import PartitionState

__all__ = [
    "CLOCK_MARGIN_MS",
    "CORE_HEADER",
    "CORE_VERSION",
    "DECIDED_HEADER",
    "GATE_ORDER",
    "LIFECYCLE",
    "REQUESTS",
    "DecisionPoint",
    "InputRecord",
    "MergeOrder",
    "PartitionState",
    "Policy",
    "PolicyError",
    "ProcessorError",
    "clamped",
    "core_version",
    "decide",
    "decode_input",
    "expire",
    "from_event",
    "load_default_policy",
    "load_policy",
    "to_event",
    "to_micros",
]
