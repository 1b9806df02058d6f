#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, unit tests, and the black-box
# tests (CLI, HTTP, Kafka). Kafka tests run against a real Apache Kafka broker that this
# script starts with scripts/kafka.sh (jars from Maven Central, Java 17) and stops at the end;
# set KAFKA_BOOTSTRAP_SERVERS to use your own broker instead (the broker-restart test then
# needs CONSENT_LEDGER_TEST_BROKER=local and a broker started by scripts/kafka.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# tests/report_html.rs opens the campaign report in headless Chromium and fails without it.
if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (Debian package) for the HTML report test" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

echo "==> cargo fmt --check" >&2
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --all-targets --quiet -- -D warnings
echo "==> building tests" >&2
cargo test --no-run --quiet

if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  echo "==> starting a local Kafka broker (scripts/kafka.sh)" >&2
  KAFKA_BOOTSTRAP_SERVERS="$(scripts/kafka.sh start | tail -n 1)"
  export KAFKA_BOOTSTRAP_SERVERS
  export CONSENT_LEDGER_TEST_BROKER=local
  trap 'env -u KAFKA_BOOTSTRAP_SERVERS scripts/kafka.sh stop >&2 || true' EXIT
fi
echo "==> cargo test (Kafka at $KAFKA_BOOTSTRAP_SERVERS)" >&2
# Kafka tests share one broker and one restarts it: two at a time keeps them within their
# time limits on a 2-core machine.
cargo test --no-fail-fast -- --test-threads=2
