#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, unit tests, and the black-box
# tests (CLI, HTTP, Kafka). Kafka tests run against real Apache Kafka brokers that this
# script starts with scripts/kafka.sh (jars from Maven Central, Java 17) and stops at the end:
# one for the tests, one for the test that restarts its broker. Set KAFKA_BOOTSTRAP_SERVERS
# to use your own broker instead (the broker-restart test then needs
# CONSENT_LEDGER_TEST_BROKER=local and a broker started by scripts/kafka.sh).
#
# What the tests need besides the code (Chromium for the HTML report test, the broker) is
# installed and started in the background while the code compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
# A clean clone's build gains nothing from incremental compilation, only its bookkeeping:
# off in CI, as cargo's own CI advice has it; developers keep their setting.
if [[ -n "${CI:-}" ]]; then export CARGO_INCREMENTAL=0; fi
# librdkafka is the largest dependency to build: its Makefile compiles with -g -O2, about 160
# CPU-seconds of a clean build on 2 cores. The tests need neither its debug info nor its
# speed (it is under 0.1% of their CPU): -O1 -g0 takes 88 (measured 2026-12-08). The other C
# dependencies, built by the cc crate, already compile at the dev profile's -O1 without
# debug info, so these flags change nothing for them. CI only, since a change of CFLAGS
# rebuilds every C dependency.
if [[ -n "${CI:-}" && -z "${CFLAGS:-}" ]]; then export CFLAGS="-O1 -g0"; fi
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started )) s"; }

# tests/cli/report_html.rs opens the campaign report in headless Chromium and fails without it.
chromium_pid=""
if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (Debian package) for the HTML report test, in the background" >&2
  ( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium ) \
    > target/chromium-install.log 2>&1 &
  chromium_pid=$!
fi

# tests/cli/proof.rs runs scripts/verify_export.py, which needs the `cryptography` package.
if ! python3 -c 'import cryptography' >/dev/null 2>&1; then
  echo "==> installing the Python package cryptography for scripts/verify_export.py" >&2
  python3 -m pip install --quiet --user cryptography >&2
fi

# Two brokers of our own: one for the Kafka tests, and one for kafka_broker_restart alone,
# which restarts its broker. On a broker of its own it runs beside the others instead of last,
# alone: about 50 s less. The second shares the first's jars.
broker_pid=""
restart_dir="$PWD/.kafka-restart"
if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  echo "==> starting two local Kafka brokers (scripts/kafka.sh), in the background" >&2
  (
    scripts/kafka.sh start > target/kafka-start.out
    mkdir -p "$restart_dir"
    [[ -e "$restart_dir/lib" ]] || ln -s "$PWD/.kafka/lib" "$restart_dir/lib"
    LOCAL_KAFKA_DIR="$restart_dir" scripts/kafka.sh start > target/kafka-restart-start.out
  ) 2> target/kafka-start.log &
  broker_pid=$!
fi

# On any exit: let a broker start still in progress finish, then stop the brokers it started.
cleanup() {
  local pid
  for pid in "${kafka_tests_pid:-}" "${restart_tests_pid:-}"; do
    if [[ -n "$pid" ]]; then
      pkill -P "$pid" 2>/dev/null || true
      kill "$pid" 2>/dev/null || true
    fi
  done
  if [[ -n "$broker_pid" ]]; then
    wait "$broker_pid" 2>/dev/null || true
    env -u KAFKA_BOOTSTRAP_SERVERS scripts/kafka.sh stop >&2 || true
    env -u KAFKA_BOOTSTRAP_SERVERS LOCAL_KAFKA_DIR="$restart_dir" scripts/kafka.sh stop >&2 || true
  fi
}
trap cleanup EXIT

echo "==> cargo fmt --check" >&2
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
# Clippy lints this crate while the tests compile: clippy-driver as the workspace's rustc
# wrapper, which is how `cargo clippy` runs it, but with code generation. `cargo clippy`
# beside the tests type-checked every dependency a second time, about 150 s of two cores on
# a clean clone. Every target is built (--all-targets, as clippy's), and any warning of this
# crate, rustc's or clippy's, fails the suite as `-D warnings` would. The wrapper is part of
# cargo's fingerprint, so these artifacts live beside a plain `cargo test`'s.
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)" || {
  echo "clippy-driver not found: rustup component add clippy" >&2
  exit 1
}
export RUSTC_WORKSPACE_WRAPPER
echo "==> building every target, clippy linting as it compiles ($(elapsed))" >&2
if ! cargo test --no-run --all-targets --message-format=json |
  python3 scripts/build_report.py target/test-bins.txt; then
  echo "the build or its lints failed; see above" >&2
  exit 1
fi

if [[ -n "$chromium_pid" ]] && ! wait "$chromium_pid"; then
  cat target/chromium-install.log >&2
  echo "cannot install chromium; see above" >&2
  exit 1
fi
if [[ -n "$broker_pid" ]]; then
  if ! wait "$broker_pid"; then
    cat target/kafka-start.log >&2
    echo "cannot start the Kafka brokers; see above" >&2
    exit 1
  fi
  KAFKA_BOOTSTRAP_SERVERS="$(tail -n 1 target/kafka-start.out)"
  export KAFKA_BOOTSTRAP_SERVERS
  export CONSENT_LEDGER_TEST_BROKER=local
fi
echo "==> cargo test (Kafka at $KAFKA_BOOTSTRAP_SERVERS, $(elapsed))" >&2
# The test binaries cargo built above, by name. The Kafka ones wait on the broker most of
# the time (131 s of wall for 23 s of CPU on a quiet machine), so the `kafka` binary runs
# beside everything else: the other binaries (the fuzz targets' properties among the unit
# tests, src/fuzz_targets/) and the benchmark smoke run, and so does kafka_broker_restart on
# its own broker. Every step runs to its end, and the suite fails if any failed.
test_bins=$(cat target/test-bins.txt)
run_bins() { # kafka | kafka_broker_restart | others: runs those binaries, each to its end
  local name exe failed=0 group
  while read -r name exe; do
    case "$name" in
    kafka | kafka_broker_restart) group=$name ;;
    *) group=others ;;
    esac
    if [[ "$group" == "$1" ]]; then
      echo "     Running $name ($exe)"
      # The Kafka tests mostly wait on the broker and on the services they start: three at
      # a time. The others share two cores, two at a time.
      if [[ "$group" == others ]]; then
        "$exe" --test-threads=2 || failed=1
      elif [[ "$group" == kafka ]]; then
        # libtest starts tests in name order, and the longest (110 s of the binary's 250)
        # came last: it starts first, in a process of its own, beside the others.
        local long=scale_out::two_instances_share_the_stream_and_end_with_the_same_view
        "$exe" --exact "$long" &
        local long_pid=$!
        "$exe" --test-threads=3 --skip "$long" || failed=1
        wait "$long_pid" || failed=1
      else
        "$exe" --test-threads=3 || failed=1
      fi
    fi
  done <<< "$test_bins"
  return "$failed"
}
run_bins kafka > target/kafka-tests.log 2>&1 &
kafka_tests_pid=$!
restart_tests_pid=""
if [[ -n "$broker_pid" ]]; then
  echo "==> kafka_broker_restart on its own broker, beside the tests ($(elapsed))" >&2
  (
    KAFKA_BOOTSTRAP_SERVERS="$(tail -n 1 target/kafka-restart-start.out)"
    export KAFKA_BOOTSTRAP_SERVERS LOCAL_KAFKA_DIR="$restart_dir"
    run_bins kafka_broker_restart
  ) > target/kafka-restart-tests.log 2>&1 &
  restart_tests_pid=$!
fi
tests_failed=0
run_bins others || tests_failed=1

# The benchmark script on a tiny stream with the debug build, so that it cannot rot: it
# must still produce its report against the broker above. It measures nothing worth keeping,
# so it runs beside the Kafka tests too (its own topics, group and services).
echo "==> scripts/bench.sh --smoke, beside the Kafka tests ($(elapsed))" >&2
scripts/bench.sh --smoke > target/bench-smoke.md || tests_failed=1

wait "$kafka_tests_pid" || tests_failed=1
kafka_tests_pid=""
cat target/kafka-tests.log
if [[ -n "$restart_tests_pid" ]]; then
  wait "$restart_tests_pid" || tests_failed=1
  restart_tests_pid=""
  cat target/kafka-restart-tests.log
else
  # Your own broker: the test restarts it, so it runs alone, last.
  echo "==> kafka_broker_restart, alone on the broker ($(elapsed))" >&2
  run_bins kafka_broker_restart || tests_failed=1
fi
[[ "$tests_failed" == 0 ]] || { echo "tests failed; see above" >&2; exit 1; }
echo "==> done in $(elapsed)" >&2
