//! The HTTP API for campaign senders and marketing automations (axum on tokio): the consent
//! of one contact, the audience filter, history, recording and importing consent, the audit
//! export and a long-poll event feed, plus health, readiness, metrics and `/openapi.json`.
//!
//! ```text
//! /v1/tenants/{tenant}/…   auth::Caller (bearer token → tenant or admin) → handler
//!     consent.rs  status and history of one contact (query/, shared with the CLI)
//!     erase.rs    erasure of a person (ledger::Ledger::erase, like the CLI's `erase`)
//!     check/      audience filter (query::Audience), JSON or NDJSON, streamed (stream.rs)
//!     events/     record.rs: record one decision (pipeline::commit); feed.rs: the long poll
//!     imports/    bulk CSV / NDJSON import (pipeline::commit), read and checked row by row
//!     export.rs   streamed audit log (query::export)
//!     campaigns.rs  opt-out rates per campaign (query::stats), anomaly flags, HTML report
//!                   (report.rs)
//! /v1/templates/lint        any valid token → templates.rs (domain::template, no tenant data)
//! ops.rs: /healthz /readyz /metrics; every response passes ops::observe (metrics, access
//! log without contact numbers) and problem::problems_everywhere (errors as RFC 9457).
//! auth.rs also holds each token to `api.rate_limit_per_token` (ratelimit.rs).
//! server/: connections under the router: cap, timeouts, lingering close, and problems for
//! the requests hyper refuses itself.
//! /webhooks/whatsapp, /webhooks/twilio/sms   no token: the provider's signature →
//!     webhooks/ (Meta and Twilio receivers, into the commit path or onto the inbound topic)
//! ```
//!
//! Like mini-redis, [`serve`] takes its listener and shutdown signal as arguments, so tests
//! bind 127.0.0.1:0 and stop the server cleanly, and [`crate::app`] serves it alone (`serve`)
//! or next to the Kafka consumer (`run`).

mod auth;
mod campaigns;
mod check;
mod consent;
mod erase;
mod events;
mod export;
pub mod forward;
mod imports;
pub mod openapi;
mod ops;
pub mod problem;
mod ratelimit;
mod server;
mod stream;
mod templates;
pub mod webhooks;

pub use server::{serve, SHUTDOWN_GRACE};

/// The request-body readers, public only for the fuzz targets of `fuzz/`: not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::check::{Line, Lines};
    pub use super::imports::check_rows;
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::config::Settings;
use crate::ledger::Ledger;
use crate::metrics::Metrics;

/// Whether the process should receive traffic (`GET /readyz`). `serve` is ready once the
/// ledger is open; `run` is ready once its consumer has partitions, because before that its
/// consent view may lag behind the topic.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<Mutex<ReadyState>>);

#[derive(Debug, Default)]
struct ReadyState {
    /// Why not ready, when set by [`Readiness::set_not_ready`].
    reason: Option<String>,
    /// A flag owned by another component (the consumer), and what to say while it is false.
    follows: Option<(Arc<AtomicBool>, String)>,
}

impl Readiness {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReadyState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_ready(&self) {
        self.lock().reason = None;
    }

    /// Not ready, and why (shown by `/readyz`).
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        self.lock().reason = Some(reason.into());
    }

    /// Also not ready while `flag` is false, e.g. the consumer's "partitions assigned".
    pub fn follow(&self, flag: Arc<AtomicBool>, reason_while_false: impl Into<String>) {
        self.lock().follows = Some((flag, reason_while_false.into()));
    }

    /// `Err(why)` while not ready.
    pub fn check(&self) -> Result<(), NotReady> {
        let state = self.lock();
        if let Some(reason) = &state.reason {
            return Err(NotReady(reason.clone()));
        }
        match &state.follows {
            Some((flag, reason)) if !flag.load(Ordering::Acquire) => Err(NotReady(reason.clone())),
            _ => Ok(()),
        }
    }
}

/// Why the process should not receive traffic yet, as `/readyz` says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotReady(pub String);

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Arc<Ledger>,
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
    readiness: Readiness,
    /// `api.rate_limit_per_token`, when set.
    limiter: Option<Arc<ratelimit::TokenLimiter>>,
    /// Flips to true when the server starts shutting down, so long polls return at once
    /// instead of holding the graceful shutdown for their whole wait.
    closing: tokio::sync::watch::Sender<bool>,
    /// The webhook receivers, when the config sets one up ([`AppState::with_webhooks`]).
    webhooks: Option<Arc<webhooks::Webhooks>>,
    /// Scale-out: where recorded decisions and imports go instead of this ledger.
    forward: Option<Arc<forward::Forward>>,
}

impl AppState {
    /// Starts not ready ("starting"): the caller says when it is, with
    /// `state.readiness().set_ready()`.
    pub fn new(ledger: Arc<Ledger>, settings: Arc<Settings>, metrics: Metrics) -> AppState {
        ledger.count_reads_in(metrics.ledger_keys_read.clone());
        AppState {
            limiter: settings.file.api.rate_limit_per_token.map(|rate| {
                let period = rate.per.duration();
                Arc::new(ratelimit::TokenLimiter::new(
                    rate.requests,
                    period,
                    rate.to_string(),
                ))
            }),
            ledger,
            settings,
            metrics,
            readiness: {
                let r = Readiness::default();
                r.set_not_ready("starting");
                r
            },
            closing: tokio::sync::watch::Sender::new(false),
            webhooks: None,
            forward: None,
        }
    }

    /// Serves the webhook receivers too (`serve` into the ledger, `run` onto Kafka).
    pub fn with_webhooks(mut self, webhooks: Option<webhooks::Webhooks>) -> AppState {
        self.webhooks = webhooks.map(Arc::new);
        self
    }

    /// Scale-out: decisions and imports go onto the inbound topic ([`forward`]).
    pub fn with_forward(mut self, forward: Option<Arc<forward::Forward>>) -> AppState {
        self.forward = forward;
        self
    }

    pub fn forward(&self) -> Option<Arc<forward::Forward>> {
        self.forward.clone()
    }

    /// A handle to flip readiness from outside (the Kafka consumer on assignment).
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }
}

/// Every route. Public so that `run` or a test can mount it elsewhere.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route(
            "/tenants/{tenant}/contacts/{contact}/consent",
            get(consent::get_consent),
        )
        .route(
            "/tenants/{tenant}/contacts/{contact}",
            axum::routing::delete(erase::erase),
        )
        .route(
            "/tenants/{tenant}/contacts/{contact}/history",
            get(consent::get_history),
        )
        .route(
            "/tenants/{tenant}/contacts/{contact}/export",
            get(consent::get_access_export),
        )
        .route("/tenants/{tenant}/consent/check", post(check::check))
        .route(
            "/tenants/{tenant}/consent-events",
            post(events::record::record),
        )
        .route("/tenants/{tenant}/events", get(events::feed::feed))
        .route("/tenants/{tenant}/imports", post(imports::import))
        .route("/tenants/{tenant}/export", get(export::export))
        .route("/tenants/{tenant}/campaigns", get(campaigns::list))
        .route("/tenants/{tenant}/campaigns.html", get(campaigns::html))
        .route(
            "/tenants/{tenant}/campaigns/{campaign}",
            get(campaigns::one),
        )
        .route("/templates/lint", post(templates::lint));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::serve_document))
        .route(
            "/webhooks/whatsapp",
            get(webhooks::whatsapp::handshake).post(webhooks::whatsapp::notify),
        )
        .route("/webhooks/twilio/sms", post(webhooks::twilio::inbound))
        .fallback(problem::not_found)
        // Bodies are read by our own limited readers (stream.rs), which answer 413 as a
        // problem with the configured limit; axum's default 2 MB cap would be a second limit.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(problem::problems_everywhere))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::observe,
        ))
        .with_state(state)
}
