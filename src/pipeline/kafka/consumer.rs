//! The consumer thread: polls the inbound and sent topics and hands each record to the writer
//! over a bounded channel, so decoding and committing never run inside the poll loop and a
//! slow ledger slows the poll (backpressure) instead of filling memory. Rebalance callbacks
//! run on this thread: on revoke, it asks the writer to commit everything it holds for the
//! partitions and waits for the answer before librdkafka takes them away. Consumer lag comes
//! from librdkafka's statistics callback, which never blocks the loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::OwnedMessage;
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

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
    pub writer: SyncSender<ToWriter>,
    pub ready: Arc<AtomicBool>,
    pub metrics: Metrics,
}

impl ClientContext for Ctx {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                self.metrics
                    .consumer_lag
                    .get_or_create(&PartitionLabels {
                        topic: topic.clone(),
                        partition: *partition,
                    })
                    .set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(
                partitions = tpl.count(),
                "partitions revoked; committing the batch in flight"
            );
            flush(&self.writer);
            self.ready.store(false, Ordering::SeqCst);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}[{}]", e.topic(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?parts, "partitions assigned");
                self.ready.store(!parts.is_empty(), Ordering::SeqCst);
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
    consumer.context().ready.store(false, Ordering::SeqCst);
}
