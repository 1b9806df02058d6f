//! Kafka mode's relay: follows the event log and the reply log from the Kafka sink's cursors
//! and publishes to `consent.events` (each ledger partition's chain to the same partition
//! number) and `outbound.messages`. It runs from the ledger, not from the consumer, so an
//! event appended just before a crash is still published after the restart. Delivery is at
//! least once; subscribers dedupe by `event_id` / `message_id`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

use crate::config::Topics;
use crate::ledger::{Ledger, LedgerError, LogEntry, Sink, Stream};
use crate::metrics::{Metrics, TopicLabels};
use crate::pipeline::relay::advance;

/// Entries published per round.
const CHUNK: usize = 1000;

pub struct Relay {
    pub ledger: Arc<Ledger>,
    pub producer: FutureProducer,
    pub topics: Topics,
    /// Partitions of `consent.events`: a ledger partition's chain goes to one partition.
    pub consent_partitions: i32,
    pub metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the broker did not acknowledge: {0}")]
    Kafka(String),
}

impl Relay {
    /// Publishes until `stop` turns true and everything is published (or `drain_timeout`
    /// passes after the stop).
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
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "publishing the log failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                tracing::warn!(
                    pending = self.ledger.backlog(Sink::Kafka).unwrap_or_default(),
                    "stopping with unpublished log entries; they are published on the next start"
                );
                return;
            }
        }
    }

    /// Publishes up to one chunk of each stream at once; returns how many entries were
    /// acknowledged. A cursor moves only over the unbroken acknowledged prefix of its
    /// partition, so a refused entry is published again, never skipped; progress anywhere
    /// counts, so one stuck partition does not slow the others down with backoff.
    async fn publish_some(&self) -> Result<usize, PublishError> {
        self.metrics
            .outbox_pending
            .set(self.ledger.backlog(Sink::Kafka)? as i64);
        let mut entries = Vec::new();
        for stream in Stream::ALL {
            entries.extend(self.ledger.unpublished(Sink::Kafka, stream, CHUNK)?);
        }
        if entries.is_empty() {
            return Ok(0);
        }
        let acked = self.publish(&entries).await;
        let mut broken = std::collections::HashSet::new();
        let mut published = Vec::new();
        for (e, ok) in entries.iter().zip(acked) {
            if broken.contains(&(e.stream, e.partition)) {
                continue;
            }
            if ok {
                published.push(e.clone());
            } else {
                broken.insert((e.stream, e.partition));
            }
        }
        advance(&self.ledger, Sink::Kafka, &published)?;
        if published.is_empty() {
            return Err(PublishError::Kafka(format!(
                "none of {} entries acknowledged",
                entries.len()
            )));
        }
        if !broken.is_empty() {
            tracing::warn!(
                partitions = broken.len(),
                "some entries were not acknowledged; publishing again from the first of each"
            );
        }
        Ok(published.len())
    }

    /// Whether each entry was acknowledged; an empty one (a reply to a person erased before
    /// it went out) is not sent and counts as done.
    async fn publish(&self, entries: &[LogEntry]) -> Vec<bool> {
        let sends = entries.iter().filter(|e| !e.payload.is_empty()).map(|e| {
            let (topic, partition) = self.route(e);
            let mut record = FutureRecord::to(topic)
                .key(e.key.as_str())
                .payload(&e.payload);
            if let Some(p) = partition {
                record = record.partition(p);
            }
            self.producer.send(record, Duration::from_secs(30))
        });
        let mut results = join_all(sends).await.into_iter();
        entries
            .iter()
            .map(|e| {
                if e.payload.is_empty() {
                    return true;
                }
                match results.next().expect("one result per entry sent") {
                    Ok(_) => {
                        let topic = self.route(e).0.to_string();
                        self.metrics
                            .published
                            .get_or_create(&TopicLabels { topic })
                            .inc();
                        true
                    }
                    Err((error, _)) => {
                        self.metrics.publish_errors.inc();
                        tracing::debug!(%error, "publish refused");
                        false
                    }
                }
            })
            .collect()
    }

    fn route(&self, e: &LogEntry) -> (&str, Option<i32>) {
        match e.stream {
            Stream::Events => (
                self.topics.consent_events.as_str(),
                Some((e.partition % self.consent_partitions.max(1) as u32) as i32),
            ),
            Stream::Replies => (self.topics.outbound.as_str(), None),
        }
    }
}
