#!/usr/bin/env bash
# Every benchmark, release build. Results are recorded by hand in BENCHMARKS.md with the
# machine they ran on; nothing here is a pass/fail test.
#
#   scripts/bench.sh [RECORDS]
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-200000}
echo "==> file-mode ingest, batch sizes 100 / 1000 / 5000 ($records records)" >&2
for batch in 100 1000 5000; do
  cargo bench --quiet --bench ingest -- "$records" "$batch"
done
echo "==> HTTP audience check (1,000,000 contacts)" >&2
scripts/bench-check.sh
