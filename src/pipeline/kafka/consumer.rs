//! The consumer thread: polls the inbound and sent topics and hands each record to the writer
//! over a bounded channel, so decoding and committing never run inside the poll loop and a
//! slow ledger slows the poll (backpressure) instead of filling memory. Rebalance callbacks
//! run on this thread: on revoke, it asks the writer to commit everything it holds for the
//! partitions and waits for the answer before librdkafka takes them away.
//!
//! Consumer lag comes from librdkafka's statistics callback (every `statistics.interval.ms`),
//! which runs inside `poll` and never blocks it: no offset lookup waits behind a long fetch.
//! Each report replaces the last, for the partitions assigned to this consumer only, so a
//! partition that moved to another instance leaves the metric instead of freezing in it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::OwnedMessage;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};

use crate::metrics::{Metrics, PartitionLabels};

/// What the consumer thread tells the writer.
pub enum ToWriter {
    Record(OwnedMessage),
    /// Commit everything received so far, then answer.
    Flush(SyncSender<()>),
    /// Commit everything received so far and return.
    Stop,
}

/// Asks the writer to commit what it holds and waits until it has. A writer that is gone
/// (stopped on a storage error) has nothing left to commit.
pub fn flush(writer: &SyncSender<ToWriter>) {
    let (done, wait) = sync_channel(1);
    if writer.send(ToWriter::Flush(done)).is_ok() {
        let _ = wait.recv();
    }
}

/// Rebalance and statistics hooks.
pub struct Ctx {
    writer: SyncSender<ToWriter>,
    /// Whether a partition of the inbound topic is ours: what `/readyz` follows. The sent
    /// topic alone is not enough, since no STOP would be read.
    ready: Arc<AtomicBool>,
    metrics: Metrics,
    inbound: String,
    /// The partitions assigned to this consumer, as the rebalances left them.
    assigned: Mutex<HashSet<PartitionLabels>>,
    /// Bumped whenever inbound partitions are assigned: scale-out's writer then waits for
    /// its view to catch up with the record topic before it writes (`writer.rs`).
    pub assignments: Arc<std::sync::atomic::AtomicU64>,
    /// Scale-out: the record topic's partition count. An inbound partition at or beyond it
    /// has no chain to go to: it is paused, not read (README, "Scale-out").
    pub record_partitions: Option<i32>,
}

impl Ctx {
    pub fn new(
        writer: SyncSender<ToWriter>,
        ready: Arc<AtomicBool>,
        metrics: Metrics,
        inbound: &str,
    ) -> Self {
        Ctx {
            writer,
            ready,
            metrics,
            inbound: inbound.to_string(),
            assigned: Mutex::new(HashSet::new()),
            assignments: Default::default(),
            record_partitions: None,
        }
    }

    fn assigned(&self) -> MutexGuard<'_, HashSet<PartitionLabels>> {
        self.assigned.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (on assign) or removes (on revoke) partitions: with the eager protocol a revoke
    /// takes them all and an assign gives the whole new set, with the cooperative one each
    /// is a difference, and both come down to this.
    fn update(&self, tpl: &TopicPartitionList, assign: bool) {
        let mut assigned = self.assigned();
        for e in tpl.elements() {
            let p = PartitionLabels {
                topic: e.topic().to_string(),
                partition: e.partition(),
            };
            if assign {
                if p.topic == self.inbound {
                    self.assignments.fetch_add(1, Ordering::SeqCst);
                }
                assigned.insert(p);
            } else {
                self.metrics.consumer_lag.remove(&p);
                assigned.remove(&p);
            }
        }
        let ready = assigned.iter().any(|p| p.topic == self.inbound);
        self.ready.store(ready, Ordering::SeqCst);
    }

    fn clear(&self) {
        self.metrics.consumer_lag.clear();
        self.assigned().clear();
        self.ready.store(false, Ordering::SeqCst);
    }
}

impl ClientContext for Ctx {
    fn stats(&self, statistics: Statistics) {
        let assigned = self.assigned().clone();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                let labels = PartitionLabels {
                    topic: topic.clone(),
                    partition: *partition,
                };
                if !assigned.contains(&labels) {
                    continue;
                }
                // -1: no committed offset yet (nothing read there), or no high watermark yet.
                if p.consumer_lag < 0 {
                    self.metrics.consumer_lag.remove(&labels);
                } else {
                    self.metrics
                        .consumer_lag
                        .get_or_create(&labels)
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl Ctx {
    /// Pauses the inbound partitions beyond the record topic's count, with an error and the
    /// metric `consent_ledger_inbound_partitions_unmatched`: their messages wait in Kafka
    /// until the record topic has as many partitions and the instances restart.
    fn hold_unmatched(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let Some(n) = self.record_partitions else {
            return;
        };
        let mut unmatched = TopicPartitionList::new();
        for e in tpl.elements() {
            if e.topic() == self.inbound && e.partition() >= n {
                unmatched.add_partition(e.topic(), e.partition());
            }
        }
        self.metrics
            .inbound_partitions_unmatched
            .set(unmatched.count() as i64);
        if unmatched.count() == 0 {
            return;
        }
        tracing::error!(
            partitions = unmatched.count(),
            record_partitions = n,
            "the inbound topic has more partitions than the record topic: those beyond are not read. Add the same partitions to the record topic, then restart the instances (README, \"Scale-out\")"
        );
        if let Err(e) = consumer.pause(&unmatched) {
            tracing::error!(error = %e, "cannot pause the partitions beyond the record topic's");
        }
    }
}

impl ConsumerContext for Ctx {
    /// The outcome of an offset commit, the writer's asynchronous ones included. A failed one
    /// is harmless: the next batch's commit carries the same partitions further, and the
    /// writer commits synchronously before partitions move or the service stops.
    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(e) = result {
            self.metrics.commit_errors.inc();
            tracing::warn!(error = %e, "offset commit failed; a later commit carries it");
        }
    }

    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(
                partitions = tpl.count(),
                "partitions revoked; committing the batch in flight"
            );
            flush(&self.writer);
            self.update(tpl, false);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.hold_unmatched(consumer, tpl);
                let parts: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}[{}]", e.topic(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?parts, "partitions assigned");
                self.update(tpl, true);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance error"),
        }
    }
}

/// Polls until `stop` is set or the writer is gone, then has the writer commit what it holds
/// and leaves the group.
pub fn poll_loop(consumer: Arc<BaseConsumer<Ctx>>, stop: Arc<AtomicBool>) {
    let writer = consumer.context().writer.clone();
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let record = ToWriter::Record(m.detach());
                if writer.send(record).is_err() {
                    break;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "consumer error; librdkafka retries by itself");
                std::thread::sleep(Duration::from_millis(200));
            }
            None => {}
        }
    }
    flush(&writer);
    consumer.unsubscribe();
    // Serve the revoke that unsubscribing causes, so the group sees us leave.
    let _ = consumer.poll(Duration::from_millis(100));
    let _ = writer.send(ToWriter::Stop);
    consumer.context().clear();
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rdkafka::statistics::{Partition, Topic};

    use super::*;

    fn tpl(parts: &[(&str, i32)]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in parts {
            tpl.add_partition(topic, *partition);
        }
        tpl
    }

    fn lags(parts: &[(&str, i32, i64)]) -> Statistics {
        let mut topics: HashMap<String, Topic> = HashMap::new();
        for (topic, partition, lag) in parts {
            topics
                .entry(topic.to_string())
                .or_default()
                .partitions
                .insert(
                    *partition,
                    Partition {
                        partition: *partition,
                        consumer_lag: *lag,
                        ..Partition::default()
                    },
                );
        }
        Statistics {
            topics,
            ..Statistics::default()
        }
    }

    fn lag_lines(metrics: &Metrics) -> Vec<String> {
        let mut lines: Vec<String> = metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("consent_ledger_consumer_lag{"))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn readiness_and_lag_follow_the_partitions_assigned() {
        let (writer, _from_consumer) = sync_channel(1);
        let (ready, metrics) = (Arc::new(AtomicBool::new(false)), Metrics::new());
        let ctx = Ctx::new(writer, ready.clone(), metrics.clone(), "in");

        ctx.update(&tpl(&[("sent", 0)]), true);
        assert!(
            !ready.load(Ordering::SeqCst),
            "the sent topic alone reads no STOP"
        );
        ctx.update(&tpl(&[("in", 0), ("in", 1)]), true);
        assert!(ready.load(Ordering::SeqCst));

        // in/2 is another instance's; in/1 has nothing committed yet.
        ctx.stats(lags(&[
            ("in", 0, 7),
            ("in", 1, -1),
            ("in", 2, 40),
            ("sent", 0, 0),
        ]));
        assert_eq!(
            lag_lines(&metrics),
            [
                "consent_ledger_consumer_lag{topic=\"in\",partition=\"0\"} 7",
                "consent_ledger_consumer_lag{topic=\"sent\",partition=\"0\"} 0",
            ]
        );

        // Revoked: its last lag leaves the metric instead of freezing there.
        ctx.update(&tpl(&[("in", 0), ("in", 1)]), false);
        assert!(!ready.load(Ordering::SeqCst));
        ctx.stats(lags(&[("in", 0, 7), ("sent", 0, 0)]));
        assert_eq!(
            lag_lines(&metrics),
            ["consent_ledger_consumer_lag{topic=\"sent\",partition=\"0\"} 0"]
        );
        ctx.clear();
        assert!(lag_lines(&metrics).is_empty());
    }
}
