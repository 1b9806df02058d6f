//! A batch being built: reads see the ledger plus what was staged, and [`Staged::commit`]
//! writes it all in one sled transaction, then flushes and fsyncs. Nothing is visible to other
//! readers, and no input offset is stored, until the whole batch is durable (invariant 4).

use std::collections::{BTreeMap, HashMap, HashSet};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::outbox::OutboxEntry;
use super::{keys, ChainHead, Ledger, LedgerError, Result};
use crate::domain::consent::ContactConsent;
use crate::domain::contact::Contact;
use crate::domain::event::{ConsentEvent, Purpose};

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
        }
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
            && self.dedupe.is_empty()
            && self.outbox.is_empty()
            && self.offsets.is_empty()
    }

    /// Writes the batch atomically, then makes it durable.
    pub fn commit(self) -> Result<Committed> {
        let l = self.ledger;
        let mut writes: [Vec<(Vec<u8>, Vec<u8>)>; 5] = Default::default();
        let [events, by_contact, consent, meta, dedupe] = &mut writes;
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
        );
        trees
            .transaction(
                |(t_events, t_by_contact, t_consent, t_meta, t_dedupe, t_outbox, t_feed)| {
                    for (tree, rows) in [
                        (t_events, &writes[0]),
                        (t_by_contact, &writes[1]),
                        (t_consent, &writes[2]),
                        (t_meta, &writes[3]),
                        (t_dedupe, &writes[4]),
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
