#!/usr/bin/env bash
# The demo workload, run by `make demo` after the stack is up: create the topics, publish
# a policy, start the spawn gate and the projector in the background, show publish and tail
# on a small tree, run a scripted mission that provokes every denial and a cascade, then
# run a mission plan on the mission processor, then agents consulting each other on the bus,
# then print the lineage tree from PostgreSQL. Logs: .state/logs/{spawn-gate,projector,missions,bus}.log
set -euo pipefail

export COLUMNS="${COLUMNS:-160}"  # rich tables: wide enough for the messages when piped
state="${AGENTLOG_STATE_DIR:-$PWD/.state}"
logs="$state/logs"
mkdir -p "$logs"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

step "topics, the default policy and the projection tables"
agentlog topics create
# a stack that ran the demo before already has the policy (the bus demo publishes a newer version of it)
agentlog policy show default >/dev/null 2>&1 || agentlog policy publish processors/policies/default.yaml
agentlog db migrate

step "start the spawn gate, the projector, the mission processor and the bus in the background (logs in $logs)"
agentlog processors run --worker-id demo >>"$logs/spawn-gate.log" 2>&1 &
pids+=($!)
agentlog projector run >>"$logs/projector.log" 2>&1 &
pids+=($!)
agentlog processors run --processor missions --worker-id demo >>"$logs/missions.log" 2>&1 &
pids+=($!)
agentlog processors run --processor bus --worker-id demo >>"$logs/bus.log" 2>&1 &
pids+=($!)

root="cli-demo-$(date +%H%M%S)"
meta="{\"tenant_id\":\"acme\",\"root_id\":\"$root\"}"
step "publish with the CLI: a root and two spawn requests (JSON lines on stdin, one transaction)"
agentlog publish RootAgentRegistered --json "{\"meta\":$meta,\"agent_id\":\"$root\",\"config\":\"orchestrator\",\"token_budget\":200000,\"spawn_budget\":6}"
agentlog publish SpawnRequested <<JSON
{"meta":$meta,"parent_agent_id":"$root","child_config":"researcher","task":{"title":"Collect sources","priority":"HIGH"},"requested_token_budget":40000,"requested_spawn_budget":2}
{"meta":$meta,"parent_agent_id":"$root","child_config":"coder","task":{"title":"Build the charts"},"requested_token_budget":30000}
JSON

step "a payload with a mistake is refused, naming the field (exit code 2, nothing published)"
if agentlog publish SpawnRequested --json "{\"meta\":$meta,\"parent_agent_id\":\"$root\",\"child_config\":\"coder\",\"task\":{\"title\":\"x\"},\"requested_token_budget\":\"many\"}"; then
  echo "unexpected: the bad payload was accepted" >&2; exit 1
fi

sleep 2
step "the requests and the gate's decisions, tailed back decoded (agentlog tail … --filter meta.root_id=$root)"
agentlog tail agentlog.spawn.requests agentlog.policy.decisions --filter "meta.root_id=$root"

step "a scripted mission through the SDK (deploy/local/demo_mission.py)"
python3 deploy/local/demo_mission.py
mission="$(cat .state/demo-root)"

step "a mission plan through the SDK: phases, a parallel group, a retry, a cycle refused, a cascade (deploy/local/demo_plan.py)"
python3 deploy/local/demo_plan.py
plan="$(cat .state/demo-plan-root)"
step "every fact of the plan, the automatic ones included (agentlog tail agentlog.mission.events --filter meta.root_id=$plan)"
agentlog tail agentlog.mission.events --filter "meta.root_id=$plan"
for _ in $(seq 1 30); do  # the projector writes the plan's facts into PostgreSQL
  [ "$(agentlog missions list "$plan" -o json 2>/dev/null | grep -c '"state": "CANCELLED"')" -gt 0 ] && break
  sleep 1
done
step "the plan's missions from PostgreSQL (agentlog missions list $plan)"
agentlog missions list "$plan"
step "the plan's dependency DAG with states (agentlog missions graph $plan -o mermaid)"
agentlog missions graph "$plan"

step "agents consulting each other on the bus: a decision with rationale and impact, an escalation, a handoff, a CRITICAL alert (deploy/local/demo_bus.py)"
python3 deploy/local/demo_bus.py
talk="$(cat .state/demo-bus-root)"
for _ in $(seq 1 30); do  # the projector writes the decisions into PostgreSQL
  [ "$(agentlog bus decision-log "$talk" -o json 2>/dev/null | grep -c '"choice"')" -gt 0 ] && break
  sleep 1
done
step "the tree's messages, its decision log and its statistics, from PostgreSQL (agentlog bus messages / decision-log / stats $talk)"
agentlog bus messages "$talk"
agentlog bus decision-log "$talk"
agentlog bus stats "$talk"

step "the mission's lineage tree, from PostgreSQL (agentlog lineage tree $mission)"
for _ in $(seq 1 30); do
  agentlog lineage tree "$mission" >/dev/null 2>&1 && break
  sleep 1
done
sleep 3  # let the projector catch up with the last decisions
agentlog lineage tree "$mission"
step "denied spawns of the mission (agentlog lineage denied $mission)"
agentlog lineage denied "$mission"

step "compliance: recompute the audit chains from Kafka and compare every audit row (agentlog replay verify)"
agentlog replay verify --quiet
step "compliance: re-run the gate's, the mission processor's and the bus's pure cores over the recorded inputs (agentlog replay decisions --root …)"
agentlog replay decisions --root "$mission" --quiet
agentlog replay decisions --root "$plan" --processor missions --quiet
agentlog replay decisions --root "$talk" --processor bus --quiet
step "compliance: export the mission from Kafka with its chain hashes and check the file (agentlog replay export / check-export)"
agentlog replay export --root "$mission" -o "$state/demo-mission.jsonl" --quiet
agentlog replay check-export "$state/demo-mission.jsonl"
