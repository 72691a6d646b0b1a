#!/usr/bin/env bash
# The demo workload: create the topics, publish a small agent tree's events with the CLI,
# and tail them back decoded. Run through `make demo` (which starts the stack first).
set -euo pipefail

root="demo-$(date +%Y%m%d%H%M%S)"
tenant="acme"
meta() { printf '{"tenant_id":"%s","root_id":"%s"}' "$tenant" "$root"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "topics (agentlog topics create)"
agentlog topics create

step "an orchestrator registers as the root of tree $root"
agentlog publish RootAgentRegistered --json "{\"meta\":$(meta),\"agent_id\":\"$root\",\"config\":\"orchestrator\",\"token_budget\":200000,\"spawn_budget\":6,\"task\":{\"title\":\"Write a market report\"}}"

step "it asks for two specialists (JSON lines on stdin, published atomically)"
agentlog publish SpawnRequested <<JSON
{"meta":$(meta),"parent_agent_id":"$root","child_config":"researcher","task":{"title":"Collect sources","priority":"HIGH"},"requested_token_budget":40000,"requested_spawn_budget":2}
{"meta":$(meta),"parent_agent_id":"$root","child_config":"coder","task":{"title":"Build the charts"},"requested_token_budget":30000}
JSON

step "lifecycle reports and a handoff"
agentlog publish TokensConsumed --json "{\"meta\":$(meta),\"agent_id\":\"$root\",\"tokens\":1200,\"model\":\"small\"}"
agentlog publish Handoff --json "{\"meta\":$(meta),\"from_agent_id\":\"$root\",\"to_agent_id\":\"reviewer-1\",\"task\":{\"title\":\"Review the draft\"},\"context\":{\"draft\":\"s3://reports/draft-1\"}}"

step "a payload with a mistake is refused, naming the field (exit code 2, nothing published)"
if agentlog publish SpawnRequested --json "{\"meta\":$(meta),\"parent_agent_id\":\"$root\",\"child_config\":\"coder\",\"task\":{\"title\":\"x\"},\"requested_token_budget\":\"many\"}"; then
  echo "unexpected: the bad payload was accepted" >&2; exit 1
fi

step "everything of tree $root, tailed back decoded (agentlog tail --all --filter meta.root_id=$root)"
agentlog tail --all --from-beginning --filter "meta.root_id=$root"
