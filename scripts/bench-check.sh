#!/usr/bin/env bash
# Times the HTTP audience filter (POST /v1/tenants/acme/consent/check) on N contacts
# (default 1,000,000) against a release `consent-ledger serve`, as JSON and as NDJSON, and
# reports the server's peak resident memory for each (a fresh server per run). 1 contact in
# 100 has said STOP; the audience mixes E.164 and national spellings, with 0.1% garbage.
# Results are recorded in BENCHMARKS.md, section "HTTP check".
#
#   scripts/bench-check.sh [N]
#   CONSENT_LEDGER_BIN=path/to/consent-ledger scripts/bench-check.sh   # skip the build
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-1000000}
BIN=${CONSENT_LEDGER_BIN:-target/release/consent-ledger}
if [ -z "${CONSENT_LEDGER_BIN:-}" ]; then
  cargo build --release --quiet --bin consent-ledger
fi
for tool in curl awk sha256sum; do
  command -v "$tool" >/dev/null || { echo "bench-check: needs $tool" >&2; exit 2; }
done

WORK=$(mktemp -d)
PID=
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

TOKEN=bench-token
# The default body limit (64 MiB) is enough for a million contacts.
cat >"$WORK/config.toml" <<EOF
[tenants.acme]
region = "FR"
api_tokens_sha256 = ["$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)"]
EOF
run() { "$BIN" --data-dir "$WORK/data" --config "$WORK/config.toml" "$@"; }

awk -v n="$N" 'BEGIN { for (i = 0; i < n; i += 100)
  printf "{\"type\":\"inbound\",\"tenant\":\"acme\",\"channel\":\"sms\",\"message_id\":\"m%d\",\"from\":\"+336%08d\",\"received_at\":\"2025-11-24T11:00:00Z\",\"text\":\"STOP\"}\n", i, 10000000 + i }' \
  >"$WORK/stops.jsonl"
run ingest "$WORK/stops.jsonl" >/dev/null

# Item i: garbage every 1000th, else alternately E.164 and a national spelling.
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) {
  if (i % 1000 == 999) printf "\"not a number %d\"\n", i;
  else if (i % 2) printf "\"+336%08d\"\n", 10000000 + i;
  else printf "\"06%08d\"\n", 10000000 + i } }' >"$WORK/audience.ndjson"
{ printf '{"purpose":"marketing","contacts":['; paste -sd, "$WORK/audience.ndjson"; printf ']}'; } \
  >"$WORK/audience.json"

start_server() {
  # Created first: the background process opens its redirections only once it is scheduled.
  : >"$WORK/serve.out"
  "$BIN" --data-dir "$WORK/data" --config "$WORK/config.toml" serve --listen 127.0.0.1:0 \
    >>"$WORK/serve.out" 2>"$WORK/serve.err" &
  PID=$!
  for _ in $(seq 100); do
    if grep -q '^listening on ' "$WORK/serve.out"; then break; fi
    sleep 0.1
  done
  ADDR=$(sed -n 's/^listening on //p' "$WORK/serve.out")
  [ -n "$ADDR" ] || { cat "$WORK/serve.err" >&2; exit 1; }
}

stop_server() {
  kill -TERM "$PID"
  wait "$PID" || true
  PID=
}

rss_kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$PID/status"; }

measure() {
  local name=$1 type=$2 file=$3
  start_server
  local before
  before=$(rss_kib VmRSS)
  local timing
  timing=$(curl -sS -o "$WORK/answer" -w '%{http_code} %{time_total}' \
    -H "Authorization: Bearer $TOKEN" -H "Content-Type: $type" \
    --data-binary @"$file" "http://$ADDR/v1/tenants/acme/consent/check")
  local peak
  peak=$(rss_kib VmHWM)
  stop_server
  read -r code total <<<"$timing"
  [ "$code" = 200 ] || { echo "$name: HTTP $code" >&2; head -c 500 "$WORK/answer" >&2; exit 1; }
  local summary
  if [ "$type" = application/json ]; then
    summary=$(tail -c 120 "$WORK/answer" | sed 's/.*"counts"://; s/}$//')
  else
    summary=$(tail -n 1 "$WORK/answer")
  fi
  printf '%-7s %9s contacts  body %4s MiB  %6.2f s  %7.0f contacts/s  server RSS %4s MiB before, peak %4s MiB\n' \
    "$name" "$N" "$(($(stat -c %s "$file") / 1048576))" "$total" \
    "$(awk -v n="$N" -v t="$total" 'BEGIN { print n / t }')" \
    "$((before / 1024))" "$((peak / 1024))"
  echo "        answer: $summary"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); $(uname -sr)"
measure json application/json "$WORK/audience.json"
measure ndjson application/x-ndjson "$WORK/audience.ndjson"
