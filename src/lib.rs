//! consent-ledger: an event-sourced consent ledger for WhatsApp and SMS marketing.
//!
//! ```text
//! inbound record ─► domain::inbound::decode ─► contact::normalize ─► keywords::classify
//!      ─► decide::event_for (pure) ─► ledger::Staged (one sled transaction + fsync per batch)
//!      ─► outbox relay ─► consent events and replies (file or Kafka sinks)
//! query side: query (status, history, check, export, stats) over ledger reads and
//!     domain::policy::may_send, shared by the CLI and the HTTP API
//! ```
//!
//! - [`domain`]: the rules, pure; no I/O, no clocks.
//! - [`ledger`]: the only code that touches sled.
//! - [`pipeline`]: sources, sinks and the batch/commit protocol shared by file and Kafka modes.
//! - [`config`]: the TOML settings, validated at start.
//! - [`query`]: the read side, once for the CLI and the HTTP API: status, history, audience
//!   check, audit export, campaign statistics.
//! - [`api`]: the HTTP query and recording API (axum) for campaign senders and automations.
//! - [`app`]: the wiring of `serve` and `run`, each given its listener and shutdown future.
//! - [`shutdown`]: the one shutdown signal every long-running task waits on.
//! - [`report`]: the HTML page of the campaign statistics (`stats --html`, `/campaigns.html`).
//! - [`init`]: the starter config `consent-ledger init` writes, STOP automation included.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod init;
pub mod ledger;
pub mod metrics;
pub mod pipeline;
pub mod query;
pub mod report;
pub mod schemas;
pub mod shutdown;
pub mod template;
