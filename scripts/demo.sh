#!/usr/bin/env bash
# The embedded default, end to end, with no broker: build, ingest the shipped WhatsApp
# webhooks, then show what a compliance officer and a campaign sender would ask.
# Data goes to ./data (or $CONSENT_LEDGER_DATA_DIR). Running it twice shows deduplication.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building (release)" >&2
cargo build --release --quiet
bin=target/release/consent-ledger
config=examples/consent-ledger.toml
export CONSENT_LEDGER_DATA_DIR="${CONSENT_LEDGER_DATA_DIR:-./data}"

echo
echo "==> ingest examples/whatsapp-webhooks.jsonl (real Meta webhook payloads, plus 2 bad lines)"
"$bin" --config "$config" ingest examples/whatsapp-webhooks.jsonl

echo
echo "==> status of the customer who typed STOP"
"$bin" --config "$config" status --tenant acme --contact "+33 6 12 34 56 78"
"$bin" --config "$config" status --tenant acme --contact "06 12 34 56 78" --purpose transactional

echo
echo "==> history of a customer who said ARRÊT, then START"
"$bin" --config "$config" history --tenant acme --contact 0655501234

echo
echo "==> campaign check of examples/audience.txt (stdout: who may be sent to; stderr: who not, and why)"
"$bin" --config "$config" check --tenant acme examples/audience.txt

echo
echo "==> confirmations queued for the customers ($CONSENT_LEDGER_DATA_DIR/outbox.jsonl)"
cut -c1-160 "$CONSENT_LEDGER_DATA_DIR/outbox.jsonl" | head -n 3
echo "..."

echo
echo "==> verify the hash chains and the consent view"
"$bin" --config "$config" verify
