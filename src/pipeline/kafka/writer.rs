//! The writer thread of Kafka mode: collects records from the consumer thread into batches
//! (`batch_size` records, or `linger_ms` after the first) and runs each through the one commit
//! path. Its sinks produce a batch's dead letters ([`super::dead_letters`]) and commit the
//! input offsets only after the batch is durable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::consumer::{Ctx, ToWriter};
use super::dead_letters::{Cut, DeadLetters};
use super::record::{Txn, TXN_TIMEOUT};
use super::rewind::{Refusals, Rewind};
use crate::config::Settings;
use crate::config::Topics;
use crate::domain::decide::Origin;
use crate::ledger::Ledger;
use crate::ledger::Staged;
use crate::metrics::Metrics;
use crate::pipeline::commit::{self, CommitError, Committed, Dead, Input, Sinks};
use crate::pipeline::Summary;

pub struct Writer {
    pub ledger: Arc<Ledger>,
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
    pub producer: FutureProducer,
    pub dead_letter_topic: String,
    pub consumer: Arc<BaseConsumer<Ctx>>,
    pub batch_size: usize,
    pub linger: Duration,
    /// Set when a batch could not be made durable: the service stops rather than skip it.
    pub failed: Arc<AtomicBool>,
    /// Set when the service stops: a batch whose dead letters are refused is then given up,
    /// uncommitted, instead of retried.
    pub stopping: Arc<AtomicBool>,
    /// The next offset of each input partition whose batch is durable, committed
    /// asynchronously since the last synchronous commit (`commit_acknowledged`).
    pub acked: std::sync::Mutex<BTreeMap<(String, i32), i64>>,
    /// Scale-out: Kafka is the record (`record.rs`).
    pub scale_out: Option<ScaleOut>,
}

/// What the writer needs when Kafka is the record.
pub struct ScaleOut {
    /// Transactional: `transactional.id` is this instance's.
    pub producer: FutureProducer,
    pub topics: Topics,
    pub consent_partitions: i32,
    pub ledger_partitions: i32,
    /// The consumer's count of inbound assignments, and the one the view last caught up on.
    pub assignments: Arc<AtomicU64>,
    pub caught_up: AtomicU64,
}

impl Writer {
    /// Runs until the consumer thread says stop (or goes away); returns the run's summary,
    /// or the error that stopped it.
    pub fn run(self, from_consumer: Receiver<ToWriter>) -> Result<Summary, CommitError> {
        if let Some(so) = &self.scale_out {
            if let Err(e) = so.producer.init_transactions(TXN_TIMEOUT) {
                self.failed.store(true, Ordering::SeqCst);
                return Err(CommitError::Record(format!(
                    "cannot start this instance's transactions: {e}"
                )));
            }
        }
        let mut pending: Vec<OwnedMessage> = Vec::new();
        let mut first_at: Option<Instant> = None;
        let mut summary = Summary::default();
        let mut rewind = Rewind::default();
        let mut refusals = Refusals::default();
        loop {
            let wait = first_at.map_or(Duration::from_secs(1), |t| {
                self.linger.saturating_sub(t.elapsed())
            });
            let (flush, done, stop) = match from_consumer.recv_timeout(wait) {
                Ok(ToWriter::Record(m)) => {
                    if rewind.accepts(&m) {
                        pending.push(m);
                        first_at.get_or_insert_with(Instant::now);
                    }
                    (pending.len() >= self.batch_size, None, false)
                }
                Ok(ToWriter::Flush(done)) => (true, Some(done), false),
                Ok(ToWriter::Stop) | Err(RecvTimeoutError::Disconnected) => (true, None, true),
                Err(RecvTimeoutError::Timeout) => (true, None, false),
            };
            if flush && !pending.is_empty() {
                let failed = match self.flush(&pending, refusals.first_cut()) {
                    Ok(committed) => {
                        summary.add(&committed.summary);
                        refusals.reset();
                        None
                    }
                    Err(Failure::Aborted(e)) if refusals.again(&e) => {
                        self.metrics.transactions_aborted.inc();
                        tracing::warn!(
                            error = %e,
                            records = pending.len(),
                            refused_in_a_row = refusals.in_a_row(),
                            "the batch's transaction was refused and aborted; its records are read again"
                        );
                        match rewind.seek(&self.consumer, &pending) {
                            Ok(()) => {
                                refusals.wait(&self.stopping);
                                None
                            }
                            Err(e) => Some(e),
                        }
                    }
                    Err(Failure::Aborted(e) | Failure::Stop(e)) => Some(e),
                };
                if let Some(e) = failed {
                    self.failed.store(true, Ordering::SeqCst);
                    // The batches before this one are durable: their offsets stand.
                    self.commit_acknowledged();
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return Err(e);
                }
                pending.clear();
                first_at = None;
            }
            if let Some(done) = done {
                // Partitions are about to move, or the service to stop: what the
                // asynchronous commits carried is made sure of first, and every partition
                // assigned next starts from the group's offsets, rewound or not.
                self.commit_acknowledged();
                rewind.clear();
                let _ = done.send(());
            }
            if stop {
                self.commit_acknowledged();
                tracing::info!(summary = ?summary, "consumer stopping");
                return Ok(summary);
            }
        }
    }

    /// Scale-out: before the first batch after partitions were assigned, waits until this
    /// instance's view holds everything the record topic held then. A partition's previous
    /// owner has committed or been fenced by now, so the view then continues each chain from
    /// its last committed event and knows every message it handled (redeliveries dedupe).
    fn catch_up(&self, so: &ScaleOut) -> Result<(), CommitError> {
        let epoch = so.assignments.load(Ordering::SeqCst);
        if so.caught_up.load(Ordering::SeqCst) == epoch {
            return Ok(());
        }
        let mut ends = Vec::new();
        for p in 0..so.ledger_partitions {
            let high = super::view::end_offset(&self.consumer, &so.topics.ledger, p)
                .map_err(|e| CommitError::Record(format!("end offsets: {e}")))?;
            ends.push((p, high));
        }
        let started = Instant::now();
        let mut warned = Instant::now();
        loop {
            let mut behind = 0;
            for (p, end) in &ends {
                if self.ledger.view_cursor(*p)? < *end {
                    behind += 1;
                }
            }
            if behind == 0 {
                break;
            }
            if self.stopping.load(Ordering::SeqCst) {
                return Err(CommitError::Record(
                    "stopped before the view caught up with the record topic".into(),
                ));
            }
            if warned.elapsed() > Duration::from_secs(10) {
                warned = Instant::now();
                tracing::warn!(
                    partitions_behind = behind,
                    waited_secs = started.elapsed().as_secs(),
                    "waiting for the view to catch up with the record topic before writing"
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::info!(
            waited_ms = started.elapsed().as_millis() as u64,
            "view caught up with the record topic; writing"
        );
        so.caught_up.store(epoch, Ordering::SeqCst);
        Ok(())
    }

    fn flush(&self, pending: &[OwnedMessage], first_cut: Cut) -> Result<Committed, Failure> {
        let started = Instant::now();
        if let Some(so) = &self.scale_out {
            self.catch_up(so).map_err(Failure::Stop)?;
            so.producer
                .begin_transaction()
                .map_err(|e| Failure::Stop(CommitError::Record(format!("begin: {e}"))))?;
        }
        let inputs: Vec<Input<'_>> = pending
            .iter()
            .map(|m| Input::Record {
                bytes: m.payload(),
                key: m.key(),
                origin: Origin {
                    topic: Some(m.topic().to_string()),
                    kafka_partition: Some(m.partition()),
                    offset: Some(m.offset()),
                    line: None,
                },
                partition: u32::try_from(m.partition()).unwrap_or(0),
            })
            .collect();
        let mut sinks = KafkaSinks {
            writer: self,
            pending,
            first_cut,
        };
        let committed = commit::commit(
            &self.ledger,
            &self.settings,
            &inputs,
            &mut sinks,
            Utc::now(),
        );
        let committed = match (committed, &self.scale_out) {
            (Ok(c), _) => c,
            (Err(e), None) => return Err(Failure::Stop(e)),
            (Err(e), Some(so)) => {
                tracing::error!(error = %e, "batch failed; aborting its transaction");
                let aborted = so.producer.abort_transaction(TXN_TIMEOUT);
                if let Err(a) = &aborted {
                    tracing::error!(error = %a, "abort failed; the broker aborts it at its timeout");
                }
                // Only Kafka's refusals are worth a second try: a local storage error, or
                // a producer that cannot even abort (fenced by an instance with its id),
                // stops the instance as before.
                let kafka = matches!(e, CommitError::Record(_) | CommitError::DeadLetters { .. });
                let stopping = self.stopping.load(Ordering::SeqCst);
                return Err(if aborted.is_ok() && kafka && !stopping {
                    Failure::Aborted(e)
                } else {
                    Failure::Stop(e)
                });
            }
        };
        self.metrics.batches.inc();
        self.metrics.records_read.inc_by(committed.summary.read);
        self.metrics
            .events_appended
            .inc_by(committed.summary.events);
        self.metrics
            .clock_corrected
            .inc_by(committed.summary.clock_corrected);
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            records = pending.len(),
            events = committed.summary.events,
            dead_lettered = committed.dead_lettered,
            duplicates = committed.summary.duplicates,
            "batch committed"
        );
        Ok(committed)
    }

    /// Commits, synchronously and with retries, the offsets acknowledged since the last such
    /// commit: the asynchronous commits after each batch may have failed or still be in
    /// flight, and a partition's next owner starts from what the group has.
    fn commit_acknowledged(&self) {
        let acked = std::mem::take(&mut *self.acked.lock().unwrap_or_else(|p| p.into_inner()));
        if acked.is_empty() {
            return;
        }
        match offsets(acked.iter().map(|((t, p), o)| ((t.as_str(), *p), *o))) {
            Ok(tpl) => self.commit_sync(&tpl),
            Err(e) => tracing::warn!(error = %e, "offsets not committed; the records come back"),
        }
    }

    /// A synchronous commit, retried briefly. One that still fails (a rebalance in progress,
    /// a coordinator move) is harmless: the records come back and their ids are remembered.
    fn commit_sync(&self, tpl: &TopicPartitionList) {
        for attempt in 1..=5 {
            match self.consumer.commit(tpl, CommitMode::Sync) {
                Ok(()) => return,
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

/// Why a batch did not commit.
enum Failure {
    /// Scale-out: its transaction was aborted, so it may be read again (`rewind.rs`).
    Aborted(CommitError),
    /// The service stops: the batch is read again on the next start.
    Stop(CommitError),
}

/// Dead letters to the dead-letter topic, offsets to the consumer group.
struct KafkaSinks<'a> {
    writer: &'a Writer,
    pending: &'a [OwnedMessage],
    /// The copy each dead letter starts as (`dead_letters.rs`).
    first_cut: Cut,
}

impl Sinks for KafkaSinks<'_> {
    fn dead_letters(&mut self, dead: &[Dead<'_>], now: DateTime<Utc>) -> Result<(), CommitError> {
        let w = self.writer;
        DeadLetters {
            producer: w.scale_out.as_ref().map_or(&w.producer, |so| &so.producer),
            topic: &w.dead_letter_topic,
            metrics: &w.metrics,
            stopping: &w.stopping,
            in_transaction: w.scale_out.is_some(),
            first_cut: self.first_cut,
        }
        .produce(dead, now)
    }

    /// Scale-out: the batch, its feed, replies and offsets in one transaction; this ledger
    /// then takes the batch without an fsync, since Kafka holds it (`record.rs`).
    fn record(&mut self, staged: &mut Staged<'_>) -> Result<(), CommitError> {
        let w = self.writer;
        let Some(so) = &w.scale_out else {
            return Ok(());
        };
        Txn {
            producer: &so.producer,
            consumer: &w.consumer,
            topics: &so.topics,
            consent_partitions: so.consent_partitions,
            metrics: &w.metrics,
            pending: self.pending,
        }
        .commit(staged)?;
        staged.skip_sync();
        Ok(())
    }

    /// Commits the next offset of each input partition, once the batch is durable (invariant
    /// 4). Asynchronously: a synchronous commit per batch held the writer for a round trip to
    /// the group coordinator, 500 times per million chat records, during which nothing else
    /// ran. Offsets only grow, so a failed commit is carried by the next one, and the writer
    /// commits synchronously before partitions move and before it stops.
    fn acknowledge(&mut self, _: &Committed) -> Result<(), CommitError> {
        if self.writer.scale_out.is_some() {
            // Committed in the batch's transaction (`record`).
            return Ok(());
        }
        let next = next_offsets(self.pending);
        let tpl = offsets(next.iter().map(|(k, o)| (*k, *o)))
            .map_err(|e| CommitError::Acknowledge(e.to_string()))?;
        {
            let mut acked = self.writer.acked.lock().unwrap_or_else(|p| p.into_inner());
            for ((topic, partition), offset) in next {
                let slot = acked.entry((topic.to_string(), partition)).or_insert(0);
                *slot = (*slot).max(offset);
            }
        }
        if let Err(e) = self.writer.consumer.commit(&tpl, CommitMode::Async) {
            self.writer.metrics.commit_errors.inc();
            tracing::warn!(error = %e, "offset commit not sent; committing synchronously");
            self.writer.commit_sync(&tpl);
        }
        Ok(())
    }
}

/// The next offset of each (topic, partition) of a batch's input.
pub(super) fn next_offsets(pending: &[OwnedMessage]) -> BTreeMap<(&str, i32), i64> {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in pending {
        let n = next.entry((m.topic(), m.partition())).or_insert(0);
        *n = (*n).max(m.offset() + 1);
    }
    next
}

/// The commit list of the next offset of each (topic, partition).
pub(super) fn offsets<'a>(
    next: impl Iterator<Item = ((&'a str, i32), i64)>,
) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    Ok(tpl)
}
