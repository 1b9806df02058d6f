//! The log is the outbox. Relays (JSONL files in file mode, Kafka topics in `run`) follow the
//! event log and the reply log partition by partition, each from a cursor of its own, and
//! move the cursor once their sink acknowledged. Nothing is copied, read back and deleted.
//!
//! Cursors are written without an fsync: a cursor lost in a crash only makes the relay publish
//! some entries again, and every payload carries an id subscribers dedupe on (`event_id`,
//! `message_id`). They become durable with the next batch's fsync.

use super::{decode, keys, Ledger, Result};
use crate::domain::replies::OutboundMessage;

/// What a relay publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Consent events: `consent.events` / `consent-events.jsonl`.
    Events,
    /// Replies to customers: `outbound.messages` / `outbox.jsonl`.
    Replies,
}

impl Stream {
    pub const ALL: [Stream; 2] = [Stream::Events, Stream::Replies];

    fn as_str(self) -> &'static str {
        match self {
            Stream::Events => "events",
            Stream::Replies => "replies",
        }
    }

    fn head_prefix(self) -> &'static [u8] {
        match self {
            Stream::Events => b"head/",
            Stream::Replies => b"reply_head/",
        }
    }
}

/// Who follows the log. Each keeps its own cursors, so a data dir used by `ingest` and later
/// by `run` publishes everything to Kafka too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sink {
    File,
    Kafka,
}

impl Sink {
    pub const ALL: [Sink; 2] = [Sink::File, Sink::Kafka];

    fn as_str(self) -> &'static str {
        match self {
            Sink::File => "file",
            Sink::Kafka => "kafka",
        }
    }
}

/// One entry of the log, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub stream: Stream,
    /// Ledger partition: consent events go to the same partition number of `consent.events`.
    pub partition: u32,
    pub seq: u64,
    /// The Kafka key, so one person's records stay in order: `tenant:BSUID` when the event
    /// knows one, else `tenant:contact` (see [`ConsentEvent::kafka_key`]).
    pub key: String,
    /// The record as JSON: the event or the reply, opened (identifiers in clear: the feeds
    /// are where subscribers learn whom to stop). Empty for a reply to a person erased before
    /// it was published: nothing is published, and the cursor moves past it.
    pub payload: Vec<u8>,
}

impl Ledger {
    /// The seq of the last reply of `partition` (0 when it has none).
    pub fn reply_head(&self, partition: u32) -> Result<u64> {
        Ok(self
            .meta
            .get(keys::reply_head(partition))?
            .map(|v| be_u64(&v))
            .unwrap_or(0))
    }

    /// Every partition of a stream with the seq of its last entry.
    fn heads(&self, stream: Stream) -> Result<Vec<(u32, u64)>> {
        let prefix = stream.head_prefix();
        let mut out = Vec::new();
        for entry in self.meta.scan_prefix(prefix) {
            let (key, value) = entry?;
            let Some(partition) = std::str::from_utf8(&key[prefix.len()..])
                .ok()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let seq = match stream {
                Stream::Events => decode::<super::ChainHead>("meta", &value)?.seq,
                Stream::Replies => be_u64(&value),
            };
            out.push((partition, seq));
        }
        Ok(out)
    }

    /// The last seq of `partition` that `sink` has published (0: none).
    pub fn cursor(&self, sink: Sink, stream: Stream, partition: u32) -> Result<u64> {
        Ok(self
            .meta
            .get(keys::cursor(sink.as_str(), stream.as_str(), partition))?
            .map(|v| be_u64(&v))
            .unwrap_or(0))
    }

    /// Records that `sink` has published `partition` up to `seq` included, and destroys the
    /// notice keys every feed has now published.
    pub fn advance(&self, sink: Sink, stream: Stream, partition: u32, seq: u64) -> Result<()> {
        self.meta.insert(
            keys::cursor(sink.as_str(), stream.as_str(), partition),
            seq.to_be_bytes(),
        )?;
        self.release_notices(partition)
    }

    /// Up to `limit` entries `sink` has not published yet, oldest first in each partition.
    pub fn unpublished(&self, sink: Sink, stream: Stream, limit: usize) -> Result<Vec<LogEntry>> {
        let tree = match stream {
            Stream::Events => &self.events,
            Stream::Replies => &self.replies,
        };
        let mut out = Vec::new();
        for (partition, head) in self.heads(stream)? {
            let from = self.cursor(sink, stream, partition)? + 1;
            if from > head {
                continue;
            }
            let range = keys::event(partition, from)..=keys::event(partition, head);
            for entry in tree.range(range) {
                if out.len() >= limit {
                    return Ok(out);
                }
                let (key, stored) = entry?;
                let seq = be_u64(&key[4..]);
                let (key, payload) = match stream {
                    Stream::Events => {
                        let e = self.open_event(decode("events", &stored)?)?;
                        (e.kafka_key(), e.stored_bytes())
                    }
                    Stream::Replies => {
                        match self.open_reply(decode::<OutboundMessage>("replies", &stored)?)? {
                            Some(m) => (
                                format!("{}:{}", m.tenant, m.to),
                                serde_json::to_vec(&m).expect("plain struct"),
                            ),
                            None => (String::new(), Vec::new()),
                        }
                    }
                };
                out.push(LogEntry {
                    stream,
                    partition,
                    seq,
                    key,
                    payload,
                });
            }
        }
        Ok(out)
    }

    /// Entries appended but not yet published by `sink`, every stream and partition.
    pub fn backlog(&self, sink: Sink) -> Result<u64> {
        let mut total = 0;
        for stream in Stream::ALL {
            for (partition, head) in self.heads(stream)? {
                total += head.saturating_sub(self.cursor(sink, stream, partition)?);
            }
        }
        Ok(total)
    }

    /// Writes cursor moves to the files without an fsync, so that a clean exit keeps them.
    pub fn flush_cursors(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

fn be_u64(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}
