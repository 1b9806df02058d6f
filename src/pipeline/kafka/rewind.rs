//! Scale-out: a batch whose transaction the broker refused is aborted and read again, and the
//! instance goes on. The usual cause is an instance that lost its group membership while it
//! worked (a pause longer than the session timeout: a stop-the-world stall, a VM migration,
//! a frozen container): the broker refuses its input offsets for the old generation, which is
//! what fences a zombie. Nothing of the batch reached the record topic or this instance's
//! ledger, so reading it again from its first record loses and doubles nothing; stopping the
//! instance instead would only have handed its partitions to a restart.
//!
//! The consumer thread has already read past the batch, and the records it handed over since
//! wait in the channel. So each partition of the batch is sought back to the batch's first
//! record, and the writer drops what arrives for that partition until that record comes
//! again. A rebalance ends every rewind: the next owner starts from the group's committed
//! offsets, which the aborted transaction never moved.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset};

use super::consumer::Ctx;
use super::dead_letters::Cut;
use crate::pipeline::commit::CommitError;

/// Refusals in a row after which the instance stops after all, as it did before rewinds: a
/// batch the broker refuses every time (a record topic it cannot write) is not worth
/// retrying for ever, and the restart makes the failure visible. With the backoff below,
/// about 25 seconds of trying: longer than a rejoin after an eviction takes.
pub const MAX_REFUSALS_IN_A_ROW: u32 = 8;

/// The partitions sought back, and the offset each must read again first.
#[derive(Debug, Default)]
pub struct Rewind {
    points: HashMap<(String, i32), i64>,
}

impl Rewind {
    /// Seeks every partition of `batch` back to its first record in the batch. A partition
    /// no longer assigned to this instance is left to its next owner. A failed seek of a
    /// partition still ours is an error: going on would commit offsets past the batch.
    pub fn seek(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        batch: &[OwnedMessage],
    ) -> Result<(), CommitError> {
        let firsts = first_offsets(batch);
        let assigned = consumer.assignment().ok();
        for ((topic, partition), offset) in firsts {
            let ours = assigned
                .as_ref()
                .map_or(true, |a| a.find_partition(&topic, partition).is_some());
            if !ours {
                continue;
            }
            consumer
                .seek(
                    &topic,
                    partition,
                    Offset::Offset(offset),
                    Duration::from_secs(10),
                )
                .map_err(|e| {
                    CommitError::Record(format!(
                        "cannot read {topic}[{partition}] again from offset {offset} after its transaction was refused: {e}"
                    ))
                })?;
            self.points.insert((topic, partition), offset);
        }
        Ok(())
    }

    /// Whether a record the consumer thread handed over is to be taken: false for one read
    /// before the seek, still in the channel. The first record at or before the rewind point
    /// ends the partition's rewind.
    pub fn accepts(&mut self, m: &OwnedMessage) -> bool {
        // Every record passes here: no key is built while nothing is rewound.
        if self.points.is_empty() {
            return true;
        }
        let key = (m.topic().to_string(), m.partition());
        match self.points.get(&key) {
            None => true,
            Some(point) if m.offset() <= *point => {
                self.points.remove(&key);
                true
            }
            Some(_) => false,
        }
    }

    /// A rebalance: partitions are about to move, and every one assigned next starts from
    /// the group's committed offsets.
    pub fn clear(&mut self) {
        self.points.clear();
    }

    #[cfg(test)]
    fn set(&mut self, topic: &str, partition: i32, offset: i64) {
        self.points.insert((topic.to_string(), partition), offset);
    }
}

/// The first offset of each (topic, partition) of a batch.
fn first_offsets(batch: &[OwnedMessage]) -> HashMap<(String, i32), i64> {
    let mut firsts: HashMap<(String, i32), i64> = HashMap::new();
    for m in batch {
        let first = firsts
            .entry((m.topic().to_string(), m.partition()))
            .or_insert(m.offset());
        *first = (*first).min(m.offset());
    }
    firsts
}

/// Refusals in a row, the backoff between the attempts, and how small the next attempt's dead
/// letters start.
#[derive(Debug, Default)]
pub struct Refusals {
    in_a_row: u32,
    /// Of those, the refusals over a dead letter.
    over_dead_letters: u8,
}

impl Refusals {
    /// A batch committed.
    pub fn reset(&mut self) {
        *self = Refusals::default();
    }

    /// Counts the refusal `error`; false once [`MAX_REFUSALS_IN_A_ROW`] is reached.
    pub fn again(&mut self, error: &CommitError) -> bool {
        self.in_a_row += 1;
        if matches!(error, CommitError::DeadLetters { .. }) {
            self.over_dead_letters = self.over_dead_letters.saturating_add(1);
        }
        self.in_a_row < MAX_REFUSALS_IN_A_ROW
    }

    /// The copy the next attempt's dead letters start as (`dead_letters.rs`).
    pub fn first_cut(&self) -> Cut {
        Cut::after(self.over_dead_letters)
    }

    pub fn in_a_row(&self) -> u32 {
        self.in_a_row
    }

    /// 250 ms after the first refusal, doubling up to 8 s: a rejoin takes a heartbeat or
    /// two, and a broker that refuses everything is not hammered meanwhile.
    pub fn backoff(&self) -> Duration {
        let doublings = self.in_a_row.saturating_sub(1).min(5);
        Duration::from_millis(250 << doublings)
    }

    /// Sleeps the backoff, or less when the service stops.
    pub fn wait(&self, stopping: &AtomicBool) {
        let until = Instant::now() + self.backoff();
        while Instant::now() < until && !stopping.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Timestamp;

    use super::*;

    fn record(partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            None,
            None,
            "in".into(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    #[test]
    fn records_read_before_the_seek_are_dropped_until_the_batch_comes_again() {
        let mut rewind = Rewind::default();
        rewind.set("in", 0, 100);
        // Read past the batch before the seek, still in the channel.
        assert!(!rewind.accepts(&record(0, 150)));
        assert!(!rewind.accepts(&record(0, 151)));
        // Another partition was not rewound.
        assert!(rewind.accepts(&record(1, 7)));
        // The batch's first record again: taken, and the rewind is over.
        assert!(rewind.accepts(&record(0, 100)));
        assert!(rewind.accepts(&record(0, 101)));
        rewind.set("in", 2, 5);
        rewind.clear();
        assert!(rewind.accepts(&record(2, 9)));
    }

    #[test]
    fn a_batch_is_read_again_from_the_first_record_of_each_partition() {
        let batch = [record(0, 12), record(1, 3), record(0, 10), record(0, 11)];
        let firsts = first_offsets(&batch);
        assert_eq!(firsts[&("in".to_string(), 0)], 10);
        assert_eq!(firsts[&("in".to_string(), 1)], 3);
    }

    #[test]
    fn refusals_back_off_and_give_up_after_the_limit() {
        let refused = CommitError::Record("refused".into());
        let mut r = Refusals::default();
        assert!(r.again(&refused));
        assert_eq!(r.backoff(), Duration::from_millis(250));
        assert!(r.again(&refused));
        assert_eq!(r.backoff(), Duration::from_millis(500));
        for _ in 2..MAX_REFUSALS_IN_A_ROW - 1 {
            assert!(r.again(&refused));
        }
        assert_eq!(r.backoff(), Duration::from_secs(8));
        assert!(!r.again(&refused));
        r.reset();
        assert!(r.again(&refused));
    }
}
