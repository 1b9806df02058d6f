#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, unit tests, and the black-box
# tests (CLI, schemas). Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check" >&2
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cargo test" >&2
cargo test --no-fail-fast
