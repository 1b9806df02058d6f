#!/usr/bin/env bash
# Soak test (not part of CI): `consent-ledger serve` under a steady mix of checks, writes and
# imports for MINUTES (default 30), then the error rate, p99 latencies and the RSS trend after
# warm-up (target: RSS grows by less than 1 MB per 10 minutes). See scripts/soak.py.
#
#   scripts/soak.sh [MINUTES] [RATE] [WARMUP] [MIX]
#
# RATE: requests per second (default 50). WARMUP: minutes left out of the RSS trend (default
# 5); the store's block cache and write buffer (CONSENT_LEDGER_CACHE_MB each) fill during it.
# MIX: shares of each kind of request (default check=70,write=27,import=3); one kind alone
# tells which one memory grows with.
#
# The release binary is built into $CARGO_TARGET_DIR (default target/), unless
# CONSENT_LEDGER_BIN names one. Results are recorded by hand in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
rate=${2:-50}
warmup=${3:-5}
mix=${4:-check=70,write=27,import=3}
if [ -z "${CONSENT_LEDGER_BIN:-}" ]; then
  cargo build --release --quiet --bin consent-ledger
  CONSENT_LEDGER_BIN="${CARGO_TARGET_DIR:-target}/release/consent-ledger"
fi
work=$(mktemp -d)
token="soak-$(date +%s)-$RANDOM"
sha=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
cat > "$work/config.toml" <<TOML
[api]
body_timeout_secs = 60

[tenants.acme]
region = "FR"
api_tokens_sha256 = ["$sha"]
TOML
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$CONSENT_LEDGER_BIN" --data-dir "$work/data" --config "$work/config.toml" serve --listen "127.0.0.1:$port" \
  2> "$work/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
echo "==> soak: $minutes min at $rate req/s against pid $pid ($(git rev-parse --short HEAD), $(nproc) cores, $(date -u +%F))" >&2
python3 scripts/soak.py --base "http://127.0.0.1:$port/v1/tenants/acme" --token "$token" \
  --pid "$pid" --minutes "$minutes" --rate "$rate" --warmup "$warmup" --mix "$mix"
