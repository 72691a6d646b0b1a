"""An agent runtime in a process of its own, for the tracing tests: ``root`` registers a tree, ``spawn`` a child.

    python -m tests.observability.sdk_agent root TENANT
    python -m tests.observability.sdk_agent spawn TENANT ROOT_ID PARENT_AGENT_ID
    python -m tests.observability.sdk_agent usage TENANT ROOT_ID AGENT_ID INPUT_TOKENS OUTPUT_TOKENS

Prints the decision as one JSON object. Telemetry comes from the ``OTEL_*`` environment, as
in any application that uses the SDK without setting up OpenTelemetry itself.
"""

from __future__ import annotations

import json
import sys

from agentlog.client import AgentlogClient


def main(argv: list[str]) -> None:
    step, tenant = argv[0], argv[1]
    with AgentlogClient(tenant, timeout=60) as client:
        if step == "root":
            root_id = client.new_root_id()
            admitted = client.register_root(root_id, "orchestrator", 100_000, 10)
            print(json.dumps({"record": type(admitted).__name__, "root_id": root_id, "agent_id": root_id}))
        elif step == "usage":
            root_id, agent, prompt, generated = argv[2], argv[3], int(argv[4]), int(argv[5])
            delivery = client.report_usage(
                root_id, agent, prompt + generated, "a-model", input_tokens=prompt, output_tokens=generated
            )
            print(json.dumps({"record": "TokensConsumed", "offset": delivery.offset}))
        else:
            root_id, parent = argv[2], argv[3]
            decision = client.spawn(root_id, parent, "researcher", "find the sources", 20_000, 2)
            print(json.dumps({"record": type(decision).__name__, "root_id": root_id, **_child(decision)}))


def _child(decision: object) -> dict[str, str]:
    child = getattr(decision, "child_agent_id", None)
    return {"child_agent_id": child} if child else {}


if __name__ == "__main__":
    main(sys.argv[1:])
