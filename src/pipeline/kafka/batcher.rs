//! The commit protocol of Kafka mode. Messages collect into a pending batch; a flush runs them
//! through the shared pipeline into one ledger transaction, in this order:
//!
//! 1. dead letters are produced and acknowledged (a poison record is never lost),
//! 2. the ledger batch is committed, flushed and fsynced (events, outbox, source offsets),
//! 3. only then are the input offsets committed to the consumer group.
//!
//! A crash between any two steps redelivers the batch, and the ledger's dedupe keys turn the
//! redelivery into duplicates, not second events. The same flush runs when partitions are
//! revoked, from inside the rebalance callback, so a rebalance never strands work in flight.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::Settings;
use crate::domain::decide::Origin;
use crate::domain::inbound::DecodeError;
use crate::ledger::{Ledger, LedgerError};
use crate::metrics::{Metrics, ReasonLabels};
use crate::pipeline::{Processor, Rejection, Summary};

/// Shared between the poll loop and the rebalance callback.
pub struct Batcher {
    pub ledger: Arc<Ledger>,
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
    pub producer: FutureProducer,
    pub dead_letter_topic: String,
    pub pending: Vec<OwnedMessage>,
    pub summary: Summary,
    /// Next offset to read per input partition, as last committed: for the lag gauge.
    pub committed: BTreeMap<(String, i32), i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl Batcher {
    /// Processes and commits everything pending. Only a storage error fails it; Kafka errors
    /// are retried (dead letters) or left to redelivery (offset commits).
    pub fn flush<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
    ) -> Result<usize, FlushError> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let processor = Processor::new(&self.settings);
        let now = Utc::now();
        let mut staged = self.ledger.stage();
        let mut batch = Summary::default();
        let mut dead: Vec<(OwnedMessage, Rejection)> = Vec::new();
        let mut offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for m in &self.pending {
            let origin = Origin {
                topic: Some(m.topic().to_string()),
                kafka_partition: Some(m.partition()),
                offset: Some(m.offset()),
                line: None,
            };
            let partition = u32::try_from(m.partition()).unwrap_or(0);
            let rejections = match m.payload() {
                Some(bytes) => {
                    processor.process(&mut staged, bytes, &origin, partition, now, &mut batch)?
                }
                None => {
                    batch.read += 1;
                    batch.rejected += 1;
                    vec![Rejection {
                        error: DecodeError::Invalid {
                            what: "record",
                            detail: "the value is null (a tombstone)".into(),
                        },
                        path: None,
                    }]
                }
            };
            dead.extend(rejections.into_iter().map(|r| (m.clone(), r)));
            staged.set_offset(m.topic(), m.partition(), m.offset() + 1);
            let next = offsets
                .entry((m.topic().to_string(), m.partition()))
                .or_insert(0);
            *next = (*next).max(m.offset() + 1);
        }
        self.produce_dead_letters(&dead, now);
        let committed = staged.commit()?;
        self.metrics.batches.inc();
        self.metrics.records_read.inc_by(batch.read);
        self.metrics.events_appended.inc_by(committed.events as u64);
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        self.commit_offsets(consumer, &offsets);
        self.summary.add(&batch);
        let n = self.pending.len();
        self.pending.clear();
        tracing::info!(
            records = n,
            events = committed.events,
            dead_lettered = dead.len(),
            duplicates = batch.duplicates,
            "batch committed"
        );
        Ok(n)
    }

    /// Produces every dead letter and waits for the broker's ack, retrying with backoff:
    /// their offsets are about to be committed, so they must be safe first.
    fn produce_dead_letters(&self, dead: &[(OwnedMessage, Rejection)], now: chrono::DateTime<Utc>) {
        for (m, r) in dead {
            let offset = m.offset().to_string();
            let partition = m.partition().to_string();
            let rejected_at = now.to_rfc3339();
            let reason = r.error.to_string();
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: "dlq.reason",
                    value: Some(&reason),
                })
                .insert(Header {
                    key: "dlq.code",
                    value: Some(r.error.code()),
                })
                .insert(Header {
                    key: "dlq.source.topic",
                    value: Some(m.topic()),
                })
                .insert(Header {
                    key: "dlq.source.partition",
                    value: Some(&partition),
                })
                .insert(Header {
                    key: "dlq.source.offset",
                    value: Some(&offset),
                })
                .insert(Header {
                    key: "dlq.rejected_at",
                    value: Some(&rejected_at),
                });
            if let Some(path) = &r.path {
                headers = headers.insert(Header {
                    key: "dlq.path",
                    value: Some(path),
                });
            }
            let mut backoff = Duration::from_millis(100);
            loop {
                let mut record: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(&self.dead_letter_topic).headers(headers.clone());
                if let Some(key) = m.key() {
                    record = record.key(key);
                }
                if let Some(payload) = m.payload() {
                    record = record.payload(payload);
                }
                let delivery = futures::executor::block_on(
                    self.producer.send(record, Duration::from_secs(30)),
                );
                match delivery {
                    Ok(_) => break,
                    Err((e, _)) => {
                        tracing::warn!(error = %e, topic = %self.dead_letter_topic, "dead letter not acknowledged; retrying");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            tracing::warn!(
                topic = m.topic(),
                partition = m.partition(),
                offset = m.offset(),
                code = r.error.code(),
                "record dead-lettered"
            );
            self.metrics
                .dead_lettered
                .get_or_create(&ReasonLabels {
                    reason: r.error.code().to_string(),
                })
                .inc();
        }
    }

    /// Commits input offsets, retrying briefly. A commit that still fails (a rebalance in
    /// progress, a coordinator move) is harmless: the records come back and are deduplicated.
    fn commit_offsets<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        offsets: &BTreeMap<(String, i32), i64>,
    ) {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in offsets {
            if tpl
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .is_err()
            {
                tracing::error!(topic, partition, "cannot build the offset commit");
                return;
            }
        }
        for attempt in 1..=5 {
            match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => {
                    for (k, v) in offsets {
                        self.committed.insert(k.clone(), *v);
                    }
                    tracing::debug!(partitions = offsets.len(), "offsets committed");
                    return;
                }
                Err(e) => {
                    self.metrics.commit_errors.inc();
                    tracing::warn!(error = %e, attempt, "offset commit failed; retrying");
                    std::thread::sleep(Duration::from_millis(200 * attempt));
                }
            }
        }
        tracing::warn!("offset commit gave up; the batch will be redelivered and deduplicated");
    }
}
