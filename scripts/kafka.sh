#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft, loopback only) for development and tests.
#
# No Docker and no downloads from apache.org: the broker's jars come from Maven Central
# through `mvn dependency:copy-dependencies` on scripts/kafka/pom.xml and are cached in
# <repo>/.kafka/lib. Needs Java 17+ (`java`, or $JAVA_HOME/bin/java) and Maven (`mvn`).
#
# Usage: scripts/kafka.sh <command>
#   start           fetch jars if needed, format storage if needed, start the broker and
#                   wait until it is ready; prints the bootstrap address (127.0.0.1:PORT)
#                   as the last line of stdout. Already running: prints the address.
#   stop            stop the broker (TERM, up to $KAFKA_STOP_TIMEOUT s, then KILL).
#                   Fine if it is not running. Keeps data, ports and jars.
#   status          prints the bootstrap address and exits 0 if the broker is running and
#                   ready; exits 1 otherwise.
#   restart-broker  stop then start on the SAME ports and data dir (data kept). Used by
#                   tests that restart the broker under a running service.
#   clean           stop the broker and delete its data, config and ports (keeps the jars).
#   classpath       fetch jars if needed and print the Java classpath ('<repo>/.kafka/lib/*').
#   run-class CLASS [ARGS...]
#                   fetch jars if needed and run a Kafka CLI class with a quiet log config
#                   (logs to stderr), e.g.
#                   scripts/kafka.sh run-class org.apache.kafka.tools.TopicCommand \
#                       --bootstrap-server 127.0.0.1:PORT --list
#
# Progress goes to stderr; stdout carries only the bootstrap address (or the tool's output).
#
# If KAFKA_BOOTSTRAP_SERVERS is set (your own broker, `docker compose up kafka`), `start` and
# `status` just print it, `stop` does nothing and `restart-broker` fails with exit code 2.
#
# Files under <repo>/.kafka/ (git-ignored):
#   lib/            broker + tools jars, lib/.stamp records what was fetched
#   data/           KRaft log dirs (metadata and topic data)
#   server.properties, cluster.id, ports, bootstrap, broker.pid, broker.log (+ broker.log.prev)
#
# Environment knobs (all optional):
#   KAFKA_READY_TIMEOUT  seconds to wait for the broker to be ready (default 120)
#   KAFKA_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 20)
#   KAFKA_HEAP_OPTS      broker heap options (default "-Xms128m -Xmx512m")
#   LOCAL_KAFKA_DIR      state directory (default <repo>/.kafka)
set -euo pipefail

KAFKA_VERSION="4.3.1"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"
BROKER_LOG4J="$SCRIPT_DIR/kafka/log4j2-broker.properties"
TOOLS_LOG4J="$SCRIPT_DIR/kafka/log4j2-tools.properties"

KDIR="${LOCAL_KAFKA_DIR:-$ROOT/.kafka}"
LIB="$KDIR/lib"
STAMP="$LIB/.stamp"
DATA="$KDIR/data"
LOG_DIR="$DATA/kraft-combined-logs"
PROPS="$KDIR/server.properties"
CLUSTER_ID_FILE="$KDIR/cluster.id"
PORTS_FILE="$KDIR/ports"
BOOTSTRAP_FILE="$KDIR/bootstrap"
PIDFILE="$KDIR/broker.pid"
LOG="$KDIR/broker.log"
LOCKFILE="$KDIR/.lock"

READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-120}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-20}"
# shellcheck disable=SC2206 # word splitting of the heap options is intended
HEAP_OPTS=(${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m})
READY_MARKER="Kafka Server started"

BROKER_PORT=""
CONTROLLER_PORT=""

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        printf '%s\n' "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        command -v java
    else
        die "java not found (install a JDK 17+ or set JAVA_HOME)"
    fi
}

# ---------------------------------------------------------------------------------------
# Locking: serialize start/stop/restart between concurrent callers (e.g. parallel tests).
# The fd is closed for the broker process so it does not inherit the lock.
take_lock() {
    mkdir -p "$KDIR"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$LOCKFILE"
        flock -w 600 9 || die "could not lock $LOCKFILE within 600 s"
    fi
}
release_lock() { exec 9>&- 2>/dev/null || true; }

# ---------------------------------------------------------------------------------------
# Jars
stamp_content() {
    local pom_sum
    pom_sum="$(cksum <"$POM" | cut -d' ' -f1)"
    printf 'kafka=%s pom-cksum=%s\n' "$KAFKA_VERSION" "$pom_sum"
}

fetch_jars() {
    local want tmp
    want="$(stamp_content)"
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -f "$LIB/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found (install Maven)"
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIB ..."
    mkdir -p "$KDIR"
    tmp="$KDIR/lib.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # (Debian's Maven prints bare colour-reset codes even in batch mode: strip them.)
    if ! mvn -B -q -f "$POM" \
        -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies \
        -DincludeScope=runtime \
        -DoutputDirectory="$tmp" </dev/null 2>&1 |
        sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d' >&2; then
        rm -rf "$tmp"
        die "mvn dependency:copy-dependencies failed (is Maven Central reachable?)"
    fi
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || {
        rm -rf "$tmp"
        die "kafka_2.13-$KAFKA_VERSION.jar missing after the fetch"
    }
    printf '%s\n' "$want" >"$tmp/.stamp"
    rm -rf "$LIB"
    mv "$tmp" "$LIB"
    log "fetched $(find "$LIB" -name '*.jar' | wc -l) jars"
}

run_tool() {
    # run_tool CLASS ARGS... : run a Kafka CLI class in the foreground (stdout untouched)
    local java
    java="$(java_bin)"
    "$java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="file:$TOOLS_LOG4J" \
        -cp "$LIB/*" "$@"
}

# ---------------------------------------------------------------------------------------
# Ports
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Can we listen on 127.0.0.1:$1? (SO_REUSEADDR like the JVM, so TIME_WAIT does not count.)
port_free() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
    elif port_open "$1"; then
        return 1
    fi
}

free_port() {
    local p
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
        return
    fi
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! port_open "$p"; then
            printf '%s\n' "$p"
            return
        fi
    done
    die "could not find a free port"
}

load_ports() {
    BROKER_PORT=""
    CONTROLLER_PORT=""
    if [[ -f "$PORTS_FILE" ]]; then
        BROKER_PORT="$(sed -n 's/^broker=\([0-9][0-9]*\)$/\1/p' "$PORTS_FILE")"
        CONTROLLER_PORT="$(sed -n 's/^controller=\([0-9][0-9]*\)$/\1/p' "$PORTS_FILE")"
    fi
    [[ -n "$BROKER_PORT" && -n "$CONTROLLER_PORT" ]]
}

# ensure_ports MODE: MODE=start may pick new ports if the stored ones are taken;
# MODE=restart insists on the stored ones (waits a little for them to be released).
ensure_ports() {
    local mode="$1" waited=0
    if load_ports; then
        while ! port_free "$BROKER_PORT" || ! port_free "$CONTROLLER_PORT"; do
            if [[ "$mode" == start ]]; then
                log "stored ports $BROKER_PORT/$CONTROLLER_PORT are taken by another process; picking new ones"
                BROKER_PORT=""
                break
            fi
            ((waited % 5 == 0)) && log "waiting for ports $BROKER_PORT/$CONTROLLER_PORT to be released ..."
            ((waited < 30)) || die "ports $BROKER_PORT/$CONTROLLER_PORT still in use after 30 s; cannot restart on the same ports"
            sleep 1
            waited=$((waited + 1))
        done
        [[ -n "$BROKER_PORT" ]] && return 0
    fi
    BROKER_PORT="$(free_port)"
    CONTROLLER_PORT="$(free_port)"
    while [[ "$CONTROLLER_PORT" == "$BROKER_PORT" ]]; do CONTROLLER_PORT="$(free_port)"; done
    printf 'broker=%s\ncontroller=%s\n' "$BROKER_PORT" "$CONTROLLER_PORT" >"$PORTS_FILE"
    log "using ports broker=$BROKER_PORT controller=$CONTROLLER_PORT"
}

bootstrap() { printf '127.0.0.1:%s\n' "$BROKER_PORT"; }

# ---------------------------------------------------------------------------------------
# Config and storage
write_config() {
    mkdir -p "$LOG_DIR"
    cat >"$PROPS" <<EOF
# Generated by scripts/kafka.sh - edits are overwritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${CONTROLLER_PORT}
listeners=PLAINTEXT://127.0.0.1:${BROKER_PORT},CONTROLLER://127.0.0.1:${CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${BROKER_PORT}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

log.dirs=${LOG_DIR}
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true

offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.segment.bytes=16777216
log.retention.hours=24
log.retention.check.interval.ms=60000
log.cleaner.dedupe.buffer.size=33554432
EOF
}

format_storage() {
    local cid
    if [[ -f "$LOG_DIR/meta.properties" ]]; then
        return 0
    fi
    if [[ -s "$CLUSTER_ID_FILE" ]]; then
        cid="$(cat "$CLUSTER_ID_FILE")"
    else
        cid="$(run_tool kafka.tools.StorageTool random-uuid </dev/null | tail -n1 | tr -d '[:space:]')"
        [[ -n "$cid" ]] || die "StorageTool random-uuid printed nothing"
        printf '%s\n' "$cid" >"$CLUSTER_ID_FILE"
    fi
    log "formatting KRaft storage in $LOG_DIR (cluster id $cid)"
    run_tool kafka.tools.StorageTool format -t "$cid" -c "$PROPS" </dev/null >&2 ||
        die "kafka.tools.StorageTool format failed"
}

# ---------------------------------------------------------------------------------------
# Process
proc_args() {
    if [[ -r "/proc/$1/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$1/cmdline"
    else
        ps -p "$1" -o args= 2>/dev/null || true
    fi
}

# Prints the broker's pid if it is running (pid file first, then a scan of /proc for a
# broker started with our server.properties, in case the pid file was lost).
broker_pid() {
    local pid args f
    if [[ -s "$PIDFILE" ]]; then
        pid="$(tr -cd '0-9' <"$PIDFILE")"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            args="$(proc_args "$pid")"
            if [[ "$args" == *kafka.Kafka*"$PROPS"* ]]; then
                printf '%s\n' "$pid"
                return 0
            fi
        fi
    fi
    if [[ -d /proc ]]; then
        for f in /proc/[0-9]*/cmdline; do
            pid="${f#/proc/}"
            pid="${pid%/cmdline}"
            args="$({ tr '\0' ' ' <"$f"; } 2>/dev/null || true)"
            if [[ "$args" == *" kafka.Kafka $PROPS"* ]]; then
                printf '%s\n' "$pid" >"$PIDFILE"
                printf '%s\n' "$pid"
                return 0
            fi
        done
    fi
    return 1
}

broker_ready() {
    port_open "$BROKER_PORT" && grep -q "$READY_MARKER" "$LOG" 2>/dev/null
}

show_log_tail() {
    if [[ -f "$LOG" ]]; then
        log "---- last 60 lines of $LOG ----"
        tail -n 60 "$LOG" >&2 || true
        log "---- end of $LOG ----"
    fi
}

start_broker() {
    local java pid
    java="$(java_bin)"
    [[ -f "$LOG" ]] && mv -f "$LOG" "$LOG.prev"
    log "starting Kafka $KAFKA_VERSION broker on 127.0.0.1:$BROKER_PORT (controller 127.0.0.1:$CONTROLLER_PORT), log: $LOG"
    nohup "$java" "${HEAP_OPTS[@]}" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="file:$BROKER_LOG4J" \
        -Dkafka.logs.dir="$KDIR" \
        -cp "$LIB/*" kafka.Kafka "$PROPS" \
        </dev/null >>"$LOG" 2>&1 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$PIDFILE"
}

wait_ready() {
    local pid="$1" deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log_tail
            rm -f "$PIDFILE"
            die "broker process $pid exited during startup"
        fi
        if broker_ready; then
            log "broker ready after ${SECONDS}s total"
            return 0
        fi
        sleep 0.5
    done
    show_log_tail
    log "broker not ready after ${READY_TIMEOUT}s; stopping it"
    stop_broker
    die "broker did not become ready within ${READY_TIMEOUT}s"
}

stop_broker() {
    local pid waited=0
    if ! pid="$(broker_pid)"; then
        rm -f "$PIDFILE"
        log "broker not running"
        return 0
    fi
    log "stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= STOP_TIMEOUT * 2)); then
            log "broker still running after ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    # Wait for a SIGKILLed process to really be gone (bounded).
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -0 "$pid" 2>/dev/null && die "broker pid $pid did not exit"
    rm -f "$PIDFILE"
    log "broker stopped"
}

# ---------------------------------------------------------------------------------------
# Commands
cmd_start() {
    local pid
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        log "KAFKA_BOOTSTRAP_SERVERS is set; using that broker"
        printf '%s\n' "$KAFKA_BOOTSTRAP_SERVERS"
        return 0
    fi
    take_lock
    if pid="$(broker_pid)" && load_ports; then
        log "broker already running (pid $pid)"
        wait_ready "$pid"
    else
        fetch_jars
        ensure_ports start
        write_config
        format_storage
        start_broker
        wait_ready "$(cat "$PIDFILE")"
    fi
    bootstrap >"$BOOTSTRAP_FILE"
    bootstrap
}

cmd_stop() {
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        log "KAFKA_BOOTSTRAP_SERVERS is set; not stopping an external broker"
        return 0
    fi
    take_lock
    stop_broker
}

cmd_status() {
    local pid
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        printf '%s\n' "$KAFKA_BOOTSTRAP_SERVERS"
        return 0
    fi
    if pid="$(broker_pid)" && load_ports && broker_ready; then
        log "broker running (pid $pid)"
        bootstrap
        return 0
    fi
    log "broker not running"
    return 1
}

cmd_restart() {
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        log "error: KAFKA_BOOTSTRAP_SERVERS is set; cannot restart an external broker"
        exit 2
    fi
    take_lock
    fetch_jars
    stop_broker
    ensure_ports restart
    write_config
    format_storage
    start_broker
    wait_ready "$(cat "$PIDFILE")"
    bootstrap >"$BOOTSTRAP_FILE"
    bootstrap
}

cmd_clean() {
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        log "KAFKA_BOOTSTRAP_SERVERS is set; nothing to clean"
        return 0
    fi
    take_lock
    stop_broker
    rm -rf "$DATA" "$PROPS" "$CLUSTER_ID_FILE" "$PORTS_FILE" "$BOOTSTRAP_FILE" "$LOG" "$LOG.prev"
    log "removed broker data and config (jars kept in $LIB)"
}

usage() {
    sed -n '2,/^set -euo pipefail/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    restart-broker | restart) cmd_restart ;;
    clean) cmd_clean ;;
    classpath)
        take_lock
        fetch_jars
        release_lock
        printf '%s\n' "$LIB/*"
        ;;
    run-class)
        [[ $# -ge 1 ]] || die "usage: $0 run-class CLASS [ARGS...]"
        take_lock
        fetch_jars
        release_lock
        run_tool "$@"
        ;;
    -h | --help | help)
        usage
        ;;
    *)
        usage
        exit 64
        ;;
    esac
}

main "$@"
