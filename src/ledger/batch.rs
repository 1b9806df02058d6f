//! A batch being built: reads see the ledger plus what was staged, and [`Staged::commit`]
//! writes it all in one sled transaction, then flushes and fsyncs. Nothing is visible to other
//! readers, and no input offset is stored, until the whole batch is durable (invariant 4).

use std::collections::{BTreeMap, HashMap, HashSet};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use chrono::{DateTime, Duration, Utc};

use super::outbox::OutboxEntry;
use super::sent::{keys as sent_keys, lookup_floor};
use super::{keys, ChainHead, Ledger, LedgerError, Result};
use crate::domain::analytics::{DeliveryRecord, SentRef, SignalKind};
use crate::domain::consent::ContactConsent;
use crate::domain::contact::Contact;
use crate::domain::event::{ConsentEvent, Purpose};
use crate::domain::inbound::{DeliveryStatus, SentCategory};

pub struct Staged<'a> {
    ledger: &'a Ledger,
    _writer: std::sync::MutexGuard<'a, ()>,
    consent: HashMap<(String, Contact), ContactConsent>,
    dirty: HashSet<(String, Contact)>,
    seen: HashSet<Vec<u8>>,
    dedupe: Vec<(Vec<u8>, Vec<u8>)>,
    heads: BTreeMap<u32, ChainHead>,
    events: Vec<ConsentEvent>,
    outbox: Vec<OutboxEntry>,
    offsets: BTreeMap<(String, i32), i64>,
    /// Sent records by `sent` key, and the same by `sent_by_contact` key, so that an opt-out
    /// later in the batch is attributed to a send earlier in it.
    sent: BTreeMap<Vec<u8>, SentRef>,
    sent_by_contact: BTreeMap<Vec<u8>, SentRef>,
    delivery: BTreeMap<Vec<u8>, DeliveryRecord>,
    signals: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a commit wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    pub events: usize,
    pub outbox: usize,
}

impl<'a> Staged<'a> {
    pub(super) fn new(ledger: &'a Ledger, writer: std::sync::MutexGuard<'a, ()>) -> Self {
        Staged {
            ledger,
            _writer: writer,
            consent: HashMap::new(),
            dirty: HashSet::new(),
            seen: HashSet::new(),
            dedupe: Vec::new(),
            heads: BTreeMap::new(),
            events: Vec::new(),
            outbox: Vec::new(),
            offsets: BTreeMap::new(),
            sent: BTreeMap::new(),
            sent_by_contact: BTreeMap::new(),
            delivery: BTreeMap::new(),
            signals: Vec::new(),
        }
    }

    /// Stages a sent record; false when `(tenant, message id)` is already known, so a
    /// redelivered record neither counts twice nor moves the original send.
    pub fn stage_sent(&mut self, tenant: &str, sent: SentRef) -> Result<bool> {
        let key = sent_keys::sent(tenant, &sent.message_id);
        if self.sent.contains_key(&key) || self.ledger.sent.contains_key(&key)? {
            return Ok(false);
        }
        let by_contact = sent_keys::sent_by_contact(
            tenant,
            sent.contact.as_str(),
            sent.sent_at,
            &sent.message_id,
        );
        self.sent_by_contact.insert(by_contact, sent.clone());
        self.sent.insert(key, sent);
        Ok(true)
    }

    /// The sent record of `message_id`, in this batch or the ledger.
    pub fn sent_message(&self, tenant: &str, message_id: &str) -> Result<Option<SentRef>> {
        if let Some(s) = self.sent.get(&sent_keys::sent(tenant, message_id)) {
            return Ok(Some(s.clone()));
        }
        self.ledger.sent_message(tenant, message_id)
    }

    /// The latest marketing send to `contact` at or before `at`, looking back a little over
    /// `window` (the exact boundary is the domain's call), in this batch or the ledger.
    pub fn last_marketing_sent(
        &self,
        tenant: &str,
        contact: &Contact,
        at: DateTime<Utc>,
        window: Duration,
    ) -> Result<Option<SentRef>> {
        let not_before = lookup_floor(at, window);
        let mut low = sent_keys::contact_prefix(tenant, contact.as_str());
        low.extend_from_slice(&sent_keys::time(not_before));
        let high = sent_keys::sent_by_contact_upto(tenant, contact.as_str(), at);
        let staged = self
            .sent_by_contact
            .range(low..high)
            .rev()
            .find(|(_, s)| s.category == SentCategory::Marketing)
            .map(|(_, s)| s.clone());
        let stored = self
            .ledger
            .last_marketing_sent(tenant, contact, not_before, at)?;
        Ok(match (staged, stored) {
            (Some(a), Some(b)) => {
                Some(if (b.sent_at, &b.message_id) > (a.sent_at, &a.message_id) {
                    b
                } else {
                    a
                })
            }
            (a, b) => a.or(b),
        })
    }

    /// Merges a delivery status into what is known of its message, whether or not the sent
    /// record has arrived yet: `stats` joins the two by message id when it reads them.
    pub fn stage_delivery(&mut self, tenant: &str, status: &DeliveryStatus) -> Result<()> {
        let key = sent_keys::sent(tenant, &status.message_id);
        if !self.delivery.contains_key(&key) {
            let stored = self
                .ledger
                .delivery(tenant, &status.message_id)?
                .unwrap_or_default();
            self.delivery.insert(key.clone(), stored);
        }
        if let Some(record) = self.delivery.get_mut(&key) {
            record.merge(status.state, status.at, &status.category);
        }
        Ok(())
    }

    /// Counts a help request or possible opt-out for a campaign; keyed by the inbound message,
    /// so it is idempotent like everything else in the batch.
    pub fn stage_signal(
        &mut self,
        tenant: &str,
        campaign_id: &str,
        kind: SignalKind,
        message_id: &str,
        occurred_at: DateTime<Utc>,
    ) {
        self.signals.push((
            sent_keys::signal(tenant, campaign_id, kind.as_str(), message_id),
            serde_json::to_vec(&occurred_at).expect("a time serializes"),
        ));
    }

    pub fn consent(&mut self, tenant: &str, contact: &Contact) -> Result<ContactConsent> {
        let key = (tenant.to_string(), contact.clone());
        if let Some(c) = self.consent.get(&key) {
            return Ok(c.clone());
        }
        let c = self.ledger.consent(tenant, contact)?;
        self.consent.insert(key, c.clone());
        Ok(c)
    }

    /// Whether `(tenant, message id, kind)` was already handled, in the ledger or this batch.
    pub fn is_seen(&self, tenant: &str, message_id: &str, kind: &str) -> Result<bool> {
        let key = keys::dedupe(tenant, message_id, kind);
        Ok(self.seen.contains(&key) || self.ledger.dedupe.contains_key(&key)?)
    }

    pub fn mark_seen(&mut self, tenant: &str, message_id: &str, kind: &str, value: &[u8]) {
        let key = keys::dedupe(tenant, message_id, kind);
        self.seen.insert(key.clone());
        self.dedupe.push((key, value.to_vec()));
    }

    fn head(&mut self, partition: u32) -> Result<&mut ChainHead> {
        if !self.heads.contains_key(&partition) {
            let head = self.ledger.chain_head(partition)?;
            self.heads.insert(partition, head);
        }
        Ok(self.heads.get_mut(&partition).expect("inserted above"))
    }

    /// The seq the next event of `partition` will get.
    pub fn next_seq(&mut self, partition: u32) -> Result<u64> {
        Ok(self.head(partition)?.seq + 1)
    }

    /// Seals `event` onto its partition's chain and folds it into the staged consent view.
    /// Returns the consent after the event, for the caller to decide on a confirmation.
    pub fn append(&mut self, mut event: ConsentEvent) -> Result<(ConsentEvent, ContactConsent)> {
        let head = self.head(event.partition)?;
        if event.seq != head.seq + 1 {
            return Err(LedgerError::Corrupt {
                tree: "events",
                detail: format!(
                    "event seq {} does not follow chain head {}",
                    event.seq, head.seq
                ),
            });
        }
        event.seal(&head.hash);
        *head = ChainHead {
            seq: event.seq,
            hash: event.hash.clone(),
        };
        let before = self.consent(&event.tenant, &event.contact)?;
        let after = before.apply(&event);
        let key = (event.tenant.clone(), event.contact.clone());
        self.consent.insert(key.clone(), after.clone());
        self.dirty.insert(key);
        self.events.push(event.clone());
        Ok((event, after))
    }

    pub fn push_outbox(&mut self, entry: OutboxEntry) {
        self.outbox.push(entry);
    }

    /// Records the next offset to read for an input partition, committed with the batch.
    pub fn set_offset(&mut self, topic: &str, partition: i32, next: i64) {
        self.offsets.insert((topic.to_string(), partition), next);
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.sent.is_empty()
            && self.delivery.is_empty()
            && self.signals.is_empty()
            && self.dedupe.is_empty()
            && self.outbox.is_empty()
            && self.offsets.is_empty()
    }

    /// Writes the batch atomically, then makes it durable.
    pub fn commit(self) -> Result<Committed> {
        let l = self.ledger;
        let mut writes: [Vec<(Vec<u8>, Vec<u8>)>; 9] = Default::default();
        let [events, by_contact, consent, meta, dedupe, sent, sent_by_contact, delivery, signals] =
            &mut writes;
        for (k, s) in &self.sent {
            sent.push((k.clone(), json(s)));
        }
        for (k, s) in &self.sent_by_contact {
            sent_by_contact.push((k.clone(), json(s)));
        }
        for (k, d) in &self.delivery {
            delivery.push((k.clone(), json(d)));
        }
        signals.clone_from(&self.signals);
        for e in &self.events {
            events.push((keys::event(e.partition, e.seq).to_vec(), e.stored_bytes()));
            by_contact.push((
                keys::by_contact(&e.tenant, e.contact.as_str(), e.partition, e.seq),
                vec![],
            ));
        }
        for key @ (tenant, contact) in &self.dirty {
            let c = &self.consent[key];
            for p in Purpose::ALL {
                let state = c.get(p);
                if state.events > 0 {
                    let bytes = serde_json::to_vec(state).expect("plain struct");
                    consent.push((keys::consent(tenant, contact.as_str(), p), bytes));
                }
            }
        }
        for (partition, head) in &self.heads {
            meta.push((
                keys::head(*partition),
                serde_json::to_vec(head).expect("plain struct"),
            ));
        }
        for ((topic, partition), next) in &self.offsets {
            meta.push((
                keys::offset(topic, *partition),
                next.to_string().into_bytes(),
            ));
        }
        dedupe.clone_from(&self.dedupe);
        let outbox: Vec<Vec<u8>> = self
            .outbox
            .iter()
            .map(|o| serde_json::to_vec(o).expect("plain struct"))
            .collect();

        let event_keys: Vec<[u8; 12]> = self
            .events
            .iter()
            .map(|e| keys::event(e.partition, e.seq))
            .collect();
        let mut feed_head = l.feed_head()?;
        let trees = (
            &l.events,
            &l.by_contact,
            &l.consent,
            &l.meta,
            &l.dedupe,
            &l.outbox,
            &l.feed,
            &l.sent,
            &l.sent_by_contact,
            &l.delivery,
            &l.campaign_signals,
        );
        trees
            .transaction(
                |(
                    t_events,
                    t_by_contact,
                    t_consent,
                    t_meta,
                    t_dedupe,
                    t_outbox,
                    t_feed,
                    t_sent,
                    t_sent_by_contact,
                    t_delivery,
                    t_signals,
                )| {
                    for (tree, rows) in [
                        (t_events, &writes[0]),
                        (t_by_contact, &writes[1]),
                        (t_consent, &writes[2]),
                        (t_meta, &writes[3]),
                        (t_dedupe, &writes[4]),
                        (t_sent, &writes[5]),
                        (t_sent_by_contact, &writes[6]),
                        (t_delivery, &writes[7]),
                        (t_signals, &writes[8]),
                    ] {
                        for (k, v) in rows {
                            tree.insert(k.as_slice(), v.as_slice())?;
                        }
                    }
                    let mut next = match t_meta.get(keys::OUTBOX_NEXT)? {
                        Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                            ConflictableTransactionError::Abort("outbox counter is not 8 bytes")
                        })?),
                        None => 1,
                    };
                    for payload in &outbox {
                        t_outbox.insert(&next.to_be_bytes(), payload.as_slice())?;
                        next += 1;
                    }
                    t_meta.insert(keys::OUTBOX_NEXT, &next.to_be_bytes())?;
                    for (i, key) in event_keys.iter().enumerate() {
                        t_feed.insert(&(feed_head + 1 + i as u64).to_be_bytes(), key)?;
                    }
                    Ok(())
                },
            )
            .map_err(|e| match e {
                TransactionError::Abort(detail) => LedgerError::Corrupt {
                    tree: "meta",
                    detail: detail.into(),
                },
                TransactionError::Storage(s) => LedgerError::Storage(s),
            })?;
        l.sync()?;
        feed_head += event_keys.len() as u64;
        l.committed.send_replace(feed_head);
        Ok(Committed {
            events: self.events.len(),
            outbox: self.outbox.len(),
        })
    }
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("plain struct")
}
