#!/usr/bin/env bash
# Every benchmark, release build. Results are recorded by hand in BENCHMARKS.md with the
# machine they ran on; nothing here is a pass/fail test.
#
#   scripts/bench.sh [RECORDS] [SECTION...]
#   scripts/bench.sh --smoke        (CI: the throughput section on 2,000 records, one run,
#                                    and the latency section on 20 STOPs at linger_ms 5;
#                                    debug build; it proves the script works, not the speed)
#
# Sections (default: all five, in this order):
#   throughput         Kafka mode, the figures of issue 13, each the median of
#                      KAFKA_BENCH_RUNS runs (3), references measured in the same run:
#                      reference A (kcat -C -e -q -o beginning to /dev/null, librdkafka
#                      defaults), reference B (benches/kafka_reference.rs: run's consumer
#                      settings, a serde_json::Value decode per record) and `run`, all three
#                      on THROUGHPUT_RECORDS (1,000,000) webhooks of the `chat` mix (2% consent
#                      keywords over 200,000 mobiles, 3 partitions); then `run` on
#                      THROUGHPUT_STOPS (100,000) records that are each a new STOP: durable
#                      opt-out events/s, the ledger's bytes per event, and `verify` on that
#                      ledger. Prints a markdown report. Installs kcat (Debian package) if it
#                      can; without it, reference A is left out and said so.
#   ingest             file-mode ingest of RECORDS webhooks (default 200000), batch sizes
#                      100 / 1000 / 5000 (benches/ingest.rs)
#   check              the HTTP audience check on 1,000,000 contacts (scripts/bench-check.sh)
#   webhooks           latency of the WhatsApp receiver under `serve` (p50/p95/p99) for
#                      WEBHOOK_BENCH_REQUESTS signed webhooks (default 5000) from 1, 16 and
#                      64 concurrent clients (benches/webhook_latency.rs)
#   kafka-deadletters  Kafka mode, `consent-ledger run`, on an all-good stream and on a stream
#                      with 50% records it must dead-letter; prints the ratio of their rates
#                      (target >= 0.5) as a markdown table. Needs Java and Maven for the
#                      project's broker (scripts/kafka.sh), or KAFKA_BOOTSTRAP_SERVERS.
#   kafka-burst        Kafka mode under a burst (not in the default set): measures the
#                      sustained rate of `run` on an all-good backlog, then produces at 10
#                      times that rate for 60 s to a topic a running service reads, and samples
#                      the service's memory (RSS), records read and consumer lag every second
#                      during the burst and the 60 s after it; then stops it with SIGTERM.
#   stores             the storage engines side by side (not in the default set): a ledger
#                      written by file-mode `ingest` of STORES_STOPS (100,000) new STOPs in
#                      batches of STORES_BATCH (500, `run`'s batch size), then its rows replayed
#                      into fresh sled, fjall and redb stores, each batch one atomic write
#                      fsynced before the next (benches/stores, a crate of its own with its own
#                      target dir); KAFKA_BENCH_RUNS runs (3), each figure their median. Prints
#                      the logical bytes per tree and a markdown table per engine.
#   latency            Kafka mode (not in the default set: about a minute per linger value):
#                      STOP to `may_send:false` on the HTTP API of `run --listen`, with
#                      LATENCY_CHAT_RATE (5000) chat webhooks/s of other traffic and
#                      LATENCY_STOPS (1000) STOPs from new numbers (benches/stop_latency.rs):
#                      p50, p99, p99.9 and the service's CPU, once per `[kafka] linger_ms` of
#                      LATENCY_LINGERS ("50 5 1"); then `run` on a backlog of
#                      LATENCY_BACKLOG (200000) chat webhooks at each linger. LATENCY_VIA=feed
#                      awaits each STOP through the event feed instead of polling (see the bench).
#   scale              scale-out (not in the default set): SCALE_RECORDS (300,000) webhooks of
#                      the `chat` mix on a 6-partition topic, read by one `run` with
#                      `scale_out = true`, then by two such instances in one group (each its
#                      own data dir, the same keys), KAFKA_BENCH_RUNS runs (3) each, and one
#                      `run` without scale-out for reference; records/s until every record is
#                      read and, with two instances, until both views hold every event. Then
#                      STOP to `may_send:false` polled on the API of one of two instances
#                      (so half the STOPs are written by the other), as the latency section
#                      measures it, LATENCY_STOPS STOPs under LATENCY_CHAT_RATE chat/s.
#   peer               the PostgreSQL peer of issue 13 (not in the default set): a Python
#                      consumer (scripts/pg_peer.py, confluent-kafka) upserting consent
#                      keywords into PostgreSQL 15 (fsync and synchronous_commit on), one
#                      transaction per batch of 500, offsets committed after it; on the
#                      throughput section's topics (THROUGHPUT_RECORDS chat webhooks and
#                      THROUGHPUT_STOPS STOPs, the same generator and seed), PEER_RUNS (1)
#                      runs. Installs postgresql-15 (Debian) if missing, and confluent-kafka
#                      and psycopg[binary] (PyPI) into a venv in the work dir; runs a
#                      throwaway cluster as the postgres user on a socket in a temp dir.
#                      With `throughput` in the same call, the peer runs inside its runs
#                      (KAFKA_BENCH_RUNS) and its report gains the ratio run / peer.
#
# Knobs of kafka-deadletters: KAFKA_BENCH_RECORDS (default 20000 per stream),
# KAFKA_BENCH_RUNS (default 3; each figure is their median), KAFKA_BENCH_BAD_PERCENT (50).
# Knobs of kafka-burst: KAFKA_BENCH_RECORDS (the sustained-rate backlog, 20000),
# KAFKA_BURST_FACTOR (10), KAFKA_BURST_SECONDS (60), KAFKA_BURST_DRAIN_SECONDS (60).
# The release binary is built into $CARGO_TARGET_DIR (default target/), unless
# CONSENT_LEDGER_BIN names one (an older commit's build, to compare against).
set -euo pipefail
cd "$(dirname "$0")/.."

records=200000
sections=()
SMOKE=
for arg in "$@"; do
  case "$arg" in
  [0-9]*) records=$arg ;;
  ingest | check | webhooks | kafka-deadletters | kafka-burst | throughput | stores | latency | scale | peer) sections+=("$arg") ;;
  --smoke)
    SMOKE=1
    sections+=(throughput latency)
    ;;
  *)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 64
    ;;
  esac
done
[ ${#sections[@]} -gt 0 ] || sections=(throughput ingest check webhooks kafka-deadletters)

bench_ingest() {
  echo "==> file-mode ingest, batch sizes 100 / 1000 / 5000 ($records records)" >&2
  for batch in 100 1000 5000; do
    cargo bench --quiet --bench ingest -- "$records" "$batch"
  done
}

bench_webhooks() {
  local n=${WEBHOOK_BENCH_REQUESTS:-5000}
  echo "==> WhatsApp receiver latency under serve ($n signed webhooks)" >&2
  for clients in 1 16 64; do
    cargo bench --quiet --bench webhook_latency -- "$n" "$clients"
  done
}

bench_check() {
  echo "==> HTTP audience check (1,000,000 contacts)" >&2
  scripts/bench-check.sh
}

# ---------------------------------------------------------------------------------------
# stores: is the store what stands between the ledger and issue 13's durable events/s and disk
# per event? The same rows, written by each engine with the same durability (BENCHMARKS.md,
# "The store, side by side"). The ingest's own rate is printed too: the whole pipeline.

bench_stores() {
  local stops=${STORES_STOPS:-100000} batch=${STORES_BATCH:-500} runs=${KAFKA_BENCH_RUNS:-3}
  local bin=${CONSENT_LEDGER_BIN:-${CARGO_TARGET_DIR:-target}/release/consent-ledger}
  [ -n "${CONSENT_LEDGER_BIN:-}" ] || cargo build --release --quiet --bin consent-ledger
  CARGO_TARGET_DIR=benches/stores/target \
    cargo build --release --quiet --manifest-path benches/stores/Cargo.toml
  trap kafka_cleanup EXIT
  [ -n "$KWORK" ] || KWORK=$(mktemp -d)
  local work=$KWORK/stores t0
  mkdir -p "$work"
  echo "==> stores: $stops new STOPs, batches of $batch, sled / fjall / redb, $runs runs" >&2
  bench_bin kafka_traffic --stdout --records "$stops" --mix stops --seed 1 >"$work/stops.jsonl"
  echo "batch_size = $batch" >"$work/config.toml"
  machine_line
  t0=$(now)
  "$bin" --data-dir "$work/data" --config "$work/config.toml" ingest "$work/stops.jsonl" \
    >/dev/null 2>"$work/ingest.err" || { cat "$work/ingest.err" >&2; exit 1; }
  awk -v a="$t0" -v b="$(now)" -v n="$stops" 'BEGIN { printf "file-mode ingest of the STOPs (the whole pipeline): %.2f s, %.0f events/s\n\n", b - a, n / (b - a) }'
  benches/stores/target/release/consent-ledger-stores-bench "$work/data/ledger" \
    --batch "$batch" --runs "$runs" --work "$work/replay"
  echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  rm -rf "$work"
}

# ---------------------------------------------------------------------------------------
# kafka-deadletters: the time `run` takes to read every record of a stream (from the moment
# its consumer has partitions, /readyz, to /metrics' consent_ledger_records_read_total = N;
# a record counts as read once its batch is durable and its dead letters acknowledged).
# Each run has a fresh data dir, consumer group and output topics; the input topics are
# produced once by benches/kafka_traffic.rs and read by every run.

KAFKA_STARTED=
SERVICE_PID=
KWORK=
kafka_cleanup() {
  if [ -n "$SERVICE_PID" ]; then
    kill -TERM "$SERVICE_PID" 2>/dev/null || true
    wait "$SERVICE_PID" 2>/dev/null || true
  fi
  if [ -n "$KAFKA_STARTED" ]; then scripts/kafka.sh stop || true; fi
  if [ -n "$KWORK" ]; then rm -rf "$KWORK"; fi
}

now() { date +%s.%N; }

# The machine, day and commit a section's numbers come from, and how loaded it was: every
# section says it, since each may be run alone (BENCHMARKS.md states numbers with them).
machine_line() {
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); $(date -u +%Y-%m-%d); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); load average $(cut -d' ' -f1-3 /proc/loadavg) before the runs" >&2
}

# metric NAME: the sum of a counter's samples on the service's /metrics (0 if absent).
metric() {
  { curl -sf "http://$ADDR/metrics" || true; } | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }'
}

# start_service TOPIC: starts a release `run` with a fresh data dir, consumer group and output
# topics, reading TOPIC; sets SERVICE_PID, ADDR and RUN_DIR once it listens.
# SERVICE_KAFKA_LINES and SERVICE_EXTRA_TOML, when set, add lines to the config's [kafka]
# table and to its end (the latency section's linger_ms and API token).
start_service() {
  local topic=$1 id
  RUN_DIR="$KWORK/run-$RANDOM$RANDOM"
  mkdir -p "$RUN_DIR"
  # SERVICE_ID, when set, names the group and the output topics instead of the run dir, so
  # that several instances share them (the scale section).
  id=${SERVICE_ID:-$(basename "$RUN_DIR")}
  cat >"$RUN_DIR/config.toml" <<EOF
[kafka]
bootstrap_servers = "$BOOTSTRAP"
group_id = "bench-$id"
partitions = 3
${SERVICE_KAFKA_LINES:-}

[kafka.topics]
inbound = "$topic"
sent = "bench.sent.$id"
consent_events = "bench.events.$id"
outbound = "bench.outbound.$id"
dead_letter = "bench.dlq.$id"
${SERVICE_EXTRA_TOML:-}
EOF
  # The files exist before the service starts: the background process opens its redirections
  # only once it is scheduled, and the loop below must not read a file that is not there yet
  # (under load, it did: CI at 00cda89 stopped on "sed: can't read …/out").
  : >"$RUN_DIR/out"
  : >"$RUN_DIR/err"
  "$BIN" --data-dir "$RUN_DIR/data" --config "$RUN_DIR/config.toml" run --listen 127.0.0.1:0 \
    >>"$RUN_DIR/out" 2>>"$RUN_DIR/err" &
  SERVICE_PID=$!
  ADDR=
  for _ in $(seq 300); do
    ADDR=$(sed -n 's/^listening on //p' "$RUN_DIR/out")
    [ -n "$ADDR" ] && break
    sleep 0.1
  done
  [ -n "$ADDR" ] || { tail -n 20 "$RUN_DIR/err" >&2; exit 1; }
}

# measure NAME TOPIC: runs the service on TOPIC until it read every record; appends
# "NAME SECONDS" to $KWORK/results and prints the run on stderr.
measure() {
  local name=$1 topic=$2
  local started ready done_at got=0
  started=$(now)
  start_service "$topic"
  local dir=$RUN_DIR
  until curl -sf -o /dev/null "http://$ADDR/readyz"; do
    kill -0 "$SERVICE_PID" 2>/dev/null || { tail -n 20 "$dir/err" >&2; exit 1; }
    sleep 0.05
  done
  ready=$(now)
  local deadline=$((SECONDS + 900))
  while :; do
    got=$(metric consent_ledger_records_read_total)
    [ "$got" -ge "$N" ] && break
    if ((SECONDS > deadline)) || ! kill -0 "$SERVICE_PID" 2>/dev/null; then
      echo "kafka-deadletters: $name: $got of $N records read; service log:" >&2
      tail -n 20 "$dir/err" >&2
      exit 1
    fi
    sleep 0.05
  done
  done_at=$(now)
  local dead hwm events
  dead=$(metric consent_ledger_dead_lettered_total)
  events=$(metric consent_ledger_events_appended_total)
  hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVICE_PID/status" 2>/dev/null || echo 0)
  kill -TERM "$SERVICE_PID"
  wait "$SERVICE_PID" || true
  SERVICE_PID=
  # What the throughput section reports besides the time: peak memory, the ledger's size,
  # the events written, and (MEASURE_VERIFY=1) the time `verify` takes on that ledger.
  local verify=0 t
  if [ -n "${MEASURE_VERIFY:-}" ]; then
    t=$(now)
    "$BIN" --data-dir "$dir/data" verify >/dev/null
    verify=$(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
  fi
  echo "$name $hwm $(du -sb "$dir/data/ledger" | cut -f1) $events $verify" >>"$KWORK/extra"
  rm -rf "$dir/data"
  awk -v n="$name" -v r="$ready" -v d="$done_at" 'BEGIN { printf "%s %.3f\n", n, d - r }' >>"$KWORK/results"
  awk -v n="$name" -v s="$started" -v r="$ready" -v d="$done_at" -v N="$N" -v dl="$dead" \
    'BEGIN { printf "  %-8s %6d records in %6.2f s = %6.0f records/s (%d dead-lettered; %.1f s from start to partitions assigned)\n", n, N, d - r, N / (d - r), dl, r - s }' >&2
}

# kafka_setup: the broker, the release binary and a work dir, shared by the Kafka sections.
kafka_setup() {
  local profile=release
  [ -z "$SMOKE" ] || profile=debug
  BIN=${CONSENT_LEDGER_BIN:-${CARGO_TARGET_DIR:-target}/$profile/consent-ledger}
  for tool in curl awk; do
    command -v "$tool" >/dev/null || { echo "bench: needs $tool" >&2; exit 2; }
  done
  trap kafka_cleanup EXIT
  [ -n "$KWORK" ] || KWORK=$(mktemp -d)
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    BOOTSTRAP=$KAFKA_BOOTSTRAP_SERVERS
  else
    if ! scripts/kafka.sh status >/dev/null 2>&1; then KAFKA_STARTED=1; fi
    BOOTSTRAP=$(scripts/kafka.sh start | tail -n 1)
  fi
  if [ -z "${CONSENT_LEDGER_BIN:-}" ]; then
    # Under --smoke, the binary the tests were built with, as it is: `cargo build` would
    # build it again with the dependencies' features of a non-test build (minutes in CI).
    if [ -z "$SMOKE" ]; then
      cargo build --release --quiet --bin consent-ledger
    elif [ ! -x "$BIN" ]; then
      cargo test --no-run --quiet
    fi
  fi
  echo "binary: $BIN" >&2
}

bench_kafka_deadletters() {
  N=${KAFKA_BENCH_RECORDS:-20000}
  local runs=${KAFKA_BENCH_RUNS:-3} bad=${KAFKA_BENCH_BAD_PERCENT:-50}
  kafka_setup
  echo "==> Kafka mode: dead letters ($N records per stream, $bad% bad, $runs runs, broker $BOOTSTRAP)" >&2
  local suffix good_topic bad_topic
  suffix=$(date +%Y%m%d%H%M%S)-$$
  good_topic=bench.good.$suffix
  bad_topic=bench.bad$bad.$suffix
  cargo bench --quiet --bench kafka_traffic -- --bootstrap "$BOOTSTRAP" --topic "$good_topic" \
    --records "$N" --partitions 3 --bad-percent 0 --seed 1
  cargo bench --quiet --bench kafka_traffic -- --bootstrap "$BOOTSTRAP" --topic "$bad_topic" \
    --records "$N" --partitions 3 --bad-percent "$bad" --seed 1
  machine_line
  for run in $(seq "$runs"); do
    echo "run $run:" >&2
    measure good "$good_topic"
    measure bad "$bad_topic"
  done
  echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  # The table: each run's seconds, the median, its rate, and the ratio of the rates.
  awk -v n="$N" -v bad="$bad" -v runs="$runs" '
    { t[$1] = t[$1] (t[$1] == "" ? "" : " ") $2 }
    function median(list,   a, k, i, j, x) {
      k = split(list, a, " ")
      for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
      return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    function row(label, list,   a, k, i, s, m) {
      k = split(list, a, " "); s = ""
      for (i = 1; i <= k; i++) s = s sprintf(" %.2f s |", a[i])
      m = median(list)
      printf "| %s |%s **%.2f s** | %.0f |\n", label, s, m, n / m
      return n / m
    }
    END {
      head = "| stream (" n " records, 3 partitions) |"; sep = "|---|"
      for (i = 1; i <= runs; i++) { head = head " run " i " |"; sep = sep "---|" }
      print head " median | records/s |"; print sep "---|---|"
      g = row("all good", t["good"])
      b = row(bad "% bad", t["bad"])
      printf "\nratio (%d%%-bad rate / all-good rate): **%.2f** (target >= 0.5)\n", bad, b / g
    }' "$KWORK/results"
}

# ---------------------------------------------------------------------------------------
# kafka-burst: backpressure. The service must read a burst far above what it can sustain
# without holding the backlog in memory: the backlog stays on the broker, and the process's
# RSS must stay bounded however long the burst.

# sample PID: one line a second while PID runs: time, VmRSS and VmHWM (KiB), records read,
# consumer lag summed over the inbound partitions.
sample() {
  local status=/proc/$1/status
  while [ -r "$status" ]; do
    echo "$(now) $(awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { print r + 0, h + 0 }' "$status" 2>/dev/null) $(metric consent_ledger_records_read_total) $(metric consent_ledger_consumer_lag)"
    sleep 1
  done
}

bench_kafka_burst() {
  N=${KAFKA_BENCH_RECORDS:-20000}
  local factor=${KAFKA_BURST_FACTOR:-10} seconds=${KAFKA_BURST_SECONDS:-60}
  local drain=${KAFKA_BURST_DRAIN_SECONDS:-60}
  kafka_setup
  local suffix sustained burst
  suffix=$(date +%Y%m%d%H%M%S)-$$
  sustained=bench.sustained.$suffix
  burst=bench.burst.$suffix
  echo "==> Kafka mode: a burst at ${factor}x the sustained rate for ${seconds} s (broker $BOOTSTRAP)" >&2
  machine_line
  cargo bench --quiet --bench kafka_traffic -- --bootstrap "$BOOTSTRAP" --topic "$sustained" \
    --records "$N" --partitions 3 --seed 1
  measure sustained "$sustained"
  local rate
  rate=$(awk -v n="$N" '$1 == "sustained" { s = $2 } END { printf "%d", n / s }' "$KWORK/results")
  local burst_rate=$((rate * factor))
  local total=$((burst_rate * seconds))
  echo "sustained: $rate records/s; burst: $burst_rate records/s for $seconds s ($total records)" >&2

  # The service runs first, on the topic the generator creates when the burst starts.
  start_service "$burst"
  local dir=$RUN_DIR
  sample "$SERVICE_PID" >"$KWORK/samples" &
  local sampler=$! t0 t1 t2 stopped code=0
  sleep 3
  t0=$(now)
  cargo bench --quiet --bench kafka_traffic -- --bootstrap "$BOOTSTRAP" --topic "$burst" \
    --records "$total" --partitions 3 --seed 2 --rate "$burst_rate"
  t1=$(now)
  sleep "$drain"
  t2=$(now)
  kill -TERM "$SERVICE_PID"
  wait "$SERVICE_PID" || code=$?
  stopped=$(now)
  SERVICE_PID=
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  rm -rf "$dir/data"
  echo "SIGTERM with the backlog: exit code $code after $(awk -v a="$t2" -v b="$stopped" 'BEGIN { printf "%.1f", b - a }') s" >&2
  echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  # A row every 10 s from the burst's start, then the peaks.
  awk -v t0="$t0" -v t1="$t1" '
    BEGIN { last = -1; print "| since the burst started | phase | RSS | records read | consumer lag |"; print "|---|---|---|---|---|" }
    {
      t = $1 - t0; rss = $2 / 1024; if ($3 / 1024 > hwm) hwm = $3 / 1024
      if (t < 0) { base = rss; next }
      burst = t <= t1 - t0
      if (burst && rss > peak_burst) peak_burst = rss
      if (!burst && rss > peak_drain) peak_drain = rss
      step = burst ? 10 : 30
      if (int(t / step) != last) {
        last = int(t / step)
        printf "| %3.0f s | %s | %.1f MiB | %d | %d |\n", t, burst ? "burst" : "drain", rss, $4, $5
      }
    }
    END { printf "\nRSS before the burst %.1f MiB; peak %.1f MiB during the burst (sent in %.1f s), %.1f MiB after it; VmHWM %.1f MiB\n", base, peak_burst, t1 - t0, peak_drain, hwm }' "$KWORK/samples"
}

# ---------------------------------------------------------------------------------------
# throughput: `run` against two references on the same topic, in the same run, alternating.

# bench_bin NAME ARGS...: a harness of benches/ (release; under --smoke, the debug build
# that `cargo test` makes, which scripts/test.sh compiles with the tests).
bench_bin() {
  local name=$1
  shift
  if [ -n "$SMOKE" ]; then
    cargo test --quiet --bench "$name" -- "$@"
  else
    cargo bench --quiet --bench "$name" -- "$@"
  fi
}

# kcat for reference A: Debian's package, installed if this user can.
find_kcat() {
  command -v kcat >/dev/null && return 0
  local sudo=
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  echo "bench: installing kcat (Debian package) for reference A" >&2
  { $sudo apt-get install -y -qq kcat || { $sudo apt-get update -qq && $sudo apt-get install -y -qq kcat; }; } >/dev/null 2>&1 || true
  command -v kcat >/dev/null
}

bench_throughput() {
  N=${THROUGHPUT_RECORDS:-1000000}
  local stops=${THROUGHPUT_STOPS:-100000} runs=${KAFKA_BENCH_RUNS:-3}
  if [ -n "$SMOKE" ]; then N=2000 stops=500 runs=1; fi
  kafka_setup
  local kcat=1
  find_kcat || { kcat=; echo "bench: no kcat; reference A is left out" >&2; }
  local suffix chat_topic stops_topic
  suffix=$(date +%Y%m%d%H%M%S)-$$
  chat_topic=bench.chat.$suffix
  stops_topic=bench.stops.$suffix
  echo "==> throughput: $N chat webhooks and $stops STOPs, 3 partitions, $runs runs (broker $BOOTSTRAP)" >&2
  bench_bin kafka_traffic --bootstrap "$BOOTSTRAP" --topic "$chat_topic" --records "$N" \
    --partitions 3 --mix chat --seed 1
  bench_bin kafka_traffic --bootstrap "$BOOTSTRAP" --topic "$stops_topic" --records "$stops" \
    --partitions 3 --mix stops --seed 1
  bench_bin kafka_reference --bootstrap "$BOOTSTRAP" --topic "$chat_topic" --records 1 >/dev/null
  machine_line
  local run t0 line
  for run in $(seq "$runs"); do
    echo "run $run:" >&2
    if [ -n "$kcat" ]; then
      t0=$(now)
      kcat -b "$BOOTSTRAP" -C -e -q -o beginning -t "$chat_topic" >/dev/null
      awk -v a="$t0" -v b="$(now)" -v n="$N" 'BEGIN { printf "  refA     %6d records in %6.2f s = %7.0f records/s\n", n, b - a, n / (b - a) }' >&2
      awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "refA %.3f\n", b - a }' >>"$KWORK/results"
    fi
    line=$(bench_bin kafka_reference --bootstrap "$BOOTSTRAP" --topic "$chat_topic" --records "$N")
    awk -v n="$N" '{ printf "  refB     %6d records in %6.2f s = %7.0f records/s\n", n, $5, n / $5 }' <<<"$line" >&2
    awk '{ print "refB", $5 }' <<<"$line" >>"$KWORK/results"
    measure run "$chat_topic"
    MEASURE_VERIFY=1 N=$stops measure stops "$stops_topic"
    if [[ " ${sections[*]} " == *" peer "* ]]; then peer_run "$chat_topic" "$stops_topic"; fi
  done
  echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  awk -v n="$N" -v stops="$stops" -v runs="$runs" '
    FILENAME ~ /results$/ { t[$1] = t[$1] (t[$1] == "" ? "" : " ") $2; next }
    { hwm[$1] = hwm[$1] " " $2; disk[$1] = disk[$1] " " $3; ev[$1] = ev[$1] " " $4; ver[$1] = ver[$1] " " $5 }
    function median(list,   a, k, i, j, x) {
      k = split(list, a, " ")
      for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
      return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    function cells(list,   a, k, i, s) {
      k = split(list, a, " "); s = ""
      for (i = 1; i <= k; i++) s = s sprintf(" %.2f s |", a[i])
      return s
    }
    END {
      head = "| reader (" n " chat webhooks, 3 partitions) |"; sep = "|---|"
      for (i = 1; i <= runs; i++) { head = head " run " i " |"; sep = sep "---|" }
      print head " median | records/s |"; print sep "---|---|"
      if ("refA" in t) { a = n / median(t["refA"]); printf "| reference A: kcat to /dev/null |%s **%.2f s** | %.0f |\n", cells(t["refA"]), median(t["refA"]), a }
      b = n / median(t["refB"]); printf "| reference B: rdkafka + serde_json::Value |%s **%.2f s** | %.0f |\n", cells(t["refB"]), median(t["refB"]), b
      r = n / median(t["run"]); printf "| `consent-ledger run` |%s **%.2f s** | %.0f |\n", cells(t["run"]), median(t["run"]), r
      printf "| `run`, %d new STOPs |%s **%.2f s** | %.0f durable events/s |\n", stops, cells(t["stops"]), median(t["stops"]), median(ev["stops"]) / median(t["stops"])
      print ""
      if ("refA" in t) printf "ratio run / A: **%.3f** (target >= 0.25)  \n", r / a
      printf "ratio run / B: **%.3f** (target >= 0.5)  \n", r / b
      printf "durable opt-out events/s: **%.0f** (target >= 20,000)  \n", median(ev["stops"]) / median(t["stops"])
      if ("peer" in t) printf "PostgreSQL peer: %.0f records/s, %.0f durable upserts/s, %.0f bytes per row; ratio run / peer: **%.2f** (target >= 10)  \n", n / median(t["peer"]), stops / median(t["peerstops"]), median(disk["peerstops"]) / median(ev["peerstops"]), median(t["peer"]) / median(t["run"])
      printf "ledger after the chat stream: %.1f MB for %d events (%.0f bytes per event); peak RSS of run %.0f MiB  \n", median(disk["run"]) / 1e6, median(ev["run"]), median(disk["run"]) / (median(ev["run"]) > 0 ? median(ev["run"]) : 1), median(hwm["run"]) / 1024
      printf "ledger after the STOPs: %.1f MB for %d events: **%.0f bytes per event** (target <= 1,000); peak RSS %.0f MiB  \n", median(disk["stops"]) / 1e6, median(ev["stops"]), median(disk["stops"]) / median(ev["stops"]), median(hwm["stops"]) / 1024
      printf "verify of that ledger (%d events): %.2f s, %.0f events/s (target: 1,000,000 in < 10 s)\n", median(ev["stops"]), median(ver["stops"]), median(ev["stops"]) / median(ver["stops"])
    }' "$KWORK/results" "$KWORK/extra"
}

# ---------------------------------------------------------------------------------------
# latency: STOP to may_send:false on the API of the same `run`, under steady chat traffic.
# The trade-off is `[kafka] linger_ms`: a batch waits up to that long to fill before it is
# committed, and nothing is visible on the API before its batch commits.

bench_latency() {
  local stops=${LATENCY_STOPS:-1000} rate=${LATENCY_CHAT_RATE:-5000}
  local lingers=${LATENCY_LINGERS:-50 5 1} via=${LATENCY_VIA:-poll}
  local backlog=${LATENCY_BACKLOG:-200000}
  if [ -n "$SMOKE" ]; then stops=20 rate=500 lingers=5 backlog=2000; fi
  kafka_setup
  if [ -z "$SMOKE" ]; then cargo bench --quiet --no-run --bench stop_latency 2>/dev/null; fi
  local token hash suffix backlog_topic linger topic
  token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  hash=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
  suffix=$(date +%Y%m%d%H%M%S)-$$
  backlog_topic=bench.backlog.$suffix
  echo "==> latency: $stops STOPs under $rate chat webhooks/s, linger_ms $lingers; then $backlog chat webhooks as a backlog (broker $BOOTSTRAP)" >&2
  bench_bin kafka_traffic --bootstrap "$BOOTSTRAP" --topic "$backlog_topic" --records "$backlog" \
    --partitions 3 --mix chat --seed 1
  machine_line
  for linger in $lingers; do
    topic=bench.latency.$suffix.$linger
    # An empty topic, so that the service has its partitions before the traffic starts.
    bench_bin kafka_traffic --bootstrap "$BOOTSTRAP" --topic "$topic" --records 0 --partitions 3 2>/dev/null
    SERVICE_KAFKA_LINES="linger_ms = $linger" SERVICE_EXTRA_TOML="[api]
admin_tokens_sha256 = [\"$hash\"]" start_service "$topic"
    local dir=$RUN_DIR
    until curl -sf -o /dev/null "http://$ADDR/readyz"; do
      kill -0 "$SERVICE_PID" 2>/dev/null || { tail -n 20 "$dir/err" >&2; exit 1; }
      sleep 0.05
    done
    bench_bin stop_latency --bootstrap "$BOOTSTRAP" --topic "$topic" --api "http://$ADDR" \
      --token "$token" --pid "$SERVICE_PID" --stops "$stops" --chat-rate "$rate" --via "$via" \
      --label "linger_ms = $linger"
    kill -TERM "$SERVICE_PID"
    wait "$SERVICE_PID" || true
    SERVICE_PID=
    rm -rf "$dir/data"
    N=$backlog SERVICE_KAFKA_LINES="linger_ms = $linger" measure "linger$linger" "$backlog_topic"
  done
  echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
}

# ---------------------------------------------------------------------------------------
# scale: one instance against two, Kafka as the record.

# scale_run NAME TOPIC INSTANCES [SCALE_OUT]: INSTANCES `run` processes in one group on TOPIC;
# appends "NAME SECONDS" (until every record is read and every view holds every event).
scale_run() {
  local name=$1 topic=$2 count=$3 scaled=${4:-true} id pids=() addrs=() dirs=() i
  id="scale-$RANDOM$RANDOM"
  for i in $(seq "$count"); do
    SERVICE_ID=$id SERVICE_KAFKA_LINES="scale_out = $scaled
instance_id = \"$id-$i\"" SERVICE_EXTRA_TOML="ledger = \"bench.ledger.$id\"
keys = \"bench.keys.$id\"" start_service "$topic"
    pids+=("$SERVICE_PID") addrs+=("$ADDR") dirs+=("$RUN_DIR")
    SERVICE_PID=
  done
  local started got events views deadline=$((SECONDS + 1200))
  for i in "${!addrs[@]}"; do
    until curl -sf -o /dev/null "http://${addrs[$i]}/readyz"; do sleep 0.05; done
  done
  started=$(now)
  while :; do
    got=0 events=0 views=
    for i in "${!addrs[@]}"; do
      ADDR=${addrs[$i]}
      got=$((got + $(metric consent_ledger_records_read_total)))
      events=$((events + $(metric consent_ledger_events_appended_total)))
    done
    if [ "$got" -ge "$N" ]; then
      views=1
      for i in "${!addrs[@]}"; do
        ADDR=${addrs[$i]}
        [ "$(($(metric consent_ledger_events_appended_total) + $(metric consent_ledger_events_adopted_total)))" -ge "$events" ] || views=
      done
      [ -n "$views" ] && break
    fi
    ((SECONDS < deadline)) || { echo "scale: $name: $got of $N read" >&2; exit 1; }
    sleep 0.05
  done
  awk -v n="$name" -v a="$started" -v b="$(now)" 'BEGIN { printf "%s %.3f\n", n, b - a }' >>"$KWORK/results"
  awk -v n="$name" -v a="$started" -v b="$(now)" -v N="$N" -v e="$events" \
    'BEGIN { printf "  %-10s %6d records in %6.2f s = %6.0f records/s (%d events)\n", n, N, b - a, N / (b - a), e }' >&2
  for i in "${!pids[@]}"; do kill -TERM "${pids[$i]}"; done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || true; rm -rf "${dirs[$i]}/data"; done
}

bench_scale() {
  N=${SCALE_RECORDS:-300000}
  local runs=${KAFKA_BENCH_RUNS:-3} stops=${LATENCY_STOPS:-1000} rate=${LATENCY_CHAT_RATE:-5000}
  if [ -n "$SMOKE" ]; then N=2000 runs=1 stops=20 rate=500; fi
  kafka_setup
  if [ -z "$SMOKE" ]; then cargo bench --quiet --no-run --bench stop_latency 2>/dev/null; fi
  export CONSENT_LEDGER_MASTER_KEY CONSENT_LEDGER_SIGNING_KEY
  CONSENT_LEDGER_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
  CONSENT_LEDGER_SIGNING_KEY=$(head -c 32 /dev/urandom | base64)
  local suffix topic run
  suffix=$(date +%Y%m%d%H%M%S)-$$
  topic=bench.scale.$suffix
  echo "==> scale: $N chat webhooks, 6 partitions, one instance against two, $runs runs (broker $BOOTSTRAP)" >&2
  bench_bin kafka_traffic --bootstrap "$BOOTSTRAP" --topic "$topic" --records "$N" \
    --partitions 6 --mix chat --seed 1
  machine_line
  for run in $(seq "$runs"); do
    echo "run $run:" >&2
    scale_run single "$topic" 1 false
    scale_run one "$topic" 1
    scale_run two "$topic" 2
  done
  awk -v n="$N" '
    { t[$1] = t[$1] " " $2 }
    function median(list,   a, k, i, j, x) {
      k = split(list, a, " ")
      for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
      return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    END {
      print "| readers of " n " chat webhooks (6 partitions) | runs (s) | median | records/s |"
      print "|---|---|---|---|"
      printf "| one `run`, scale_out off (local record) |%s | **%.2f s** | %.0f |\n", t["single"], median(t["single"]), n / median(t["single"])
      printf "| one `run`, scale_out on |%s | **%.2f s** | %.0f |\n", t["one"], median(t["one"]), n / median(t["one"])
      printf "| two `run`, scale_out on, one group |%s | **%.2f s** | %.0f |\n", t["two"], median(t["two"]), n / median(t["two"])
      printf "\ntwo instances / one: **%.2f**\n", median(t["one"]) / median(t["two"])
    }' "$KWORK/results"
  # STOP to may_send:false on one instance of two: half the STOPs are the other's.
  local latency_topic=bench.scale-latency.$suffix token hash id a_pid a_addr a_dir
  bench_bin kafka_traffic --bootstrap "$BOOTSTRAP" --topic "$latency_topic" --records 0 --partitions 6 2>/dev/null
  token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  hash=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
  id="scale-lat-$RANDOM"
  for i in 1 2; do
    SERVICE_ID=$id SERVICE_KAFKA_LINES="scale_out = true
instance_id = \"$id-$i\"" SERVICE_EXTRA_TOML="ledger = \"bench.ledger.$id\"
keys = \"bench.keys.$id\"
[api]
admin_tokens_sha256 = [\"$hash\"]" start_service "$latency_topic"
    until curl -sf -o /dev/null "http://$ADDR/readyz"; do sleep 0.05; done
    if [ "$i" = 1 ]; then a_pid=$SERVICE_PID a_addr=$ADDR a_dir=$RUN_DIR; SERVICE_PID=; fi
  done
  until curl -sf -o /dev/null "http://$a_addr/readyz"; do sleep 0.05; done
  bench_bin stop_latency --bootstrap "$BOOTSTRAP" --topic "$latency_topic" --api "http://$ADDR" \
    --token "$token" --pid "$SERVICE_PID" --stops "$stops" --chat-rate "$rate" --via poll \
    --label "one of two instances"
  kill -TERM "$a_pid" "$SERVICE_PID"
  wait "$a_pid" || true
  wait "$SERVICE_PID" || true
  SERVICE_PID=
  rm -rf "$a_dir/data" "$RUN_DIR/data"
  echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
}

# ---------------------------------------------------------------------------------------
# peer: the PostgreSQL peer (scripts/pg_peer.py) on the throughput section's topics.

PGWORK=
PEER_DONE=
peer_cleanup() {
  if [ -n "$PGWORK" ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGWORK/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$PGWORK"
    PGWORK=
  fi
}

# peer_setup: PostgreSQL (Debian's 15, else its default), a throwaway cluster as the
# postgres user on a socket in a temp dir, and a venv with the Python clients. Once.
peer_setup() {
  [ -z "$PGWORK" ] || return 0
  local sudo=
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    echo "bench: installing postgresql-15 (Debian package) for the peer" >&2
    { $sudo apt-get install -y -qq postgresql-15 || { $sudo apt-get update -qq && $sudo apt-get install -y -qq postgresql-15; } ||
      $sudo apt-get install -y -qq postgresql; } >/dev/null 2>&1 || true
  fi
  [ -x /usr/lib/postgresql/15/bin/initdb ] && PGBIN=/usr/lib/postgresql/15/bin
  PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
  [ -x "$PGBIN/initdb" ] || { echo "bench: no PostgreSQL server could be installed" >&2; exit 2; }
  if [ ! -x "$KWORK/venv/bin/python" ]; then
    echo "bench: confluent-kafka and psycopg[binary] (PyPI) into $KWORK/venv" >&2
    python3 -m venv "$KWORK/venv"
    "$KWORK/venv/bin/pip" install -q confluent-kafka 'psycopg[binary]' >&2
  fi
  PGWORK=$(mktemp -d)
  # kafka_setup of a later section sets its own trap: the section's case arm stops the
  # cluster too.
  trap 'peer_cleanup; kafka_cleanup' EXIT
  chown postgres "$PGWORK"
  # PostgreSQL refuses to run as root; its defaults keep fsync and synchronous_commit on.
  runuser -u postgres -- "$PGBIN/initdb" -D "$PGWORK/data" -U postgres --auth=trust >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGWORK/data" -l "$PGWORK/log" -w \
    -o "-k $PGWORK -c listen_addresses=''" start >/dev/null
  PEER_DSN="host=$PGWORK user=postgres dbname=postgres"
}

# peer_run CHAT_TOPIC STOPS_TOPIC: the peer on both topics; appends "peer SECONDS" and
# "peerstops SECONDS" to $KWORK/results and "peerchat|peerstops 0 BYTES ROWS UPSERTS" to
# $KWORK/extra.
peer_run() {
  peer_setup
  local line
  line=$("$KWORK/venv/bin/python" scripts/pg_peer.py --bootstrap "$BOOTSTRAP" --topic "$1" --records "$N" --dsn "$PEER_DSN")
  awk '{ print "peer", $3 }' <<<"$line" >>"$KWORK/results"
  echo "$line" | awk '{ print "peerchat 0", $6, $5, $4 }' >>"$KWORK/extra"
  line=$("$KWORK/venv/bin/python" scripts/pg_peer.py --bootstrap "$BOOTSTRAP" --topic "$2" --records "$stops" --dsn "$PEER_DSN")
  awk '{ print "peerstops", $3 }' <<<"$line" >>"$KWORK/results"
  echo "$line" | awk '{ print "peerstops 0", $6, $5, $4 }' >>"$KWORK/extra"
  PEER_DONE=1
}

bench_peer() {
  [ -z "$PEER_DONE" ] || return 0
  N=${THROUGHPUT_RECORDS:-1000000}
  local stops=${THROUGHPUT_STOPS:-100000} runs=${PEER_RUNS:-1}
  if [ -n "$SMOKE" ]; then N=2000 stops=500 runs=1; fi
  kafka_setup
  peer_setup
  local suffix chat_topic stops_topic
  suffix=$(date +%Y%m%d%H%M%S)-$$
  chat_topic=bench.chat.$suffix
  stops_topic=bench.stops.$suffix
  echo "==> peer: PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }') on $N chat webhooks and $stops STOPs, $runs runs (broker $BOOTSTRAP)" >&2
  bench_bin kafka_traffic --bootstrap "$BOOTSTRAP" --topic "$chat_topic" --records "$N" \
    --partitions 3 --mix chat --seed 1
  bench_bin kafka_traffic --bootstrap "$BOOTSTRAP" --topic "$stops_topic" --records "$stops" \
    --partitions 3 --mix stops --seed 1
  machine_line
  for _ in $(seq "$runs"); do peer_run "$chat_topic" "$stops_topic"; done
  echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  awk -v n="$N" -v stops="$stops" '
    FILENAME ~ /results$/ { t[$1] = t[$1] " " $2; next }
    $1 == "peerstops" { disk = disk " " $3; rows = rows " " $4 }
    $1 == "peerchat" { up = up " " $5 }
    function median(list,   a, k, i, j, x) {
      k = split(list, a, " ")
      for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
      return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    END {
      printf "| the PostgreSQL peer | seconds (median) | records/s |\n|---|---|---|\n"
      printf "| %d chat webhooks (%d upserts) | %.2f s | %.0f |\n", n, median(up), median(t["peer"]), n / median(t["peer"])
      printf "| %d new STOPs | %.2f s | %.0f durable upserts/s |\n", stops, median(t["peerstops"]), stops / median(t["peerstops"])
      printf "\ntable after the STOPs: %d rows, %.1f MB: **%.0f bytes per opt-out** (pg_total_relation_size / rows)\n", median(rows), median(disk) / 1e6, median(disk) / median(rows)
    }' "$KWORK/results" "$KWORK/extra"
}

for section in "${sections[@]}"; do
  case "$section" in
  ingest) bench_ingest ;;
  check) bench_check ;;
  webhooks) bench_webhooks ;;
  kafka-deadletters) bench_kafka_deadletters ;;
  kafka-burst) bench_kafka_burst ;;
  stores) bench_stores ;;
  throughput)
    bench_throughput
    peer_cleanup
    ;;
  latency) bench_latency ;;
  scale) bench_scale ;;
  peer)
    bench_peer
    peer_cleanup
    ;;
  esac
done
