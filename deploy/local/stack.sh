#!/usr/bin/env bash
# Local agentlog stack without Docker: Apache Kafka 4.4 (KRaft, one combined broker+controller
# node) and PostgreSQL 15+, both listening on 127.0.0.1 only, all state under one directory.
# AGENTLOG_SECURITY=sasl_ssl runs the secure stack beside it (own ports and state): TLS with
# certificates generated here, SASL/SCRAM-SHA-512 users, Kafka ACLs, TLS-only PostgreSQL.
#
#   bash deploy/local/stack.sh up       start both (idempotent) and wait until they answer
#   bash deploy/local/stack.sh down     stop both (data is kept)
#   bash deploy/local/stack.sh status   running/answering per service; non-zero exit if not
#   bash deploy/local/stack.sh env [USER]  print `export ...` lines for `eval` (secure: as USER [admin])
#   bash deploy/local/stack.sh kafka-stop | kafka-start   the broker alone (outage tests)
#
# Environment (defaults in brackets; the secure stack's second):
#   AGENTLOG_SECURITY               plaintext | sasl_ssl                     [plaintext]
#   AGENTLOG_STATE_DIR              state, data and logs     [<repo>/.state | <repo>/.state/secure]
#   AGENTLOG_KAFKA_PORT             Kafka client listener                    [19092 | 19192]
#   AGENTLOG_KAFKA_CONTROLLER_PORT  Kafka KRaft CONTROLLER listener          [19093 | 19193]
#   AGENTLOG_KAFKA_PARTITIONS       default partitions for new topics        [3]
#   AGENTLOG_KAFKA_HEAP_OPTS        broker JVM heap                          [-Xms256m -Xmx1g]
#   AGENTLOG_PG_PORT                PostgreSQL TCP port                      [15432 | 15433]
#   AGENTLOG_PG_USER                application role (LOGIN CREATEDB CREATEROLE) [agentlog]
#   AGENTLOG_PG_PASSWORD            its password                             [agentlog]
#   AGENTLOG_PG_DB                  application database, owned by the role  [agentlog]
#   AGENTLOG_PG_OS_USER             OS user that runs postgres when we are root [postgres]
#   AGENTLOG_PG_BIN                 directory with initdb/pg_ctl/psql
#                                   [newest /usr/lib/postgresql/*/bin, else from PATH]
#   AGENTLOG_STACK_TIMEOUT          seconds to wait for each service         [180]
#   AGENTLOG_PYTHON                 python used for the Kafka health probe   [python3]
#   JAVA, MVN                       java (17+) and maven commands            [java, mvn]
#
# Layout under the state dir: kafka/{libs,data,server.properties,cluster.id,kafka.pid},
# postgres/{data,run}, logs/ (kafka.log, kafka.out, postgres.log, maven.log, ...); the secure
# stack adds tls/ (CA and server certificate) and secrets/ (one password file per SCRAM user)
# and shares the plaintext stack's broker jars.
# Missing PostgreSQL (and Java/Maven) is installed with apt-get when running as root.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

SECURITY="${AGENTLOG_SECURITY:-plaintext}"
case "$SECURITY" in
  plaintext) DEFAULT_STATE="$ROOT/.state" DEFAULT_PORTS=(19092 19093 15432) ;;
  sasl_ssl) DEFAULT_STATE="$ROOT/.state/secure" DEFAULT_PORTS=(19192 19193 15433) ;;
  *) printf 'stack: ERROR: AGENTLOG_SECURITY=%s: expected plaintext or sasl_ssl\n' "$SECURITY" >&2; exit 2 ;;
esac
STATE="${AGENTLOG_STATE_DIR:-$DEFAULT_STATE}"
[[ "$STATE" == /* ]] || STATE="$PWD/$STATE"
LOGS="$STATE/logs"
TLS="$STATE/tls"
SECRETS="$STATE/secrets"

# SCRAM users of the secure stack, created when the storage is formatted. broker and admin
# are super users (the broker's own connections; topics, ACLs, policy and keyring); the
# others get their rights from `agentlog access bootstrap` (see agentlog/access.py).
SCRAM_USERS=(broker admin gate missions bus projector auditor tenant-acme tenant-globex)

KAFKA_HOST=127.0.0.1
KAFKA_PORT="${AGENTLOG_KAFKA_PORT:-${DEFAULT_PORTS[0]}}"
KAFKA_CONTROLLER_PORT="${AGENTLOG_KAFKA_CONTROLLER_PORT:-${DEFAULT_PORTS[1]}}"
KAFKA_PARTITIONS="${AGENTLOG_KAFKA_PARTITIONS:-3}"
KAFKA_HEAP_OPTS="${AGENTLOG_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
KAFKA_DIR="$STATE/kafka"
# The jars are the same for both stacks: the secure one uses the plaintext stack's copy.
if [[ "$SECURITY" == sasl_ssl ]]; then KAFKA_LIBS="$ROOT/.state/kafka/libs"; else KAFKA_LIBS="$KAFKA_DIR/libs"; fi
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"

PG_HOST=127.0.0.1
PG_PORT="${AGENTLOG_PG_PORT:-${DEFAULT_PORTS[2]}}"
PG_USER="${AGENTLOG_PG_USER:-agentlog}"
PG_PASSWORD="${AGENTLOG_PG_PASSWORD:-agentlog}"
PG_DB="${AGENTLOG_PG_DB:-agentlog}"
PG_DIR="$STATE/postgres"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run"
# unix socket paths are limited to ~107 bytes; fall back to /tmp for deep state dirs
((${#PG_RUN} <= 90)) || PG_RUN="/tmp/agentlog-pg-$(printf %s "$PG_DIR" | cksum | cut -d' ' -f1)"
PG_LOG="$LOGS/postgres.log"
PG_URL="postgresql://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB"
[[ "$SECURITY" == plaintext ]] || PG_URL+="?sslmode=verify-full&sslrootcert=$TLS/ca.pem"
if [[ $EUID -eq 0 ]]; then PG_OS_USER="${AGENTLOG_PG_OS_USER:-postgres}"; else PG_OS_USER="$(id -un)"; fi
PG_BIN="${AGENTLOG_PG_BIN:-}"

TIMEOUT="${AGENTLOG_STACK_TIMEOUT:-180}"
PYTHON="${AGENTLOG_PYTHON:-python3}"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"

# ---------------------------------------------------------------------------- helpers

say() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }

# show_log FILE [LINES]: print the tail of a log file to stderr (used on failures)
show_log() {
  [[ -f "$1" ]] || return 0
  printf -- '----- last %s lines of %s -----\n' "${2:-40}" "$1" >&2
  tail -n "${2:-40}" "$1" >&2
  printf -- '-----\n' >&2
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# apt_install PKG...: install Debian packages (root + apt-get only)
apt_install() {
  [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null \
    || die "please install: $* (automatic installation needs root and apt-get)"
  say "installing $* with apt-get (log: $LOGS/apt.log) ..."
  mkdir -p "$LOGS"
  { DEBIAN_FRONTEND=noninteractive apt-get update -q \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"; } \
    >>"$LOGS/apt.log" 2>&1 || { show_log "$LOGS/apt.log"; die "apt-get install $* failed"; }
}

# wait_until NAME CHECK_FN ALIVE_FN LOGFILE...: poll CHECK_FN until it succeeds; fail with the
# log tails when ALIVE_FN fails (the process died) or the timeout expires.
wait_until() {
  local name="$1" check="$2" alive="$3" deadline=$((SECONDS + TIMEOUT)) problem="" f
  shift 3
  until "$check" >/dev/null 2>&1; do
    if ! "$alive"; then
      problem="$name is not running any more"
    elif ((SECONDS >= deadline)); then
      problem="$name did not become healthy within ${TIMEOUT}s"
    else
      sleep 1
      continue
    fi
    for f in "$@"; do show_log "$f" 40; done
    "$check" >&2 || true
    die "$problem (logs: $*)"
  done
}

# ---------------------------------------------------------------------------- kafka

ensure_python() {
  command -v "$PYTHON" >/dev/null || apt_install python3
}

ensure_java_maven() {
  if ! command -v "$JAVA" >/dev/null || ! command -v "$MVN" >/dev/null; then
    apt_install default-jre-headless maven
  fi
  local spec
  spec="$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [[ "$spec" =~ ^[0-9]+$ ]] && ((spec >= 17)) || die "Kafka 4.x needs Java 17+, '$JAVA' is version '$spec'"
}

# kafka_libs: copy the broker jars from Maven Central once (again when pom.xml changes)
kafka_libs() {
  local stamp
  stamp="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
  [[ -f "$KAFKA_LIBS/.pom.sha256" && "$(cat "$KAFKA_LIBS/.pom.sha256")" == "$stamp" ]] && return 0
  say "fetching Kafka jars with Maven into $KAFKA_LIBS (first run only; log: $LOGS/maven.log) ..."
  rm -rf "$KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  "$MVN" -B -q -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIBS" >>"$LOGS/maven.log" 2>&1 \
    || { show_log "$LOGS/maven.log"; die "maven could not fetch the Kafka jars"; }
  echo "$stamp" >"$KAFKA_LIBS/.pom.sha256"
}

# kafka_java MAINCLASS ARGS...: the java command line for a Kafka main class (in KAFKA_JAVA)
kafka_java() {
  # shellcheck disable=SC2206 # KAFKA_HEAP_OPTS holds several options
  KAFKA_JAVA=("$JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
    -Djava.awt.headless=true -Dkafka.logs.dir="$LOGS"
    -Dlog4j2.configurationFile="$HERE/kafka-log4j2.xml"
    -cp "$KAFKA_LIBS/*" "$@")
}

# kafka_run MAINCLASS ARGS...: run a Kafka main class with our classpath and logging
kafka_run() { kafka_java "$@"; "${KAFKA_JAVA[@]}"; }

# ---------------------------------------------------------------------------- secure stack material

# secret USER: the password of a SCRAM user of the secure stack (generated once, kept 0600)
secret() {
  local file="$SECRETS/$1"
  if [[ ! -s "$file" ]]; then
    mkdir -p "$SECRETS"
    chmod 700 "$SECRETS"
    (umask 077 && openssl rand -hex 24 >"$file")
  fi
  cat "$file"
}

# tls_material: a CA and a server certificate signed by it, for 127.0.0.1 and localhost, once.
# The broker presents it on both listeners and as the client of its own controller listener
# (mutual TLS, principal CN=broker); PostgreSQL presents it too. Clients trust tls/ca.pem.
tls_material() {
  [[ -s "$TLS/broker.keystore.pem" && -s "$TLS/ca.pem" ]] && return 0
  command -v openssl >/dev/null || apt_install openssl
  say "generating a CA and a server certificate in $TLS"
  mkdir -p "$TLS"
  chmod 755 "$TLS"
  local log="$LOGS/tls.log"
  {
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS/ca.key")
    openssl req -x509 -new -key "$TLS/ca.key" -sha256 -days 3650 -subj "/CN=agentlog local CA" \
      -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign -out "$TLS/ca.pem"
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS/server.key")
    openssl req -new -key "$TLS/server.key" -subj "/CN=broker" -out "$TLS/server.csr"
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth,clientAuth" \
      "keyUsage=critical,digitalSignature" "basicConstraints=CA:false" >"$TLS/server.ext"
    openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
      -sha256 -days 825 -extfile "$TLS/server.ext" -out "$TLS/server.pem"
  } >>"$log" 2>&1 || { show_log "$log"; die "could not generate the TLS certificates"; }
  # Kafka's PEM keystore: the PKCS#8 key, then the certificate chain.
  (umask 077 && cat "$TLS/server.key" "$TLS/server.pem" "$TLS/ca.pem" >"$TLS/broker.keystore.pem")
  chmod 644 "$TLS/ca.pem" "$TLS/server.pem"
}

# kafka_listeners: the listeners line of server.properties (kafka_start checks a running broker's)
kafka_listeners() {
  if [[ "$SECURITY" == sasl_ssl ]]; then
    echo "listeners=SASL_SSL://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT"
  else
    echo "listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT"
  fi
}

# kafka_listener_config: listeners, and for the secure stack SASL, TLS and the authorizer
kafka_listener_config() {
  kafka_listeners
  if [[ "$SECURITY" == plaintext ]]; then
    cat <<EOF
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
EOF
    return 0
  fi
  cat <<EOF
advertised.listeners=SASL_SSL://$KAFKA_HOST:$KAFKA_PORT
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=SASL_SSL
controller.listener.names=CONTROLLER

# Clients authenticate with SCRAM-SHA-512 over TLS; the users were created at format time.
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$(secret broker)";
ssl.keystore.type=PEM
ssl.keystore.location=$TLS/broker.keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
# The controller listener takes only the broker itself: mutual TLS, principal User:broker.
listener.name.controller.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([a-zA-Z0-9._-]+)(,.*)?\$/\$1/,DEFAULT

# Nothing is allowed that an ACL does not allow; broker and admin are the super users.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:broker;User:admin
EOF
}

# kafka_config: (re)write server.properties for a single combined broker+controller
kafka_config() {
  local listeners
  listeners="$(kafka_listener_config)"
  (umask 077 && cat >"$KAFKA_PROPS") <<EOF
# Generated by deploy/local/stack.sh on every 'up'; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
$listeners
log.dirs=$KAFKA_DATA

# One node: every internal topic and every new topic has a single replica.
num.partitions=$KAFKA_PARTITIONS
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0

# Small machine (2 cores).
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
}

# kafka_format: format the KRaft storage once; the cluster id is kept in kafka/cluster.id
kafka_format() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
  local id
  if [[ -s "$KAFKA_DIR/cluster.id" ]]; then
    id="$(cat "$KAFKA_DIR/cluster.id")"
  else
    id="$(kafka_run kafka.tools.StorageTool random-uuid 2>>"$LOGS/kafka-format.log")" \
      || { show_log "$LOGS/kafka-format.log"; die "could not generate a Kafka cluster id"; }
    echo "$id" >"$KAFKA_DIR/cluster.id"
  fi
  local scram=() user
  if [[ "$SECURITY" == sasl_ssl ]]; then
    for user in "${SCRAM_USERS[@]}"; do scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(secret "$user")]"); done
  fi
  say "formatting Kafka storage in $KAFKA_DATA (cluster id $id${scram:+, SCRAM users ${SCRAM_USERS[*]}})"
  kafka_run kafka.tools.StorageTool format -t "$id" -c "$KAFKA_PROPS" "${scram[@]}" \
    >>"$LOGS/kafka-format.log" 2>&1 \
    || { show_log "$LOGS/kafka-format.log"; die "kafka storage format failed"; }
}

# kafka_pid: print the pid of our broker if it is running
kafka_pid() {
  local pid
  [[ -f "$KAFKA_PIDFILE" ]] || return 1
  pid="$(cat "$KAFKA_PIDFILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $KAFKA_PROPS" || return 1
  echo "$pid"
}

kafka_alive() { kafka_pid >/dev/null; }

kafka_probe() {
  if [[ "$SECURITY" == sasl_ssl ]]; then
    KAFKA_PROBE_CA="$TLS/ca.pem" KAFKA_PROBE_USER=admin KAFKA_PROBE_PASSWORD="$(secret admin)" \
      "$PYTHON" "$HERE/kafka_probe.py" "$KAFKA_HOST:$KAFKA_PORT" 5
  else
    "$PYTHON" "$HERE/kafka_probe.py" "$KAFKA_HOST:$KAFKA_PORT" 5
  fi
}

kafka_start() {
  if kafka_alive; then
    grep -qx "$(kafka_listeners)" "$KAFKA_PROPS" \
      || die "kafka is running with other ports ($(grep '^listeners=' "$KAFKA_PROPS")); run 'down' first"
    say "kafka already running (pid $(kafka_pid))"
    return 0
  fi
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    port_open "$port" && die "port $port is already in use by another process (set AGENTLOG_KAFKA_PORT / AGENTLOG_KAFKA_CONTROLLER_PORT)"
  done
  mkdir -p "$KAFKA_DATA"
  ensure_java_maven
  kafka_libs
  [[ "$SECURITY" == plaintext ]] || tls_material
  kafka_config
  kafka_format
  say "starting kafka"
  echo "=== $(date -Is) stack.sh up" >>"$LOGS/kafka.out"
  # setsid: own session, so Ctrl-C in the calling terminal does not reach the broker
  kafka_java kafka.Kafka "$KAFKA_PROPS"
  setsid nohup "${KAFKA_JAVA[@]}" >>"$LOGS/kafka.out" 2>&1 </dev/null &
  echo $! >"$KAFKA_PIDFILE"
}

kafka_stop() {
  local pid
  if ! pid="$(kafka_pid)"; then
    rm -f "$KAFKA_PIDFILE"
    say "kafka not running"
    return 0
  fi
  say "stopping kafka (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    say "kafka did not stop within 60s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$KAFKA_PIDFILE"
}

# ---------------------------------------------------------------------------- postgres

# pg_find_bin: set PG_BIN to a directory holding initdb, pg_ctl and psql (newest version first)
pg_find_bin() {
  if [[ -n "$PG_BIN" ]]; then
    [[ -x "$PG_BIN/pg_ctl" ]] || die "AGENTLOG_PG_BIN=$PG_BIN has no pg_ctl"
    return 0
  fi
  local dir candidates
  candidates="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -rV)"
  if command -v pg_ctl >/dev/null; then
    candidates+=$'\n'"$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
  fi
  while read -r dir; do
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/psql" ]]; then
      PG_BIN="$dir"
      return 0
    fi
  done <<<"$candidates"
  return 1
}

pg_ensure_installed() {
  if ! pg_find_bin; then
    apt_install postgresql
    pg_find_bin || die "PostgreSQL installed but initdb/pg_ctl/psql not found; set AGENTLOG_PG_BIN"
  fi
  local major
  major="$("$PG_BIN/pg_ctl" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')"
  [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 15)) || die "PostgreSQL 15+ needed, $PG_BIN has version '$major'"
}

# as_pg CMD...: run a command as the OS user owning the cluster (initdb/pg_ctl refuse root)
as_pg() {
  if [[ $EUID -eq 0 ]]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi
}

# pg_prepare_user: as root, make sure the postgres OS user exists and can reach the state dir
pg_prepare_user() {
  [[ $EUID -eq 0 ]] || return 0
  if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
    say "creating OS user $PG_OS_USER"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$PG_OS_USER"
  fi
  local dir="" part parts
  IFS=/ read -ra parts <<<"${PG_DIR#/}"
  for part in "${parts[@]}"; do # top-down: /a, /a/b, ... up to the postgres dir
    dir="$dir/$part"
    [[ -d "$dir" ]] || break
    if ! runuser -u "$PG_OS_USER" -- test -x "$dir"; then
      say "granting search (x) permission on $dir to others so that $PG_OS_USER can reach $PG_DIR"
      chmod o+x "$dir"
    fi
  done
}

pg_init() {
  mkdir -p "$PG_DATA" "$PG_RUN"
  chown "$PG_OS_USER": "$PG_DIR" "$PG_DATA" "$PG_RUN"
  chmod 700 "$PG_DATA"
  [[ -s "$PG_DATA/PG_VERSION" ]] && return 0
  say "initialising PostgreSQL cluster in $PG_DATA (log: $LOGS/postgres-initdb.log)"
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" --username="$PG_OS_USER" --encoding=UTF8 --no-locale \
    --auth-local=peer --auth-host=scram-sha-256 >>"$LOGS/postgres-initdb.log" 2>&1 \
    || { show_log "$LOGS/postgres-initdb.log"; die "initdb failed"; }
  echo "include_if_exists = 'agentlog.conf'" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

# pg_config: (re)write the settings we own; read by postgresql.conf's include
pg_config() {
  as_pg tee "$PG_DATA/agentlog.conf" >/dev/null <<EOF
# Generated by deploy/local/stack.sh on every 'up'; edits are overwritten.
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
max_connections = 200
shared_buffers = 256MB
password_encryption = 'scram-sha-256'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  [[ "$SECURITY" == plaintext ]] && return 0
  # The secure stack takes TCP connections over TLS only (hostnossl matches no line: refused).
  install -m 600 -o "$PG_OS_USER" "$TLS/server.pem" "$PG_DATA/server.crt"
  install -m 600 -o "$PG_OS_USER" "$TLS/server.key" "$PG_DATA/server.key"
  as_pg tee -a "$PG_DATA/agentlog.conf" >/dev/null <<EOF
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
EOF
  as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<EOF
# Generated by deploy/local/stack.sh (secure stack) on every 'up'; edits are overwritten.
local   all all              peer
hostssl all all 127.0.0.1/32 scram-sha-256
EOF
}

pg_running() { [[ -n "$PG_BIN" && -f "$PG_DATA/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

# pg_ready: the server accepts connections on its unix socket (no role/password involved)
pg_ready() { as_pg "$PG_BIN/pg_isready" -q -h "$PG_RUN" -p "$PG_PORT" -U "$PG_OS_USER" -d postgres; }

# pg_probe: the application URL works end to end (TCP, password, database)
pg_probe() {
  local out
  out="$(PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" "$PG_URL" -qAtX -c 'SELECT 1' 2>&1)" && [[ "$out" == 1 ]] \
    || { echo "postgres at $PG_HOST:$PG_PORT not answering: $out"; return 1; }
}

pg_start() {
  if pg_running; then
    # postmaster.pid: line 1 is the pid, line 4 the port
    [[ "$(sed -n 4p "$PG_DATA/postmaster.pid")" == "$PG_PORT" ]] \
      || die "postgres is running on port $(sed -n 4p "$PG_DATA/postmaster.pid"), not $PG_PORT; run 'down' first"
    say "postgres already running (pid $(head -n 1 "$PG_DATA/postmaster.pid"))"
    return 0
  fi
  port_open "$PG_PORT" && die "port $PG_PORT is already in use by another process (set AGENTLOG_PG_PORT)"
  touch "$PG_LOG"
  [[ $EUID -eq 0 ]] && chown "$PG_OS_USER": "$PG_LOG"
  say "starting postgres"
  # pg_ctl puts the postmaster in its own session; -w waits until it accepts connections
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" start >/dev/null \
    || { show_log "$PG_LOG"; die "postgres did not start (see $PG_LOG)"; }
}

# pg_bootstrap: create/refresh the application role and database (idempotent)
pg_bootstrap() {
  as_pg "$PG_BIN/psql" -h "$PG_RUN" -p "$PG_PORT" -d postgres -qAtX -v ON_ERROR_STOP=1 \
    -v user="$PG_USER" -v pass="$PG_PASSWORD" -v db="$PG_DB" >/dev/null <<'SQL'
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') AS role_missing \gset
\if :role_missing
CREATE ROLE :"user" LOGIN CREATEDB CREATEROLE PASSWORD :'pass';
\else
ALTER ROLE :"user" LOGIN CREATEDB CREATEROLE PASSWORD :'pass';
\endif
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') AS db_missing \gset
\if :db_missing
CREATE DATABASE :"db" OWNER :"user";
\endif
SQL
}

pg_stop() {
  if ! pg_find_bin || ! pg_running; then
    say "postgres not running"
    return 0
  fi
  say "stopping postgres"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null \
    || as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null
}

# ---------------------------------------------------------------------------- commands

cmd_up() {
  local started=$SECONDS
  mkdir -p "$LOGS" "$KAFKA_DIR"
  ensure_python
  kafka_start
  pg_ensure_installed
  pg_prepare_user
  pg_init
  [[ "$SECURITY" == plaintext ]] || tls_material
  pg_config
  pg_start
  wait_until postgres pg_ready pg_running "$PG_LOG"
  pg_bootstrap || { show_log "$PG_LOG"; die "could not create role/database $PG_USER/$PG_DB"; }
  pg_probe >/dev/null || { pg_probe >&2; die "postgres does not accept $PG_URL"; }
  wait_until kafka kafka_probe kafka_alive "$LOGS/kafka.out" "$LOGS/kafka.log"
  say "kafka    ready on $KAFKA_HOST:$KAFKA_PORT (controller $KAFKA_HOST:$KAFKA_CONTROLLER_PORT)"
  say "postgres ready at $PG_URL"
  [[ "$SECURITY" == plaintext ]] || access_bootstrap
  say "logs in $LOGS (kafka.log, kafka.out, postgres.log); up took $((SECONDS - started))s"
}

# access_bootstrap: the secure stack's catalogue topics and the ACLs of its standard users,
# by the admin user, when the agentlog package is installed (else say how to do it later)
access_bootstrap() {
  if ! "$PYTHON" -c 'import agentlog.cli.main' 2>/dev/null; then
    say "agentlog is not installed: after 'make install' run: eval \"\$(AGENTLOG_SECURITY=sasl_ssl bash $0 env)\" && agentlog access bootstrap"
    return 0
  fi
  eval "$(cmd_env admin)"
  "$PYTHON" -m agentlog.cli.main access bootstrap >>"$LOGS/access.log" 2>&1 \
    || { show_log "$LOGS/access.log"; die "agentlog access bootstrap failed"; }
  say "kafka    topics, ACLs for ${SCRAM_USERS[*]:2} and a policy requiring signatures in place (log: $LOGS/access.log)"
}

cmd_down() {
  kafka_stop
  pg_stop
}

cmd_status() {
  local rc=0 pid out
  if pid="$(kafka_pid)"; then
    if out="$(kafka_probe 2>/dev/null)"; then
      say "kafka    running (pid $pid), answering on $KAFKA_HOST:$KAFKA_PORT: $out"
    else
      say "kafka    running (pid $pid) but NOT answering: $out"; rc=1
    fi
  else
    say "kafka    not running"; rc=1
  fi
  if pg_find_bin && pg_running; then
    if out="$(pg_probe)"; then
      say "postgres running (pid $(head -n 1 "$PG_DATA/postmaster.pid")), answering at $PG_URL"
    else
      say "postgres running but NOT answering: $out"; rc=1
    fi
  else
    say "postgres not running"; rc=1
  fi
  say "logs in $LOGS"
  return "$rc"
}

# cmd_env [USER]: the settings of a client of this stack (secure: authenticated as USER)
cmd_env() {
  printf 'export AGENTLOG_BOOTSTRAP_SERVERS=%q\n' "$KAFKA_HOST:$KAFKA_PORT"
  printf 'export AGENTLOG_DATABASE_URL=%q\n' "$PG_URL"
  [[ "$SECURITY" == plaintext ]] && return 0
  local user="${1:-admin}"
  [[ -s "$SECRETS/$user" ]] || die "no SCRAM user '$user' in this stack (users: ${SCRAM_USERS[*]})"
  printf 'export AGENTLOG_SECURITY_PROTOCOL=SASL_SSL\n'
  printf 'export AGENTLOG_SASL_MECHANISM=SCRAM-SHA-512\n'
  printf 'export AGENTLOG_SASL_USERNAME=%q\n' "$user"
  printf 'export AGENTLOG_SASL_PASSWORD=%q\n' "$(cat "$SECRETS/$user")"
  printf 'export AGENTLOG_SSL_CA_LOCATION=%q\n' "$TLS/ca.pem"
}

# kafka-stop / kafka-start: the broker alone (outage tests stop it under load and bring it back).
cmd_kafka_start() {
  kafka_start
  wait_until kafka kafka_probe kafka_alive "$LOGS/kafka.out" "$LOGS/kafka.log"
  say "kafka    ready on $KAFKA_HOST:$KAFKA_PORT"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env "${2:-}" ;;
  kafka-stop) kafka_stop ;;
  kafka-start) cmd_kafka_start ;;
  *) echo "usage: $0 up|down|status|env|kafka-stop|kafka-start" >&2; exit 2 ;;
esac
