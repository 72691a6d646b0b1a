#!/usr/bin/env bash
# Jaeger all-in-one for the tracing tests and for local debugging, built once from its Go module.
#
#   bash deploy/observability/jaeger.sh build   # the binary, cached outside the clone (skipped when present)
#   bash deploy/observability/jaeger.sh path    # where the binary is
#   bash deploy/observability/jaeger.sh up      # start it (OTLP on 4317/4318, query API and UI on 16686)
#   bash deploy/observability/jaeger.sh down
#
# `go install ...@version` refuses Jaeger (its go.mod has replace directives), so a small tools module
# builds it. The version is pinned: v1.75.0 is the release this machine's Go module proxy serves as approved.
set -euo pipefail

JAEGER_VERSION="${JAEGER_VERSION:-v1.75.0}"
CACHE_DIR="${AGENTLOG_CACHE:-$HOME/.cache/agentlog}"
BIN_DIR="$CACHE_DIR/jaeger-$JAEGER_VERSION"
BIN="$BIN_DIR/jaeger"
RUN_DIR="${AGENTLOG_JAEGER_RUN:-/tmp/agentlog-jaeger}"
QUERY_PORT="${AGENTLOG_JAEGER_QUERY_PORT:-16686}"

build() {
  if [[ -x "$BIN" ]]; then
    echo "jaeger $JAEGER_VERSION: $BIN (cached)"
    return
  fi
  command -v go >/dev/null || { echo "jaeger.sh: Go is needed to build Jaeger" >&2; exit 1; }
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  echo "jaeger $JAEGER_VERSION: building from its Go module (several minutes from cold caches)"
  (
    cd "$work"
    go mod init agentlog-tools >/dev/null 2>&1
    go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
    go build -o jaeger github.com/jaegertracing/jaeger/cmd/jaeger
  )
  mkdir -p "$BIN_DIR"
  mv "$work/jaeger" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
  echo "jaeger $JAEGER_VERSION: $BIN"
}

up() {
  build >/dev/null
  mkdir -p "$RUN_DIR"
  if [[ -f "$RUN_DIR/pid" ]] && kill -0 "$(cat "$RUN_DIR/pid")" 2>/dev/null; then
    echo "jaeger already running (pid $(cat "$RUN_DIR/pid"))"
    return
  fi
  nohup "$BIN" >"$RUN_DIR/jaeger.log" 2>&1 &
  echo $! >"$RUN_DIR/pid"
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$QUERY_PORT/api/services" >/dev/null 2>&1; then
      echo "jaeger up: UI http://127.0.0.1:$QUERY_PORT, OTLP grpc :4317 http :4318"
      return
    fi
    sleep 0.5
  done
  echo "jaeger did not answer on :$QUERY_PORT; see $RUN_DIR/jaeger.log" >&2
  exit 1
}

down() {
  if [[ -f "$RUN_DIR/pid" ]]; then
    kill "$(cat "$RUN_DIR/pid")" 2>/dev/null || true
    rm -f "$RUN_DIR/pid"
  fi
}

case "${1:-build}" in
  build) build ;;
  path) echo "$BIN" ;;
  up) up ;;
  down) down ;;
  *) echo "usage: $0 build|path|up|down" >&2; exit 2 ;;
esac
