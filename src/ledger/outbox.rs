//! The outbox: what must reach subscribers (consent events) and customers (replies), written in
//! the same transaction as the events, so a crash between append and publish loses nothing.
//! Relays read it from the front and delete what their sink acknowledged: delivery is at least
//! once, and every payload carries an id subscribers dedupe on.

use serde::{Deserialize, Serialize};

use super::{decode, Ledger, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxTarget {
    /// `consent.events` topic / `consent-events.jsonl`.
    ConsentEvents,
    /// `outbound.messages` topic / `outbox.jsonl`.
    OutboundMessages,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub target: OutboxTarget,
    /// Ledger partition: consent events go to the same partition of `consent.events`.
    pub partition: u32,
    /// Kafka key, `tenant:contact`, so one contact's records stay in order.
    pub key: String,
    /// The record, as JSON text.
    pub payload: String,
}

impl Ledger {
    /// Up to `limit` entries from the front of the outbox, oldest first, with their ids.
    pub fn outbox_pending(&self, limit: usize) -> Result<Vec<(u64, OutboxEntry)>> {
        self.outbox
            .iter()
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                let id = u64::from_be_bytes(key.as_ref().try_into().unwrap_or_default());
                Ok((id, decode("outbox", &value)?))
            })
            .collect()
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Removes entries a sink has durably accepted.
    pub fn outbox_ack(&self, ids: &[u64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for id in ids {
            batch.remove(&id.to_be_bytes());
        }
        self.outbox.apply_batch(batch)?;
        self.sync()
    }
}
