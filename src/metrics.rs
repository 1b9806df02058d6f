//! Process metrics, exposed at `GET /metrics` in Prometheus text format. One registry per
//! process, shared by the pipeline and the HTTP API, so a single scrape shows both sides.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

impl ProviderLabels {
    pub fn of(provider: &str) -> ProviderLabels {
        ProviderLabels {
            provider: provider.to_string(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WaitLabels {
    /// `head` (a request head not finished in time: 408) or `idle` (nothing between requests).
    pub wait: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub method: String,
    pub route: String,
}

/// Every metric of the process. Cheap to clone (all handles are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Inbound records read from any source.
    pub records_read: Counter,
    /// Consent events appended to the ledger.
    pub events_appended: Counter,
    /// Records or messages sent to the dead-letter output, by reason code.
    pub dead_lettered: Family<ReasonLabels, Counter>,
    /// Outbox entries published, by destination topic (or file).
    pub published: Family<TopicLabels, Counter>,
    /// Ledger batches committed (each one atomic write + fsync).
    pub batches: Counter,
    /// Seconds per batch commit, fsync included.
    pub commit_seconds: Histogram,
    /// High watermark minus committed offset, per input partition.
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// Outbox entries not yet published.
    pub outbox_pending: Gauge,
    /// HTTP requests by route and status.
    pub http_requests: Family<RouteLabels, Counter>,
    /// HTTP latency by route, seconds.
    pub http_seconds: Family<RouteOnly, Histogram>,
    /// Contacts checked by the audience filter.
    pub contacts_checked: Counter,
    /// Outbox publishes the broker did not acknowledge (retried from the outbox).
    pub publish_errors: Counter,
    /// Input offset commits that failed (the batch is redelivered and deduplicated).
    pub commit_errors: Counter,
    /// Messages processed at their recording time because their own was out of bounds,
    /// unreadable or missing: a rise points at a sender with a broken clock.
    pub clock_corrected: Counter,
    /// Ledger keys read by exports, feeds and reports: what a request costs, so that a
    /// tenant's reads can be seen to scale with its own data, never with other tenants'.
    pub ledger_keys_read: Counter,
    /// Webhook requests refused for a missing or wrong signature, by provider: a rise is a
    /// rotated secret not yet configured, or someone probing the endpoint.
    pub webhook_signatures_rejected: Family<ProviderLabels, Counter>,
    /// Records the webhook receivers made durable (committed, or acknowledged by the broker),
    /// by provider.
    pub webhook_records: Family<ProviderLabels, Counter>,
    /// Scale-out: record-topic entries not yet in this instance's view (sum over partitions).
    pub view_lag: Gauge,
    /// Scale-out: events other instances wrote, taken into this instance's view.
    pub events_adopted: Counter,
    /// Scale-out: batches whose transaction the broker refused (this instance evicted from
    /// the group, a coordinator move), aborted and read again. A steady rise means the
    /// instance keeps losing its membership: look at its pauses and its session timeout.
    pub transactions_aborted: Counter,
    /// Scale-out: inbound partitions beyond the record topic's count, which no instance
    /// takes until the record topic has them too (README, "Scale-out").
    pub inbound_partitions_unmatched: Gauge,
    /// HTTP connections open now, against `api.max_connections`.
    pub http_connections_open: Gauge,
    /// Connections turned away over `api.max_connections` (503, or closed unanswered when
    /// even the 503s are too many): a rise means the cap or the capacity is too small.
    pub http_connections_shed: Counter,
    /// Connections closed by the server's header or idle timeout, by which wait ran out. Slow
    /// bodies are answered 408 by the handler and counted in `http_requests`.
    pub http_connections_timed_out: Family<WaitLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("consent_ledger");
        let latency = || Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        Metrics {
            records_read: add(&mut r, "records_read", "Inbound records read"),
            events_appended: add(
                &mut r,
                "events_appended",
                "Consent events appended to the ledger",
            ),
            dead_lettered: add(
                &mut r,
                "dead_lettered",
                "Records sent to the dead-letter output",
            ),
            published: add(
                &mut r,
                "published",
                "Log entries (consent events, replies) published",
            ),
            batches: add(&mut r, "batches", "Ledger batches committed"),
            commit_seconds: register(
                &mut r,
                "commit_seconds",
                "Seconds per ledger batch commit, fsync included",
                latency(),
            ),
            consumer_lag: add(
                &mut r,
                "consumer_lag",
                "Messages behind the high watermark, per input partition",
            ),
            outbox_pending: add(
                &mut r,
                "outbox_pending",
                "Log entries (consent events, replies) appended but not yet published",
            ),
            http_requests: add(&mut r, "http_requests", "HTTP requests by route and status"),
            http_seconds: register(
                &mut r,
                "http_request_seconds",
                "HTTP request latency by route",
                Family::new_with_constructor(latency),
            ),
            contacts_checked: add(
                &mut r,
                "contacts_checked",
                "Contacts checked by the audience filter",
            ),
            publish_errors: add(
                &mut r,
                "publish_errors",
                "Publishes of log entries not acknowledged, retried",
            ),
            commit_errors: add(
                &mut r,
                "offset_commit_errors",
                "Input offset commits that failed",
            ),
            transactions_aborted: add(
                &mut r,
                "transactions_aborted",
                "Scale-out: batches whose transaction was refused, aborted and read again",
            ),
            clock_corrected: add(
                &mut r,
                "clock_corrected",
                "Messages processed at their recording time: their own time was out of bounds, unreadable or missing",
            ),
            ledger_keys_read: add(
                &mut r,
                "ledger_keys_read",
                "Ledger keys read by exports, feeds and campaign reports",
            ),
            webhook_signatures_rejected: add(
                &mut r,
                "webhook_signatures_rejected",
                "Webhook requests refused for a missing or wrong signature, by provider",
            ),
            webhook_records: add(
                &mut r,
                "webhook_records",
                "Records the webhook receivers made durable, by provider",
            ),
            view_lag: add(
                &mut r,
                "view_lag",
                "Record topic entries not yet in this instance's view (scale-out)",
            ),
            events_adopted: add(
                &mut r,
                "events_adopted",
                "Events written by other instances, taken into this view (scale-out)",
            ),
            inbound_partitions_unmatched: add(
                &mut r,
                "inbound_partitions_unmatched",
                "Inbound partitions beyond the record topic's count, left unread (scale-out)",
            ),
            http_connections_open: add(
                &mut r,
                "http_connections_open",
                "HTTP connections open, against api.max_connections",
            ),
            http_connections_shed: add(
                &mut r,
                "http_connections_shed",
                "HTTP connections turned away over api.max_connections",
            ),
            http_connections_timed_out: add(
                &mut r,
                "http_connections_timed_out",
                "HTTP connections closed by the header or idle timeout, by wait",
            ),
            registry: Arc::new(r),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Registers `metric` under `name` and hands it back, so each field is declared once.
fn register<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    r.register(name, help, metric.clone());
    metric
}

fn add<M: Metric + Clone + Default>(r: &mut Registry, name: &str, help: &str) -> M {
    register(r, name, help, M::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_the_prefix() {
        let m = Metrics::new();
        m.events_appended.inc_by(3);
        m.clock_corrected.inc();
        m.consumer_lag
            .get_or_create(&PartitionLabels {
                topic: "inbound.messages".into(),
                partition: 2,
            })
            .set(7);
        let text = m.render();
        assert!(
            text.contains("consent_ledger_events_appended_total 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "consent_ledger_consumer_lag{topic=\"inbound.messages\",partition=\"2\"} 7"
            ),
            "{text}"
        );
        assert!(
            text.contains("consent_ledger_clock_corrected_total 1"),
            "{text}"
        );
        m.webhook_signatures_rejected
            .get_or_create(&ProviderLabels::of("whatsapp"))
            .inc();
        let text = m.render();
        assert!(
            text.contains(
                "consent_ledger_webhook_signatures_rejected_total{provider=\"whatsapp\"} 1"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
