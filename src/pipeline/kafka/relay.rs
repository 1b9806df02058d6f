//! The outbox relay: publishes what the ledger appended to `consent.events` and the replies to
//! `outbound.messages`, then deletes them from the outbox. It runs from the ledger's own
//! outbox, not from the consumer, so an event appended just before a crash is still published
//! after the restart. Delivery is at least once; subscribers dedupe by `event_id`/`message_id`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

use super::settings::Topics;
use crate::ledger::{Ledger, OutboxTarget};
use crate::metrics::{Metrics, TopicLabels};

pub struct Relay {
    pub ledger: Arc<Ledger>,
    pub producer: FutureProducer,
    pub topics: Topics,
    /// Partitions of `consent.events`: a ledger partition's chain goes to one partition.
    pub consent_partitions: i32,
    pub metrics: Metrics,
}

impl Relay {
    /// Publishes until `stop` turns true and the outbox is empty (or `drain_timeout` passes
    /// after the stop).
    pub async fn run(self, mut stop: watch::Receiver<bool>, drain_timeout: Duration) {
        let mut commits = self.ledger.subscribe();
        let mut backoff = Duration::from_millis(100);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if deadline.is_none() && *stop.borrow() {
                deadline = Some(tokio::time::Instant::now() + drain_timeout);
            }
            match self.publish_some().await {
                Ok(0) => {
                    backoff = Duration::from_millis(100);
                    if deadline.is_some() {
                        return;
                    }
                    tokio::select! {
                        _ = commits.changed() => {}
                        _ = stop.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox publish failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                tracing::warn!(pending = self.ledger.outbox_len(), "stopping with unpublished outbox entries; they are published on the next start");
                return;
            }
        }
    }

    /// Publishes up to one chunk of the outbox; returns how many entries were acknowledged.
    async fn publish_some(&self) -> Result<usize, String> {
        let pending = self
            .ledger
            .outbox_pending(1000)
            .map_err(|e| e.to_string())?;
        self.metrics
            .outbox_pending
            .set(self.ledger.outbox_len() as i64);
        if pending.is_empty() {
            return Ok(0);
        }
        let sends = pending.iter().map(|(_, entry)| {
            let (topic, partition) = match entry.target {
                OutboxTarget::ConsentEvents => (
                    self.topics.consent_events.as_str(),
                    Some((entry.partition % self.consent_partitions.max(1) as u32) as i32),
                ),
                OutboxTarget::OutboundMessages => (self.topics.outbound.as_str(), None),
            };
            let mut record = FutureRecord::to(topic)
                .key(entry.key.as_str())
                .payload(entry.payload.as_str());
            if let Some(p) = partition {
                record = record.partition(p);
            }
            self.producer.send(record, Duration::from_secs(30))
        });
        let results = join_all(sends).await;
        let mut acked = Vec::new();
        let mut first_error = None;
        for ((id, entry), result) in pending.iter().zip(results) {
            match result {
                Ok(_) => {
                    acked.push(*id);
                    let topic = match entry.target {
                        OutboxTarget::ConsentEvents => &self.topics.consent_events,
                        OutboxTarget::OutboundMessages => &self.topics.outbound,
                    };
                    self.metrics
                        .published
                        .get_or_create(&TopicLabels {
                            topic: topic.clone(),
                        })
                        .inc();
                }
                Err((e, _)) => {
                    self.metrics.publish_errors.inc();
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        self.ledger.outbox_ack(&acked).map_err(|e| e.to_string())?;
        match first_error {
            Some(e) if acked.is_empty() => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, acked = acked.len(), "some outbox entries were not acknowledged; retrying them");
                Ok(acked.len())
            }
            None => Ok(acked.len()),
        }
    }
}
