//! Scale-out's step 4 ([`crate::pipeline::commit`]): a batch goes to Kafka, the record, in
//! one transaction with everything it produced and the input offsets it consumed. Only once
//! the broker committed that transaction does this instance's ledger (a view of the record
//! topic) take the batch; an aborted one leaves no trace anywhere, and its input is read again.
//!
//! In the transaction, for each batch:
//! - `consent.keys`: the data keys it created, wrapped (before the events they open), and a
//!   tombstone for each key an erasure destroyed;
//! - `consent.ledger`: each event, stored form, on the partition number of its chain (the
//!   inbound partition), and the rows no event implies ([`crate::ledger::replica`]);
//! - `consent.events` and `outbound.messages`: the subscriber feed and the replies, opened;
//! - the dead letters ([`super::dead_letters`], produced before, in the same transaction);
//! - the input offsets, with the group's metadata, so that a zombie instance whose partitions
//!   moved is fenced: its transaction cannot commit.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::Message;

use super::consumer::Ctx;
use crate::config::Topics;
use crate::ledger::replica::Rows;
use crate::ledger::Staged;
use crate::metrics::{Metrics, TopicLabels};
use crate::pipeline::commit::CommitError;

/// The header that tells a record topic entry's kind.
pub const KIND: &str = "kind";
pub const KIND_EVENT: &[u8] = b"event";
pub const KIND_ROWS: &[u8] = b"rows";
/// Key topic keys of the index secret start with this (`index/` and a digest of the wrapped
/// secret, so that two first instances racing both keep their record through compaction).
pub const INDEX_KEY_PREFIX: &str = "index/";

/// Rows per record topic entry, at most, in bytes: well under the broker's default 1 MiB.
const ROWS_CHUNK_BYTES: usize = 256 * 1024;

/// How long a transaction's calls may take before the batch fails: it is then aborted and
/// read again (`rewind.rs`), or the service stops and its owner reads it next.
pub const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything scale-out's transaction needs besides the batch itself.
pub struct Txn<'a> {
    pub producer: &'a FutureProducer,
    pub consumer: &'a BaseConsumer<Ctx>,
    pub topics: &'a Topics,
    pub consent_partitions: i32,
    pub metrics: &'a Metrics,
    /// The batch's input, for its offsets; the first record's partition holds its rows.
    pub pending: &'a [OwnedMessage],
}

impl Txn<'_> {
    /// Produces the batch, commits the transaction, and tells the ledger where its view of
    /// each record-topic partition now stands. The caller began the transaction and aborts it
    /// on an error.
    pub fn commit(&self, staged: &mut Staged<'_>) -> Result<(), CommitError> {
        let replica = staged.replica()?;
        let t = self.topics;
        let mut sends: Vec<(&str, DeliveryFuture)> = Vec::new();
        for (record, wrapped) in &replica.keys {
            let entry = FutureRecord::to(&t.keys)
                .key(record.as_slice())
                .payload(*wrapped);
            sends.push((&t.keys, self.send(entry)?));
        }
        for record in &replica.destroyed {
            let tombstone = FutureRecord::<[u8], [u8]>::to(&t.keys).key(record.as_slice());
            sends.push((&t.keys, self.send(tombstone)?));
        }
        for (partition, seq, stored, opened) in &replica.events {
            let key = format!("{partition}/{seq}");
            let entry = FutureRecord::to(&t.ledger)
                .partition(*partition as i32)
                .key(key.as_bytes())
                .payload(*stored)
                .headers(kind(KIND_EVENT));
            sends.push((&t.ledger, self.send(entry)?));
            let feed_key = opened.kafka_key();
            let feed = opened.stored_bytes();
            let feed_partition = (*partition % self.consent_partitions.max(1) as u32) as i32;
            let record = FutureRecord::to(&t.consent_events)
                .partition(feed_partition)
                .key(feed_key.as_bytes())
                .payload(feed.as_slice());
            sends.push((&t.consent_events, self.send(record)?));
        }
        let home = self.pending.first().map_or(0, |m| m.partition());
        for chunk in chunks(&replica.rows)? {
            let entry = FutureRecord::to(&t.ledger)
                .partition(home)
                .key("rows".as_bytes())
                .payload(chunk.as_bytes())
                .headers(kind(KIND_ROWS));
            sends.push((&t.ledger, self.send(entry)?));
        }
        for reply in &replica.replies {
            let key = format!("{}:{}", reply.tenant, reply.to);
            let payload = serde_json::to_vec(reply).expect("plain struct");
            let record = FutureRecord::to(&t.outbound)
                .key(key.as_bytes())
                .payload(payload.as_slice());
            sends.push((&t.outbound, self.send(record)?));
        }
        let (topics, futures): (Vec<&str>, Vec<DeliveryFuture>) = sends.into_iter().unzip();
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for (topic, delivered) in topics
            .iter()
            .zip(futures::executor::block_on(join_all(futures)))
        {
            let (partition, offset) = match delivered {
                Ok(Ok(at)) => (at.partition, at.offset),
                Ok(Err((e, _))) => return Err(failed(format!("{topic}: {e}"))),
                Err(_) => return Err(failed(format!("{topic}: the producer went away"))),
            };
            self.metrics
                .published
                .get_or_create(&TopicLabels {
                    topic: topic.to_string(),
                })
                .inc();
            if *topic == t.ledger {
                let n = next.entry(partition).or_insert(0);
                *n = (*n).max(offset + 1);
            }
        }
        let offsets = super::writer::offsets(super::writer::next_offsets(self.pending).into_iter())
            .map_err(|e| failed(e.to_string()))?;
        let group = self
            .consumer
            .group_metadata()
            .ok_or_else(|| failed("the consumer has no group metadata".into()))?;
        self.producer
            .send_offsets_to_transaction(&offsets, &group, TXN_TIMEOUT)
            .map_err(|e| failed(format!("offsets: {e}")))?;
        self.producer
            .commit_transaction(TXN_TIMEOUT)
            .map_err(|e| failed(format!("commit: {e}")))?;
        for (partition, offset) in next {
            staged.set_view_cursor(partition, offset);
        }
        staged.forget_notices();
        Ok(())
    }

    fn send<'r>(
        &self,
        record: FutureRecord<'r, [u8], [u8]>,
    ) -> Result<DeliveryFuture, CommitError> {
        self.producer
            .send_result(record)
            .map_err(|(e, _)| failed(e.to_string()))
    }
}

fn kind(value: &[u8]) -> OwnedHeaders {
    OwnedHeaders::new().insert(Header {
        key: KIND,
        value: Some(value),
    })
}

fn failed(detail: String) -> CommitError {
    CommitError::Record(detail)
}

/// The rows cut into entries of at most [`ROWS_CHUNK_BYTES`] (a single larger row alone).
fn chunks(rows: &Rows) -> Result<Vec<Rows>, CommitError> {
    let mut out = vec![Rows::default()];
    for (tree, key, value) in Rows::decode(rows.as_bytes())? {
        let last = out.last_mut().expect("never empty");
        if !last.is_empty() && last.len_bytes() + key.len() + value.len() + 9 > ROWS_CHUNK_BYTES {
            out.push(Rows::default());
        }
        out.last_mut().expect("never empty").push(tree, key, value);
    }
    out.retain(|r| !r.is_empty());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::replica::RowTree;

    #[test]
    fn rows_are_cut_at_row_boundaries_under_the_chunk_size() {
        let mut rows = Rows::default();
        let value = vec![7u8; 1000];
        for i in 0..600u32 {
            rows.push(RowTree::Dedupe, &i.to_be_bytes(), &value);
        }
        let cut = chunks(&rows).unwrap();
        assert!(cut.len() >= 3);
        let mut n = 0;
        for c in &cut {
            assert!(c.len_bytes() <= ROWS_CHUNK_BYTES);
            n += Rows::decode(c.as_bytes()).unwrap().len();
        }
        assert_eq!(n, 600);
        assert!(chunks(&Rows::default()).unwrap().is_empty());
    }
}
