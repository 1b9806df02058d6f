#!/usr/bin/env bash
# Every benchmark, release build. Results are recorded by hand in BENCHMARKS.md with the
# machine they ran on; nothing here is a pass/fail test.
#
#   scripts/bench.sh [RECORDS] [SECTION...]
#
# Sections (default: all four, in this order):
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
for arg in "$@"; do
  case "$arg" in
  [0-9]*) records=$arg ;;
  ingest | check | webhooks | kafka-deadletters | kafka-burst) sections+=("$arg") ;;
  *)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 64
    ;;
  esac
done
[ ${#sections[@]} -gt 0 ] || sections=(ingest check webhooks kafka-deadletters)

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

# metric NAME: the sum of a counter's samples on the service's /metrics (0 if absent).
metric() {
  { curl -sf "http://$ADDR/metrics" || true; } | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }'
}

# start_service TOPIC: starts a release `run` with a fresh data dir, consumer group and output
# topics, reading TOPIC; sets SERVICE_PID, ADDR and RUN_DIR once it listens.
start_service() {
  local topic=$1 id
  RUN_DIR="$KWORK/run-$RANDOM$RANDOM"
  mkdir -p "$RUN_DIR"
  id=$(basename "$RUN_DIR")
  cat >"$RUN_DIR/config.toml" <<EOF
[kafka]
bootstrap_servers = "$BOOTSTRAP"
group_id = "bench-$id"
partitions = 3

[kafka.topics]
inbound = "$topic"
sent = "bench.sent.$id"
consent_events = "bench.events.$id"
outbound = "bench.outbound.$id"
dead_letter = "bench.dlq.$id"
EOF
  "$BIN" --data-dir "$RUN_DIR/data" --config "$RUN_DIR/config.toml" run --listen 127.0.0.1:0 \
    >"$RUN_DIR/out" 2>"$RUN_DIR/err" &
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
  local dead
  dead=$(metric consent_ledger_dead_lettered_total)
  kill -TERM "$SERVICE_PID"
  wait "$SERVICE_PID" || true
  SERVICE_PID=
  rm -rf "$dir/data"
  awk -v n="$name" -v r="$ready" -v d="$done_at" 'BEGIN { printf "%s %.3f\n", n, d - r }' >>"$KWORK/results"
  awk -v n="$name" -v s="$started" -v r="$ready" -v d="$done_at" -v N="$N" -v dl="$dead" \
    'BEGIN { printf "  %-8s %6d records in %6.2f s = %6.0f records/s (%d dead-lettered; %.1f s from start to partitions assigned)\n", n, N, d - r, N / (d - r), dl, r - s }' >&2
}

# kafka_setup: the broker, the release binary and a work dir, shared by the Kafka sections.
kafka_setup() {
  BIN=${CONSENT_LEDGER_BIN:-${CARGO_TARGET_DIR:-target}/release/consent-ledger}
  for tool in curl awk; do
    command -v "$tool" >/dev/null || { echo "bench: needs $tool" >&2; exit 2; }
  done
  trap kafka_cleanup EXIT
  [ -n "$KWORK" ] || KWORK=$(mktemp -d)
  if ! scripts/kafka.sh status >/dev/null 2>&1; then KAFKA_STARTED=1; fi
  BOOTSTRAP=$(scripts/kafka.sh start | tail -n 1)
  [ -n "${CONSENT_LEDGER_BIN:-}" ] || cargo build --release --quiet --bin consent-ledger
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
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load average $(cut -d' ' -f1-3 /proc/loadavg) before the runs" >&2
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
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load average $(cut -d' ' -f1-3 /proc/loadavg) before the runs" >&2
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

for section in "${sections[@]}"; do
  case "$section" in
  ingest) bench_ingest ;;
  check) bench_check ;;
  webhooks) bench_webhooks ;;
  kafka-deadletters) bench_kafka_deadletters ;;
  kafka-burst) bench_kafka_burst ;;
  esac
done
