//! consent-ledger: an event-sourced consent ledger for WhatsApp and SMS marketing.
//!
//! One inbound message's path (ARCHITECTURE.md tells it in full):
//!
//! ```text
//! source (file line | Kafka record | HTTP consent record | import row)
//!   ─► pipeline::commit::commit — THE commit path, one batch at a time:
//!        1 decode (domain::inbound) and resolve tenant + contact (E.164)
//!        2 decide (domain::decide::decide, pure: state + command -> events, reply, signal)
//!          and stage it (ledger::Staged: seal events on the hash chain, fold the view)
//!        3 dead letters made durable (file fsynced / topic acknowledged)
//!        4 one atomic write, its journal fsynced
//!        5 acknowledge (Kafka offsets, HTTP 2xx, ingest summary)
//!   ─► relays follow the event and reply logs from their cursors (the log is the outbox)
//!        ─► consent.events / consent-events.jsonl, outbound.messages / outbox.jsonl
//! query side: query (status, history, check, export, stats) over ledger reads and
//!     domain::policy::may_send, shared by the CLI and the HTTP API
//! ```
//!
//! - [`domain`]: the rules, pure; no I/O, no clocks: decoding, keywords and languages, the
//!   decision, the consent fold, the sending policy.
//! - [`pipeline`]: the one commit path and its sources and sinks (file, Kafka, relays).
//! - [`ledger`]: the only code that touches the store: batches, the log, verify, migrate.
//! - [`query`]: the read side, once for the CLI and the HTTP API: status, history, audience
//!   check, audit export, campaign statistics.
//! - [`api`]: the HTTP query and recording API (axum) for campaign senders and automations.
//! - [`app`]: the wiring of `serve` and `run`, each given its listener and shutdown future.
//! - [`shutdown`]: the one shutdown signal every long-running task waits on.
//! - [`config`]: the TOML settings, validated at start.
//! - [`template`]: the WhatsApp template linter (opt-out footer and STOP button).
//! - [`report`]: the HTML page of the campaign statistics (`stats --html`, `/campaigns.html`).
//! - [`init`]: the starter config `consent-ledger init` writes, STOP automation included.
//! - [`rgpd`]: erasure by crypto-shredding: the master key, data keys, keyed hashes.
//! - [`metrics`], [`schemas`]: Prometheus metrics; the JSON Schemas of every record.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
/// The fuzz targets' properties (`fuzz/`, and the unit tests): not an API.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz_targets;
pub mod init;
pub mod ledger;
pub mod metrics;
pub mod pipeline;
pub mod proof;
pub mod query;
pub mod report;
pub mod rgpd;
pub mod schemas;
pub mod shutdown;
pub mod template;
