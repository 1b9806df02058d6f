//! Scale-out's view: every instance reads all of the record topic (and the key topic), as
//! committed, into its own ledger, outside the consumer group. So any instance answers for
//! every contact, whichever instance processed the contact's STOP.
//!
//! An entry this ledger holds already is skipped: the instance that wrote it took it in with
//! its transaction, and moved its cursor over it in the same write. An event is taken in only
//! where it continues its chain ([`crate::ledger::Staged::adopt`]); one that does not means
//! the ledger and the topic disagree, and the view stops (and with it the service) rather
//! than answer from a wrong view. Events are indexed by the keyed hashes their sealed fields
//! carry, so the view needs no data key; readers do, so an event whose key has not arrived
//! yet waits for it. The key is in the same transaction, on the key topic, which this reader
//! follows too: the wait lasts until the key topic is read up to its end offsets as they
//! stood when the wait began. A key still missing then was destroyed (the person erased
//! since, its key tombstoned), and the event is taken in without it.
//!
//! Cursors: the next offset of each partition taken in, in the ledger's `meta`, written with
//! what was taken in. Key-topic partition `p` keeps its cursor as partition `-1 - p`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use super::record::{INDEX_KEY_PREFIX, KIND, KIND_EVENT, KIND_ROWS};
use super::KafkaModeError;
use crate::config::KafkaConfig;
use crate::ledger::replica::Adopted;
use crate::ledger::{Ledger, LedgerError};
use crate::metrics::Metrics;

/// How long the view's fetches wait at the end of a partition (see [`View::new`]).
const VIEW_FETCH_WAIT_MS: &str = "20";

/// Entries taken in per write, at most.
const ROUND: usize = 5000;
/// How long an event may wait for its key before the wait is logged as an error.
const KEY_WAIT_WARNING: Duration = Duration::from_secs(30);

/// The key-topic partition `p`'s cursor slot.
fn keys_slot(p: i32) -> i32 {
    -1 - p
}

/// Remembers each record-topic partition's last stable offset from librdkafka's statistics,
/// for the view's lag, without a request of its own.
#[derive(Default)]
pub struct ViewCtx {
    ledger_topic: String,
    stable: Mutex<BTreeMap<i32, i64>>,
}

impl ClientContext for ViewCtx {
    fn stats(&self, statistics: Statistics) {
        let Some(t) = statistics.topics.get(&self.ledger_topic) else {
            return;
        };
        let mut stable = self.stable.lock().unwrap_or_else(|p| p.into_inner());
        for (partition, p) in &t.partitions {
            if *partition >= 0 && p.ls_offset >= 0 {
                stable.insert(*partition, p.ls_offset);
            }
        }
    }
}

impl ConsumerContext for ViewCtx {}

pub struct View {
    ledger: Arc<Ledger>,
    consumer: BaseConsumer<ViewCtx>,
    ledger_topic: String,
    keys_topic: String,
    partitions: i32,
    keys_partitions: i32,
    metrics: Metrics,
    pending: BTreeMap<i32, VecDeque<OwnedMessage>>,
    /// Each partition whose first entry waits for its key: since when, and the key topic's
    /// end offsets at that moment, past which the key is not coming (`None` until the
    /// broker told them).
    waiting: BTreeMap<i32, (Instant, Option<BTreeMap<i32, i64>>)>,
    /// The end offsets when the view started, and whether it has reached them.
    ends: Vec<i64>,
    pub caught_up: Arc<AtomicBool>,
}

impl View {
    pub fn new(
        k: &KafkaConfig,
        instance: &str,
        ledger: Arc<Ledger>,
        metrics: Metrics,
        partitions: i32,
    ) -> Result<View, KafkaModeError> {
        let mut config = super::topics::client_config(k);
        // A read-committed fetch waiting at the end of a partition is not woken by the
        // transaction marker that makes the waiting entries readable: it returns after
        // `fetch.wait.max.ms` (500 ms by default), which would be most of the time a STOP
        // takes to show on the other instances.
        if !k.properties.contains_key("fetch.wait.max.ms") {
            config.set("fetch.wait.max.ms", VIEW_FETCH_WAIT_MS);
        }
        let consumer: BaseConsumer<ViewCtx> = config
            .set("group.id", format!("{}.view.{instance}", k.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("statistics.interval.ms", "1000")
            .create_with_context(ViewCtx {
                ledger_topic: k.topics.ledger.clone(),
                stable: Default::default(),
            })?;
        let keys_partitions = consumer
            .fetch_metadata(Some(&k.topics.keys), Duration::from_secs(10))?
            .topics()
            .first()
            .map_or(1, |t| t.partitions().len().max(1) as i32);
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            let from = ledger.view_cursor(p).map_err(ledger_error)?;
            tpl.add_partition_offset(&k.topics.ledger, p, Offset::Offset(from))?;
        }
        for p in 0..keys_partitions {
            let from = ledger.view_cursor(keys_slot(p)).map_err(ledger_error)?;
            tpl.add_partition_offset(&k.topics.keys, p, Offset::Offset(from))?;
        }
        consumer.assign(&tpl)?;
        let mut ends = Vec::new();
        for p in 0..partitions {
            ends.push(end_offset(&consumer, &k.topics.ledger, p)?);
        }
        Ok(View {
            ledger,
            consumer,
            ledger_topic: k.topics.ledger.clone(),
            keys_topic: k.topics.keys.clone(),
            partitions,
            keys_partitions,
            metrics,
            pending: BTreeMap::new(),
            waiting: BTreeMap::new(),
            ends,
            caught_up: Arc::new(AtomicBool::new(false)),
        })
    }

    /// [`View::run`] on a thread of its own, `record-view`.
    pub fn spawn(
        self,
        stop: Arc<AtomicBool>,
        failed: Arc<AtomicBool>,
    ) -> Result<std::thread::JoinHandle<Result<(), LedgerError>>, KafkaModeError> {
        std::thread::Builder::new()
            .name("record-view".into())
            .spawn(move || self.run(stop, failed))
            .map_err(|_| KafkaModeError::Panicked("view"))
    }

    /// Reads and takes in until `stop`; on an error, sets `failed` and returns it.
    pub fn run(
        mut self,
        stop: Arc<AtomicBool>,
        failed: Arc<AtomicBool>,
    ) -> Result<(), LedgerError> {
        while !stop.load(Ordering::SeqCst) {
            let mut round = Vec::new();
            if let Some(first) = self.consumer.poll(Duration::from_millis(100)) {
                round.push(first);
                while round.len() < ROUND {
                    match self.consumer.poll(Duration::ZERO) {
                        Some(m) => round.push(m),
                        None => break,
                    }
                }
            }
            let mut keys_next: BTreeMap<i32, i64> = BTreeMap::new();
            for m in round {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "record topic read error; librdkafka retries");
                        continue;
                    }
                };
                if m.topic() == self.keys_topic {
                    if let Err(e) = self.take_key(&m) {
                        failed.store(true, Ordering::SeqCst);
                        return Err(e);
                    }
                    keys_next.insert(m.partition(), m.offset() + 1);
                } else {
                    self.pending
                        .entry(m.partition())
                        .or_default()
                        .push_back(m.detach());
                }
            }
            if let Err(e) = self.take_in(&keys_next) {
                tracing::error!(error = %e, "the view cannot take in the record topic; stopping");
                failed.store(true, Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(())
    }

    fn take_key(&self, m: &rdkafka::message::BorrowedMessage<'_>) -> Result<(), LedgerError> {
        let Some(slot) = m.key() else { return Ok(()) };
        if slot.starts_with(INDEX_KEY_PREFIX.as_bytes()) {
            return Ok(());
        }
        self.ledger.adopt_key(slot, m.payload())
    }

    /// Takes in what waits, partition by partition in offset order, and moves the cursors,
    /// all in one write.
    fn take_in(&mut self, keys_next: &BTreeMap<i32, i64>) -> Result<(), LedgerError> {
        let positions = self.positions();
        let mut staged = self.ledger.stage();
        staged.skip_sync();
        let mut adopted = 0u64;
        let mut lag = 0i64;
        for p in 0..self.partitions {
            let cursor = self.ledger.view_cursor(p)?;
            let queue = self.pending.entry(p).or_default();
            let mut next = cursor;
            while let Some(m) = queue.front() {
                if m.offset() < cursor {
                    queue.pop_front();
                    continue;
                }
                let payload = m.payload().unwrap_or_default();
                match entry_kind(m) {
                    Some(KIND_EVENT) => {
                        let keys_final = self.waiting.get(&p).is_some_and(|(_, ends)| {
                            ends.as_ref().is_some_and(|ends| {
                                ends.iter().all(|(kp, end)| {
                                    let at = positions.get(&(self.keys_topic.clone(), *kp));
                                    at.copied().unwrap_or(0) >= *end
                                })
                            })
                        });
                        match staged.adopt(p as u32, payload, keys_final)? {
                            Adopted::Appended => adopted += 1,
                            Adopted::Known => {}
                            Adopted::MissingKey => {
                                let (consumer, topic) = (&self.consumer, &self.keys_topic);
                                let wait = self.waiting.entry(p).or_insert((Instant::now(), None));
                                if wait.1.is_none() {
                                    wait.1 = key_ends(consumer, topic, self.keys_partitions);
                                }
                                if let Some((since, _)) = self.waiting.get_mut(&p) {
                                    if since.elapsed() > KEY_WAIT_WARNING {
                                        tracing::error!(partition = p, offset = m.offset(), "an event's data key has not arrived on the key topic; the view of this partition waits");
                                        *since = Instant::now();
                                    }
                                }
                                break;
                            }
                        }
                    }
                    Some(KIND_ROWS) => {
                        staged.adopt_rows(payload)?;
                    }
                    _ => tracing::warn!(
                        partition = p,
                        offset = m.offset(),
                        "record topic entry of no known kind; skipped"
                    ),
                }
                self.waiting.remove(&p);
                next = m.offset() + 1;
                queue.pop_front();
            }
            if queue.is_empty() {
                if let Some(position) = positions.get(&(self.ledger_topic.clone(), p)) {
                    next = next.max(*position);
                }
            }
            if next > cursor {
                staged.set_view_cursor(p, next);
            }
            let stable = self
                .consumer
                .context()
                .stable
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&p)
                .copied();
            lag += stable.map_or(0, |s| (s - next.max(cursor)).max(0));
        }
        for p in 0..self.keys_partitions {
            let cursor = self.ledger.view_cursor(keys_slot(p))?;
            let mut next = keys_next.get(&p).copied().unwrap_or(cursor);
            if let Some(position) = positions.get(&(self.keys_topic.clone(), p)) {
                next = next.max(*position);
            }
            if next > cursor {
                staged.set_view_cursor(keys_slot(p), next);
            }
        }
        staged.commit()?;
        self.metrics.events_adopted.inc_by(adopted);
        self.metrics.view_lag.set(lag);
        if !self.caught_up.load(Ordering::SeqCst) {
            let mut done = true;
            for (p, end) in self.ends.iter().enumerate() {
                done &= self.ledger.view_cursor(p as i32)? >= *end;
            }
            if done {
                tracing::info!("view caught up with the record topic");
                self.caught_up.store(true, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// The consumer's position in each partition: past control records and aborted
    /// transactions, which the reader never sees as entries.
    fn positions(&self) -> BTreeMap<(String, i32), i64> {
        let mut out = BTreeMap::new();
        if let Ok(tpl) = self.consumer.position() {
            for e in tpl.elements() {
                if let Offset::Offset(o) = e.offset() {
                    out.insert((e.topic().to_string(), e.partition()), o);
                }
            }
        }
        out
    }
}

/// The key topic's end offsets (high watermarks: every record committed by then is below
/// them), for an event waiting for its key.
/// `None` when the broker does not answer: the event waits, and the next round asks again.
fn key_ends(
    consumer: &BaseConsumer<ViewCtx>,
    topic: &str,
    partitions: i32,
) -> Option<BTreeMap<i32, i64>> {
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        match end_offset(consumer, topic, p) {
            Ok(end) => ends.insert(p, end),
            Err(e) => {
                tracing::warn!(error = %e, partition = p, "cannot read the key topic's end offset; asking again");
                return None;
            }
        };
    }
    Some(ends)
}

/// The end offset of a partition, asked again for a while when the broker does not know the
/// partition yet (a topic created a moment ago, a leader moving).
pub(super) fn end_offset<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Result<i64, rdkafka::error::KafkaError> {
    let mut attempt = 0;
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Ok((_, high)) => return Ok(high),
            Err(e) if attempt < 40 => {
                attempt += 1;
                tracing::debug!(error = %e, topic, partition, "end offset not known yet; asking again");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => return Err(e),
        }
    }
}

fn entry_kind(m: &OwnedMessage) -> Option<&[u8]> {
    let headers = m.headers()?;
    headers.iter().find(|h| h.key == KIND).and_then(|h| h.value)
}

fn ledger_error(e: LedgerError) -> KafkaModeError {
    KafkaModeError::Commit(e.into())
}
