//! The webhook receivers: Meta's WhatsApp Cloud API and Twilio's inbound SMS post here
//! directly, so that no bridge of the business's own stands between the provider and the
//! ledger, where STOPs get lost (a signature checked on re-serialized JSON, a 200 sent before
//! the message is safe, a retry processed twice).
//!
//! ```text
//! GET  /webhooks/whatsapp     whatsapp.rs  Meta's subscription handshake (verify token)
//! POST /webhooks/whatsapp     whatsapp.rs  signature.rs (raw body) → split.rs (one record per item)
//! POST /webhooks/twilio/sms   twilio.rs    signature.rs (public URL + sorted form) → one record
//!                                  │
//!                                  ▼ Sink: durable, then 200; 503 when it cannot be
//!     serve: ledger.rs  the commit path (grouped commits), dead letters to dead-letter.jsonl
//!     run:   kafka.rs   the inbound topic, acks=all, acknowledged; dead letters to the DLQ topic
//! ```
//!
//! No bearer token: the signature is the authentication, checked on the raw bytes before
//! anything is parsed. A signed body that a retry cannot fix (not a webhook, a business number
//! no tenant lists) is answered 200 and dead-lettered with its reason, since providers disable
//! endpoints that keep failing. Duplicates (Meta retries what was slow) are deduplicated
//! downstream by message id, like any redelivery.

mod kafka;
mod ledger;
pub mod signature;
mod split;
pub mod twilio;
pub mod whatsapp;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::{request::Parts as RequestParts, StatusCode};

use super::problem::Problem;
use super::ratelimit::SourceLimiter;
use crate::config::{ConfigError, KafkaConfig, Settings, WebhookKeys};
use crate::ledger::Ledger;
use crate::metrics::{Metrics, ProviderLabels};
use crate::pipeline::Rejection;

/// One record a receiver hands on, or what it cannot use.
#[derive(Debug, Clone)]
pub enum Part {
    /// For the inbound topic or the commit path, keyed `tenant:person`.
    Record { key: String, bytes: Vec<u8> },
    /// Signed but unusable: dead-lettered with its reason, never retried.
    Unusable {
        bytes: Vec<u8>,
        rejection: Rejection,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Whatsapp,
    Twilio,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Whatsapp => "whatsapp",
            Provider::Twilio => "twilio",
        }
    }

    /// Where its dead letters say they came from.
    fn source(self) -> &'static str {
        match self {
            Provider::Whatsapp => "webhook:whatsapp",
            Provider::Twilio => "webhook:twilio",
        }
    }
}

/// What a delivery amounted to once durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub records: usize,
    pub dead_lettered: usize,
}

/// Why a delivery could not be made durable: the provider is told to retry (503).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    #[error("the ledger could not commit: {0}")]
    Ledger(String),
    #[error("the broker did not acknowledge: {0}")]
    Broker(String),
    #[error("the service is stopping")]
    Stopping,
}

/// Where deliveries go.
enum Sink {
    Ledger(ledger::LedgerSink),
    Kafka(Box<kafka::KafkaSink>),
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create the webhook producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// The configured receivers, their secrets, limits and sink. Shared by every request.
pub struct Webhooks {
    keys: WebhookKeys,
    sink: Sink,
    max_body: usize,
    whatsapp_limit: Option<SourceLimiter>,
    twilio_limit: Option<SourceLimiter>,
    metrics: Metrics,
}

impl Webhooks {
    /// For `serve`: into the ledger through the commit path, dead letters to
    /// `DATA_DIR/dead-letter.jsonl`. `None` when the config has no webhook.
    pub fn into_ledger(
        settings: &Arc<Settings>,
        ledger: Arc<Ledger>,
        data_dir: &Path,
        metrics: &Metrics,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Webhooks>, WebhookError> {
        if !configured(settings) {
            return Ok(None);
        }
        let keys = settings.file.webhooks.resolve(env)?;
        let sink = ledger::LedgerSink::start(
            ledger,
            settings.clone(),
            &data_dir.join(crate::pipeline::deadletter::FILE_NAME),
            metrics.clone(),
        );
        Ok(Some(Webhooks::new(
            settings,
            keys,
            Sink::Ledger(sink),
            metrics,
        )))
    }

    /// For `run`: onto the inbound topic, dead letters to the dead-letter topic.
    pub fn onto_kafka(
        settings: &Arc<Settings>,
        kafka: &KafkaConfig,
        metrics: &Metrics,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Webhooks>, WebhookError> {
        if !configured(settings) {
            return Ok(None);
        }
        let keys = settings.file.webhooks.resolve(env)?;
        let sink = kafka::KafkaSink::new(kafka, metrics.clone())?;
        Ok(Some(Webhooks::new(
            settings,
            keys,
            Sink::Kafka(Box::new(sink)),
            metrics,
        )))
    }

    fn new(settings: &Settings, keys: WebhookKeys, sink: Sink, metrics: &Metrics) -> Webhooks {
        let config = &settings.file.webhooks;
        let limiter = || config.rate_limit_per_source.map(SourceLimiter::new);
        Webhooks {
            keys,
            sink,
            max_body: config.max_body_bytes(),
            whatsapp_limit: limiter(),
            twilio_limit: limiter(),
            metrics: metrics.clone(),
        }
    }

    /// Makes `parts` durable and returns once they are; an error means nothing may be
    /// acknowledged to the provider.
    async fn deliver(
        &self,
        provider: Provider,
        parts: Vec<Part>,
    ) -> Result<Delivered, Unavailable> {
        let delivered = match &self.sink {
            Sink::Ledger(sink) => sink.deliver(provider, parts).await,
            Sink::Kafka(sink) => sink.deliver(provider, parts).await,
        }?;
        self.metrics
            .webhook_records
            .get_or_create(&ProviderLabels::of(provider.as_str()))
            .inc_by(delivered.records as u64);
        Ok(delivered)
    }

    /// 429 when the client's address is over `webhooks.rate_limit_per_source` for `provider`.
    fn check_rate(&self, provider: Provider, request: &RequestParts) -> Result<(), Problem> {
        let limiter = match provider {
            Provider::Whatsapp => &self.whatsapp_limit,
            Provider::Twilio => &self.twilio_limit,
        };
        match limiter {
            Some(limiter) => limiter.check(peer(request)),
            None => Ok(()),
        }
    }

    /// Counts a refused signature; the answer is the same 401 whatever was wrong.
    fn refused(&self, provider: Provider, header: &str) -> Problem {
        self.metrics
            .webhook_signatures_rejected
            .get_or_create(&ProviderLabels::of(provider.as_str()))
            .inc();
        tracing::warn!(
            provider = provider.as_str(),
            "webhook refused: missing or wrong signature"
        );
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid-signature",
            "Invalid signature",
            format!("the {header} header is missing or does not sign this request"),
        )
    }
}

fn configured(settings: &Settings) -> bool {
    let w = &settings.file.webhooks;
    w.whatsapp.is_some() || w.twilio.is_some()
}

/// The client's address, as the connection gave it (absent for a router called directly).
fn peer(request: &RequestParts) -> Option<IpAddr> {
    request
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// 404 for a provider the config does not set up, so a misrouted provider sees why.
fn not_configured(table: &str) -> Problem {
    Problem::plain(
        StatusCode::NOT_FOUND,
        format!("this webhook is not configured: add [{table}] to the config"),
    )
}

/// 503 with `Retry-After`, so the provider retries what could not be made durable.
fn unavailable(provider: Provider, e: &Unavailable) -> Problem {
    tracing::error!(provider = provider.as_str(), error = %e, "webhook not accepted; the provider will retry");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Service unavailable",
        "the delivery could not be made durable; retry later",
    )
    .with_retry_after(5)
}

/// The whole body, refused past `webhooks.max_body_bytes` (413, checked against
/// `Content-Length` first) or when it does not arrive in time (408).
async fn read_body(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<bytes::Bytes, Problem> {
    use http_body_util::BodyExt;
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the webhook body is over the {limit}-byte limit (webhooks.max_body_bytes)"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) if super::server::is_body_timeout(&*e) => Err(Problem::body_timeout()),
        Err(e) => Err(Problem::bad_request(
            "unreadable-body",
            "Unreadable body",
            format!("cannot read the request body: {e}"),
        )),
    }
}
