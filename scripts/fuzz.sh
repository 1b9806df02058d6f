#!/usr/bin/env bash
# The fuzz targets of fuzz/ (cargo fuzz, libFuzzer), as README "Tests" describes:
#
#   scripts/fuzz.sh build              install what is missing, seed the corpora, build every target
#   scripts/fuzz.sh smoke SECONDS      run every target at once for SECONDS
#   scripts/fuzz.sh run TARGET [SECONDS [libFuzzer options]]
#                                      one target, for as long as you like (default: until stopped)
#
# By default the targets are built optimized and with AddressSanitizer, which needs the
# nightly toolchain (installed with rustup when missing; without it they build on stable
# without a sanitizer). FUZZ_BUILD=dev (unoptimized: half the build time) and
# FUZZ_SANITIZER=none (stable; seven times more inputs a second unoptimized) make the
# cheapest build: our code has no unsafe, and every panic and failed property is caught all
# the same. CI runs the same properties as unit tests instead (src/fuzz_targets/).
# Crashes are written to fuzz/artifacts/TARGET/; fuzz/regressions/TARGET/ holds the inputs
# of the bugs found so far, run again at every start.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(decode classify import_rows check_ndjson lint_template)

# The toolchain the sanitizer needs: nightly for one, stable for none.
fuzz_toolchain() {
  if [[ "${FUZZ_SANITIZER:-address}" != none ]] &&
    { rustup run nightly rustc --version >/dev/null 2>&1 ||
      rustup toolchain install nightly --profile minimal >&2; }; then
    echo "nightly"
  else
    echo "stable"
  fi
}

# cargo fuzz with the toolchain, build mode and sanitizer chosen, then its arguments.
cargo_fuzz() {
  local command=$1 toolchain options=()
  shift
  toolchain=$(fuzz_toolchain)
  [[ "${FUZZ_BUILD:-release}" == dev ]] && options+=(--dev)
  if [[ "$toolchain" == stable ]]; then
    options+=(--sanitizer none)
  else
    options+=(--sanitizer "${FUZZ_SANITIZER:-address}")
  fi
  cargo "+$toolchain" fuzz "$command" "${options[@]}" "$@"
}

build() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz" >&2
    cargo install cargo-fuzz --version 0.13.2 --locked --quiet
  fi
  mkdir -p fuzz/target
  python3 fuzz/seed.py
  cargo_fuzz build
}

# One target on its corpus and its regression inputs, for $2 seconds (0 or none: until
# stopped), with any further arguments passed to libFuzzer.
run() {
  local target=$1 seconds=${2:-0}
  shift
  (( $# )) && shift
  # An input that takes longer is a hang. Unoptimized and sanitized, the first input of a
  # target that reads phone numbers takes over 10 s: that is when the numbering plans load.
  local timeout=10
  [[ "${FUZZ_BUILD:-release}" == dev ]] && timeout=60
  mkdir -p "fuzz/corpus/$target" "fuzz/regressions/$target"
  cargo_fuzz run "$target" "fuzz/corpus/$target" "fuzz/regressions/$target" -- \
    -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=4096 "$@"
}

# Every target at once for $1 seconds; the log of one that failed is shown.
smoke() {
  local seconds=$1 failed=0 target
  local -A pids=()
  for target in "${TARGETS[@]}"; do
    run "$target" "$seconds" > "fuzz/target/smoke-$target.log" 2>&1 &
    pids[$target]=$!
  done
  for target in "${TARGETS[@]}"; do
    if wait "${pids[$target]}"; then
      echo "fuzz $target: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "fuzz/target/smoke-$target.log" | tail -n 1)s" >&2
    else
      cat "fuzz/target/smoke-$target.log" >&2
      echo "fuzz $target: FAILED (its input is in fuzz/artifacts/$target/, its log above)" >&2
      failed=1
    fi
  done
  return $failed
}

case "${1:-}" in
  build) build ;;
  smoke) smoke "${2:?seconds}" ;;
  run) shift; run "${1:?target}" "${@:2}" ;;
  *) sed -n '2,16p' "$0" >&2; exit 2 ;;
esac
