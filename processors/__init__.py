"""The stream processors: the pure cores of the spawn gate, the mission processor and the consultation bus, their
workers on the processor runtime, and the policy.

``__all__`` is the face other packages use (replay, the CLI's callers, the benchmarks); the
modules behind it are internals of this package.
"""

from agentlog.processors.bus_core import HANDED_OVER as BUS_HANDED_OVER
from agentlog.processors.bus_core import PRODUCER as BUS_PRODUCER
from agentlog.processors.bus_core import decide as decide_bus
from agentlog.processors.bus_core import expire as expire_bus
from agentlog.processors.bus_input import BUS_ORDER, decode_bus_input
from agentlog.processors.bus_input import NAME as BUS_PROCESSOR
from agentlog.processors.bus_input import SOURCES as BUS_SOURCES
from agentlog.processors.bus_input import record_time_us as bus_record_time_us
from agentlog.processors.bus_state import BusPartition
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
from agentlog.processors.mission_core import decide as decide_missions
from agentlog.processors.mission_core import expire as expire_missions
from agentlog.processors.mission_input import MISSION_ORDER, decode_mission_input
from agentlog.processors.mission_input import NAME as MISSION_PROCESSOR
from agentlog.processors.mission_input import SOURCES as MISSION_SOURCES
from agentlog.processors.mission_state import MissionPartition
from agentlog.processors.policy import Policy, from_event, load_default_policy, load_policy, to_event
from agentlog.processors.spawn_gate import CORE_VERSION, decide, expire
from agentlog.processors.tree_state import PartitionState

__all__ = [
    "BUS_HANDED_OVER",
    "BUS_ORDER",
    "BUS_PROCESSOR",
    "BUS_PRODUCER",
    "BUS_SOURCES",
    "CLOCK_MARGIN_MS",
    "CORE_HEADER",
    "CORE_VERSION",
    "DECIDED_HEADER",
    "GATE_ORDER",
    "LIFECYCLE",
    "MISSION_ORDER",
    "MISSION_PROCESSOR",
    "MISSION_SOURCES",
    "REQUESTS",
    "BusPartition",
    "DecisionPoint",
    "InputRecord",
    "MergeOrder",
    "MissionPartition",
    "PartitionState",
    "Policy",
    "PolicyError",
    "ProcessorError",
    "bus_record_time_us",
    "clamped",
    "core_version",
    "decide",
    "decide_bus",
    "decide_missions",
    "decode_bus_input",
    "decode_input",
    "decode_mission_input",
    "expire",
    "expire_bus",
    "expire_missions",
    "from_event",
    "load_default_policy",
    "load_policy",
    "to_event",
    "to_micros",
]
