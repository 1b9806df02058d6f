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
#
# Knobs of kafka-deadletters: KAFKA_BENCH_RECORDS (default 20000 per stream),
# KAFKA_BENCH_RUNS (default 3; each figure is their median), KAFKA_BENCH_BAD_PERCENT (50).
# The release binary is built into $CARGO_TARGET_DIR (default target/), unless
# CONSENT_LEDGER_BIN names one (an older commit's build, to compare against).
set -euo pipefail
cd "$(dirname "$0")/.."

records=200000
sections=()
for arg in "$@"; do
  case "$arg" in
  [0-9]*) records=$arg ;;
  ingest | check | webhooks | kafka-deadletters) sections+=("$arg") ;;
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

# measure NAME TOPIC: runs the service on TOPIC until it read every record; appends
# "NAME SECONDS" to $KWORK/results and prints the run on stderr.
measure() {
  local name=$1 topic=$2 dir="$KWORK/run-$RANDOM$RANDOM"
  mkdir -p "$dir"
  local id
  id=$(basename "$dir")
  cat >"$dir/config.toml" <<EOF
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
  local started ready done_at got=0
  started=$(now)
  "$BIN" --data-dir "$dir/data" --config "$dir/config.toml" run --listen 127.0.0.1:0 \
    >"$dir/out" 2>"$dir/err" &
  SERVICE_PID=$!
  ADDR=
  for _ in $(seq 300); do
    ADDR=$(sed -n 's/^listening on //p' "$dir/out")
    [ -n "$ADDR" ] && break
    sleep 0.1
  done
  [ -n "$ADDR" ] || { tail -n 20 "$dir/err" >&2; exit 1; }
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

bench_kafka_deadletters() {
  N=${KAFKA_BENCH_RECORDS:-20000}
  local runs=${KAFKA_BENCH_RUNS:-3} bad=${KAFKA_BENCH_BAD_PERCENT:-50}
  BIN=${CONSENT_LEDGER_BIN:-${CARGO_TARGET_DIR:-target}/release/consent-ledger}
  for tool in curl awk; do
    command -v "$tool" >/dev/null || { echo "bench: needs $tool" >&2; exit 2; }
  done
  trap kafka_cleanup EXIT
  KWORK=$(mktemp -d)
  if ! scripts/kafka.sh status >/dev/null 2>&1; then KAFKA_STARTED=1; fi
  BOOTSTRAP=$(scripts/kafka.sh start | tail -n 1)
  echo "==> Kafka mode: dead letters ($N records per stream, $bad% bad, $runs runs, broker $BOOTSTRAP)" >&2
  [ -n "${CONSENT_LEDGER_BIN:-}" ] || cargo build --release --quiet --bin consent-ledger
  echo "binary: $BIN" >&2
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

for section in "${sections[@]}"; do
  case "$section" in
  ingest) bench_ingest ;;
  check) bench_check ;;
  webhooks) bench_webhooks ;;
  kafka-deadletters) bench_kafka_deadletters ;;
  esac
done
