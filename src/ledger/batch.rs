//! A batch being built: reads see the ledger plus what was staged, and [`Staged::commit`]
//! writes it all in one atomic batch, then fsyncs the journal. Nothing is visible to other
//! readers until the whole batch is durable, and the caller acknowledges its input (offsets,
//! HTTP answer, file summary) only after `commit` returned (invariant 4).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use super::person::{events_of, neighbours, Id, Members, PersonView};
use super::seal::field_ref;
use super::sent::{keys as sent_keys, lookup_floor};
use super::{keys, ChainHead, Ledger, Result};
use crate::domain::analytics::{DeliveryRecord, SentRef, SignalKind};
use crate::domain::consent::ContactConsent;
use crate::domain::contact::Contact;
use crate::domain::event::{ConsentEvent, Purpose};
use crate::domain::inbound::{DeliveryStatus, SentCategory};
use crate::domain::replies::OutboundMessage;
use crate::domain::tenant::TenantId;
use crate::rgpd::DataKey;

/// A linked identifier by keyed hash, with the identifier where it can be read.
type Neighbour = (Id, Option<Contact>);

pub struct Staged<'a> {
    ledger: &'a Ledger,
    _writer: std::sync::MutexGuard<'a, ()>,
    /// Each identifier's own fold by keyed hash, as the `consent` tree will hold it: an
    /// event taken in from another instance folds without its identifier being opened.
    own: HashMap<(TenantId, Id), ContactConsent>,
    dirty: HashSet<(TenantId, Id)>,
    /// The greatest (partition, seq) of an event each identifier folded so far has, in the
    /// ledger or this batch (see [`Staged::fold`]).
    last_folded: HashMap<(TenantId, Id), Option<(u32, u64)>>,
    /// Links staged in this batch, both ways, by keyed hash (with the other side where this
    /// batch can read it), and the `links` rows to write.
    links: HashMap<(TenantId, Id), Vec<Neighbour>>,
    link_rows: Vec<(Vec<u8>, Vec<u8>)>,
    pub(super) seen: HashSet<Vec<u8>>,
    pub(super) dedupe: Vec<(Vec<u8>, Vec<u8>)>,
    heads: BTreeMap<u32, ChainHead>,
    /// The batch's events opened (what its reads see), and as they are stored (sealed).
    pub(super) events: Vec<ConsentEvent>,
    pub(super) stored: Vec<Vec<u8>>,
    /// The keyed hashes of each staged event's `contact` and `linked_contact`.
    event_ids: Vec<(Id, Option<Id>)>,
    /// Last reply seq per partition, and the replies staged: (partition, seq, JSON).
    reply_heads: BTreeMap<u32, u64>,
    pub(super) replies: Vec<(u32, u64, Vec<u8>)>,
    /// The same replies opened, for scale-out's transaction (`replica.rs`).
    pub(super) opened_replies: Vec<OutboundMessage>,
    /// Sent records by `sent` key, and the same by `sent_by_contact` key, so that an opt-out
    /// later in the batch is attributed to a send earlier in it.
    pub(super) sent: BTreeMap<Vec<u8>, SentRef>,
    pub(super) sent_by_contact: BTreeMap<Vec<u8>, SentRef>,
    pub(super) delivery: BTreeMap<Vec<u8>, DeliveryRecord>,
    pub(super) signals: Vec<(Vec<u8>, Vec<u8>)>,
    /// Keys this batch used, and those it created (wrapped, to store with it).
    pub(super) key_cache: HashMap<Vec<u8>, DataKey>,
    pub(super) new_keys: BTreeMap<Vec<u8>, Vec<u8>>,
    /// `meta` rows of notice keys waiting for the feeds.
    pub(super) notices: Vec<(Vec<u8>, Vec<u8>)>,
    /// `keys` slots to delete: the data keys an erasure destroys.
    pub(super) destroy: BTreeSet<Vec<u8>>,
    /// `suppressed` rows to write (`Some`) or delete (`None`: an opt-in lifted it).
    pub(super) suppress: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Scale-out: the next offset of each record-topic partition this batch takes in
    /// (`replica.rs`).
    pub(super) view_cursors: BTreeMap<i32, i64>,
    /// Whether `commit` fsyncs: not when Kafka is the record and this ledger its view, which
    /// a crash rolls back to a consistent earlier batch, cursors included.
    sync: bool,
}

/// What a commit wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    pub events: usize,
    pub replies: usize,
}

impl<'a> Staged<'a> {
    pub(super) fn new(ledger: &'a Ledger, writer: std::sync::MutexGuard<'a, ()>) -> Self {
        Staged {
            ledger,
            _writer: writer,
            own: HashMap::new(),
            dirty: HashSet::new(),
            last_folded: HashMap::new(),
            links: HashMap::new(),
            link_rows: Vec::new(),
            seen: HashSet::new(),
            dedupe: Vec::new(),
            heads: BTreeMap::new(),
            events: Vec::new(),
            stored: Vec::new(),
            event_ids: Vec::new(),
            reply_heads: BTreeMap::new(),
            replies: Vec::new(),
            opened_replies: Vec::new(),
            sent: BTreeMap::new(),
            sent_by_contact: BTreeMap::new(),
            delivery: BTreeMap::new(),
            signals: Vec::new(),
            key_cache: HashMap::new(),
            new_keys: BTreeMap::new(),
            notices: Vec::new(),
            destroy: BTreeSet::new(),
            suppress: BTreeMap::new(),
            view_cursors: BTreeMap::new(),
            sync: true,
        }
    }

    pub(super) fn ledger(&self) -> &'a Ledger {
        self.ledger
    }

    /// Stages a sent record; false when `(tenant, message id)` is already known, so a
    /// redelivered record neither counts twice nor moves the original send.
    pub fn stage_sent(&mut self, tenant: &TenantId, sent: SentRef) -> Result<bool> {
        let mid = self.ledger.message_digest(tenant, &sent.message_id)?;
        let key = sent_keys::sent(tenant, &mid);
        if self.sent.contains_key(&key) || self.ledger.sent.contains_key(&key)? {
            return Ok(false);
        }
        let id = self.ledger.digest(tenant, &sent.contact)?;
        let by_contact = sent_keys::sent_by_contact(tenant, &id, sent.sent_at, &mid);
        // Analytics need the recipient and the message id only to tell them apart and to join
        // sends to statuses and replies: their keyed hashes do.
        let sent = SentRef {
            contact: Contact::from_stored(hex::encode(id)),
            message_id: hex::encode(mid),
            ..sent
        };
        self.sent_by_contact.insert(by_contact, sent.clone());
        self.sent.insert(key, sent);
        Ok(true)
    }

    /// The sent record of `message_id`, in this batch or the ledger.
    pub fn sent_message(&self, tenant: &TenantId, message_id: &str) -> Result<Option<SentRef>> {
        let mid = self.ledger.message_digest(tenant, message_id)?;
        if let Some(s) = self.sent.get(&sent_keys::sent(tenant, &mid)) {
            return Ok(Some(s.clone()));
        }
        self.ledger.sent_message(tenant, message_id)
    }

    /// The latest marketing send to `contact` at or before `at`, looking back a little over
    /// `window` (the exact boundary is the domain's call), in this batch or the ledger.
    pub fn last_marketing_sent(
        &self,
        tenant: &TenantId,
        contact: &Contact,
        at: DateTime<Utc>,
        window: Duration,
    ) -> Result<Option<SentRef>> {
        let not_before = lookup_floor(at, window);
        let id = self.ledger.digest(tenant, contact)?;
        let mut low = sent_keys::contact_prefix(tenant, &id);
        low.extend_from_slice(&sent_keys::time(not_before));
        let high = sent_keys::sent_by_contact_upto(tenant, &id, at);
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
    pub fn stage_delivery(&mut self, tenant: &TenantId, status: &DeliveryStatus) -> Result<()> {
        let mid = self.ledger.message_digest(tenant, &status.message_id)?;
        let key = sent_keys::sent(tenant, &mid);
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
        tenant: &TenantId,
        campaign_id: &str,
        kind: SignalKind,
        message_id: &str,
        occurred_at: DateTime<Utc>,
    ) -> Result<()> {
        let mid = self.ledger.message_digest(tenant, message_id)?;
        self.signals.push((
            sent_keys::signal(tenant, campaign_id, kind.as_str(), &mid),
            serde_json::to_vec(&occurred_at).expect("a time serializes"),
        ));
        Ok(())
    }

    /// The consent of an identifier: its person's, with what this batch staged.
    pub fn consent(&mut self, tenant: &TenantId, contact: &Contact) -> Result<ContactConsent> {
        Ok(self.person(tenant, contact)?.consent)
    }

    /// The person behind `contact`: the ledger's links and events plus this batch's, and its
    /// suppression as this batch leaves it.
    pub fn person(&mut self, tenant: &TenantId, contact: &Contact) -> Result<PersonView> {
        let view = self.person_unsuppressed(tenant, contact)?;
        Ok(match self.suppression(tenant, contact)? {
            Some(s) => s.apply(view),
            None => view,
        })
    }

    fn person_unsuppressed(&mut self, tenant: &TenantId, contact: &Contact) -> Result<PersonView> {
        let members = self.member_ids(tenant, contact)?;
        if members.len() == 1 {
            return Ok(PersonView::alone(self.own(tenant, contact)?));
        }
        let events = events_of(&members, |id| {
            let mut history = self.ledger.history_of(tenant, id)?;
            history.extend(
                self.events
                    .iter()
                    .zip(&self.event_ids)
                    .filter(|(e, (c, l))| {
                        &e.tenant == tenant && (c == id || l.as_ref() == Some(id))
                    })
                    .map(|(e, _)| e.clone()),
            );
            Ok(history)
        })?;
        Ok(PersonView::of(contact, &events))
    }

    /// Every identifier of `contact`'s person by keyed hash, itself included, with the
    /// identifier where it can be read.
    pub(super) fn member_ids(&self, tenant: &TenantId, contact: &Contact) -> Result<Members> {
        let id = self.ledger.digest(tenant, contact)?;
        neighbours((id, Some(contact.clone())), |i| {
            let mut direct = self.ledger.direct_links(tenant, i)?;
            if let Some(staged) = self.links.get(&(tenant.clone(), *i)) {
                direct.extend(staged.iter().cloned());
            }
            Ok(direct)
        })
    }

    /// Every identifier of `contact`'s person the ledger can read, itself included.
    pub fn members(&self, tenant: &TenantId, contact: &Contact) -> Result<BTreeSet<Contact>> {
        Ok(self
            .member_ids(tenant, contact)?
            .into_values()
            .flatten()
            .collect())
    }

    /// Whether `a` and `b` are already identifiers of one person (compared by keyed hash,
    /// so it holds when one of them can no longer be read).
    pub fn same_person(&self, tenant: &TenantId, a: &Contact, b: &Contact) -> Result<bool> {
        let b = self.ledger.digest(tenant, b)?;
        Ok(self.member_ids(tenant, a)?.contains_key(&b))
    }

    /// Whether a link event for exactly this pair exists, in the ledger or this batch.
    pub fn linked_directly(&self, tenant: &TenantId, a: &Contact, b: &Contact) -> Result<bool> {
        let (a, b) = (
            self.ledger.digest(tenant, a)?,
            self.ledger.digest(tenant, b)?,
        );
        let staged = self
            .links
            .get(&(tenant.clone(), a))
            .is_some_and(|others| others.iter().any(|(o, _)| *o == b));
        Ok(staged || self.ledger.links.contains_key(keys::link(tenant, &a, &b))?)
    }

    fn own(&mut self, tenant: &TenantId, contact: &Contact) -> Result<ContactConsent> {
        let id = self.ledger.digest(tenant, contact)?;
        self.own_of(tenant, id)
    }

    fn own_of(&mut self, tenant: &TenantId, id: Id) -> Result<ContactConsent> {
        let key = (tenant.clone(), id);
        if let Some(c) = self.own.get(&key) {
            return Ok(c.clone());
        }
        let c = self.ledger.own_consent_of(tenant, &id)?;
        self.own.insert(key, c.clone());
        Ok(c)
    }

    /// Whether `(tenant, message id, kind)` was already handled, in the ledger or this batch.
    pub fn is_seen(&self, tenant: &TenantId, message_id: &str, kind: &str) -> Result<bool> {
        let mid = self.ledger.message_digest(tenant, message_id)?;
        let key = keys::dedupe(tenant, &mid, kind);
        Ok(self.seen.contains(&key) || self.ledger.dedupe.contains_key(&key)?)
    }

    pub fn mark_seen(
        &mut self,
        tenant: &TenantId,
        message_id: &str,
        kind: &str,
        value: &[u8],
    ) -> Result<()> {
        let mid = self.ledger.message_digest(tenant, message_id)?;
        let key = keys::dedupe(tenant, &mid, kind);
        self.seen.insert(key.clone());
        self.dedupe.push((key, value.to_vec()));
        Ok(())
    }

    fn head(&mut self, partition: u32) -> Result<&mut ChainHead> {
        if !self.heads.contains_key(&partition) {
            let head = self.ledger.chain_head(partition)?;
            self.heads.insert(partition, head);
        }
        Ok(self.heads.get_mut(&partition).expect("inserted above"))
    }

    /// The head of `partition`'s chain as this batch leaves it.
    pub(super) fn head_of(&mut self, partition: u32) -> Result<ChainHead> {
        Ok(self.head(partition)?.clone())
    }

    pub(super) fn set_head(&mut self, partition: u32, head: ChainHead) {
        self.heads.insert(partition, head);
    }

    /// Seals `event` onto the chain of `partition` (its seq, `prev_hash` and hash are set
    /// here, never by the caller) and folds it into the staged consent view.
    pub fn append(&mut self, mut event: ConsentEvent, partition: u32) -> Result<ConsentEvent> {
        let seq = self.head(partition)?.seq + 1;
        event.partition = partition;
        event.seq = seq;
        let mut stored = self.seal_event(&event)?;
        let head = self.head(partition)?;
        stored.seal(&head.hash);
        (event.prev_hash, event.hash) = (stored.prev_hash.clone(), stored.hash.clone());
        *head = ChainHead {
            seq: event.seq,
            hash: event.hash.clone(),
        };
        self.index(event.clone(), stored.stored_bytes())?;
        Ok(event)
    }

    /// Everything an event on its chain implies: its stored row, its index rows, a link or
    /// its identifier's fold, a suppression it lifts. `event` is opened; its identifiers'
    /// keyed hashes are computed here.
    pub(super) fn index(&mut self, event: ConsentEvent, stored: Vec<u8>) -> Result<()> {
        let contact_id = self.ledger.digest(&event.tenant, &event.contact)?;
        let linked_id = match &event.linked_contact {
            Some(l) => Some(self.ledger.digest(&event.tenant, l)?),
            None => None,
        };
        let readable = (Some(event.contact.clone()), event.linked_contact.clone());
        self.index_by_id(event, stored, (contact_id, linked_id), readable)
    }

    /// [`Self::index`] of an event another instance sealed, as it is stored: by the keyed
    /// hashes its sealed fields carry, so that it needs no data key. One whose keys were
    /// destroyed (the person erased since) is taken in exactly like one whose keys are here.
    pub(super) fn index_sealed(&mut self, stored: ConsentEvent, bytes: Vec<u8>) -> Result<()> {
        let field = |name: &str, value: &Contact| {
            field_ref(value.as_str()).ok_or_else(|| super::LedgerError::Corrupt {
                tree: "record topic",
                detail: format!(
                    "event {} at seq {} of partition {}: its {name} is not sealed",
                    stored.event_id, stored.seq, stored.partition
                ),
            })
        };
        let contact_id = field("contact", &stored.contact)?;
        let linked_id = match &stored.linked_contact {
            Some(l) => Some(field("linked contact", l)?),
            None => None,
        };
        self.index_by_id(stored, bytes, (contact_id, linked_id), (None, None))
    }

    /// What `index` and `index_sealed` share: `ids` are the keyed hashes of the event's
    /// contact and linked contact, `readable` those identifiers where they can be read.
    fn index_by_id(
        &mut self,
        event: ConsentEvent,
        stored: Vec<u8>,
        (contact_id, linked_id): (Id, Option<Id>),
        (contact, linked): (Option<Contact>, Option<Contact>),
    ) -> Result<()> {
        self.stored.push(stored);
        self.event_ids.push((contact_id, linked_id));
        if let Some(l) = linked_id {
            let key = keys::event(event.partition, event.seq).to_vec();
            let c = contact_id;
            for (a, (b, b_contact)) in [(c, (l, &linked)), (l, (c, &contact))] {
                self.links
                    .entry((event.tenant.clone(), a))
                    .or_default()
                    .push((b, b_contact.clone()));
                self.link_rows
                    .push((keys::link(&event.tenant, &a, &b), key.clone()));
            }
        } else {
            self.fold(&event, contact_id)?;
        }
        self.lift_suppression(&event, &contact_id)?;
        self.events.push(event);
        Ok(())
    }

    /// Folds `event` into its identifier's consent (keyed hash `id`). The view of an
    /// identifier is its events folded in log order, (partition, seq), as `verify` and
    /// `rebuild` fold them: the order in which this ledger met them must not show. So an
    /// event that comes after every event of its identifier folds in at once, and one that
    /// does not (its identifier has events on a later partition: records of one person keyed
    /// two ways, or scale-out's view taking chains in as they come) has its identifier folded
    /// again from all its events.
    fn fold(&mut self, event: &ConsentEvent, id: Id) -> Result<()> {
        let key = (event.tenant.clone(), id);
        let at = (event.partition, event.seq);
        let last = match self.last_folded.get(&key) {
            Some(last) => *last,
            None => self.ledger.last_position_of(&event.tenant, &id)?,
        };
        let after = match last {
            Some(last) if last >= at => self.refold(&event.tenant, &id, event)?,
            _ => self.own_of(&event.tenant, id)?.apply(event),
        };
        self.last_folded
            .insert(key.clone(), Some(last.map_or(at, |l| l.max(at))));
        self.own.insert(key.clone(), after);
        self.dirty.insert(key);
        Ok(())
    }

    /// The consent of the identifier `id`: every event of its own (not a link), stored and
    /// staged, with `event`, folded in log order.
    fn refold(&self, tenant: &TenantId, id: &Id, event: &ConsentEvent) -> Result<ContactConsent> {
        let mut all: Vec<ConsentEvent> = self.ledger.own_events_of(tenant, id)?;
        all.extend(
            self.events
                .iter()
                .zip(&self.event_ids)
                .filter(|(e, (c, linked))| &e.tenant == tenant && c == id && linked.is_none())
                .map(|(e, _)| e.clone()),
        );
        all.push(event.clone());
        all.sort_by_key(|e| (e.partition, e.seq));
        all.dedup_by_key(|e| (e.partition, e.seq));
        Ok(all
            .iter()
            .fold(ContactConsent::default(), |c, e| c.apply(e)))
    }

    /// Appends a reply to the reply log of `partition`, which the relays follow like the
    /// event log: the reply is durable with the event that earned it.
    /// Returns the reply's seq in the partition's reply log.
    pub fn push_reply(&mut self, partition: u32, message: &OutboundMessage) -> Result<u64> {
        let seq = match self.reply_heads.get(&partition) {
            Some(seq) => *seq,
            None => self.ledger.reply_head(partition)?,
        } + 1;
        self.reply_heads.insert(partition, seq);
        let stored = self.seal_reply(message)?;
        self.replies.push((partition, seq, json(&stored)));
        self.opened_replies.push(message.clone());
        Ok(seq)
    }

    /// This batch is a view of what Kafka holds (scale-out): written, not fsynced.
    pub fn skip_sync(&mut self) {
        self.sync = false;
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.sent.is_empty()
            && self.delivery.is_empty()
            && self.signals.is_empty()
            && self.dedupe.is_empty()
            && self.replies.is_empty()
            && self.destroy.is_empty()
            && self.new_keys.is_empty()
            && self.suppress.is_empty()
            && self.view_cursors.is_empty()
    }

    /// Writes the batch atomically, then makes it durable.
    pub fn commit(self) -> Result<Committed> {
        let l = self.ledger;
        let mut writes: [Vec<(Vec<u8>, Vec<u8>)>; 11] = Default::default();
        let [events, by_contact, consent, meta, dedupe, sent, sent_by_contact, delivery, signals, replies, links] =
            &mut writes;
        links.clone_from(&self.link_rows);
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
        for ((e, stored), (c, linked)) in self.events.iter().zip(&self.stored).zip(&self.event_ids)
        {
            events.push((keys::event(e.partition, e.seq).to_vec(), stored.clone()));
            for id in std::iter::once(c).chain(linked) {
                by_contact.push((keys::by_contact(&e.tenant, id, e.partition, e.seq), vec![]));
            }
        }
        for key @ (tenant, id) in &self.dirty {
            let c = &self.own[key];
            for p in Purpose::ALL {
                let state = c.get(p);
                if state.events > 0 {
                    let bytes = serde_json::to_vec(state).expect("plain struct");
                    consent.push((keys::consent(tenant, id, p), bytes));
                }
            }
        }
        meta.extend(self.notices.iter().cloned());
        for (partition, head) in &self.heads {
            meta.push((
                keys::head(*partition),
                serde_json::to_vec(head).expect("plain struct"),
            ));
        }
        for (partition, next) in &self.view_cursors {
            meta.push((
                super::replica::view_cursor_key(*partition),
                next.to_be_bytes().to_vec(),
            ));
        }
        for (partition, seq) in &self.reply_heads {
            meta.push((keys::reply_head(*partition), seq.to_be_bytes().to_vec()));
        }
        for (partition, seq, message) in &self.replies {
            replies.push((keys::event(*partition, *seq).to_vec(), message.clone()));
        }
        dedupe.clone_from(&self.dedupe);

        // A batch that staged nothing (a stream's chat, statuses already counted) has
        // nothing to make durable: no transaction and no flush. Its input may be
        // acknowledged at once, since what earlier batches wrote was synced by them.
        let (new_keys, destroy, suppress) = (&self.new_keys, &self.destroy, &self.suppress);
        if writes.iter().all(Vec::is_empty)
            && self.events.is_empty()
            && new_keys.is_empty()
            && destroy.is_empty()
            && suppress.is_empty()
        {
            return Ok(Committed {
                events: 0,
                replies: 0,
            });
        }
        let event_keys: Vec<([u8; 12], &TenantId)> = self
            .events
            .iter()
            .map(|e| (keys::event(e.partition, e.seq), &e.tenant))
            .collect();
        let mut feed_head = l.feed_head()?;
        // The in-memory filter of known identifiers learns of them before they are written,
        // so it never answers "nothing here" about a row on disk.
        let [.., consent, _, _, _, _, _, _, _, links] = &writes;
        l.known.add_keys(
            consent
                .iter()
                .chain(links)
                .map(|(k, _)| k.as_slice())
                .chain(suppress.keys().map(|k| k.as_slice())),
        );
        // One atomic batch over every tree the batch writes, in the order of `writes` and
        // then the rest: one journal record, made durable by the sync below.
        let trees = [
            &l.events,
            &l.by_contact,
            &l.consent,
            &l.meta,
            &l.dedupe,
            &l.sent,
            &l.sent_by_contact,
            &l.delivery,
            &l.campaign_signals,
            &l.replies,
            &l.links,
        ];
        let mut batch = l.db.batch();
        for (tree, rows) in trees.iter().zip(&writes) {
            for (k, v) in rows {
                batch.insert(tree, k, v);
            }
        }
        for (i, (key, tenant)) in event_keys.iter().enumerate() {
            let position = feed_head + 1 + i as u64;
            batch.insert(&l.feed, position.to_be_bytes(), key);
            batch.insert(&l.by_tenant, keys::by_tenant(tenant, position), key);
        }
        for (slot, wrapped) in new_keys {
            batch.insert(&l.keys, slot, wrapped);
        }
        for slot in destroy {
            batch.remove(&l.keys, slot);
            for other in l.key_entries(slot)? {
                batch.remove(&l.keys, other);
            }
        }
        for (key, row) in suppress {
            match row {
                Some(v) => batch.insert(&l.suppressed, key, v),
                None => batch.remove(&l.suppressed, key),
            };
        }
        batch.commit()?;
        if self.sync {
            l.sync()?;
        }
        let heads: Vec<(u32, ChainHead)> = self.heads.into_iter().collect();
        l.sign_due(&heads, Utc::now())?;
        feed_head += event_keys.len() as u64;
        l.committed.send_replace(feed_head);
        Ok(Committed {
            events: self.events.len(),
            replies: self.replies.len(),
        })
    }
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("plain struct")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use crate::domain::contact::Contact;
    use crate::domain::event::tests::{sample, tenant};
    use crate::domain::event::EventType;
    use crate::ledger::Ledger;
    use crate::rgpd::MasterKey;

    /// Regression test: one identifier's STOPs on two partitions, met in another order than
    /// the log's (partition 1 before partition 0: records of one person keyed two ways, or
    /// scale-out's view taking chains in as they come), made a view whose `since` and
    /// `event_id` `verify` refused ("view says opted_out but the log says opted_out"), and
    /// two instances answer differently.
    #[test]
    fn an_identifiers_events_met_out_of_log_order_fold_as_the_log_orders_them() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("ledger"), MasterKey::generate()).unwrap();
        let stop = |contact: &str, at: i64, id: u64| {
            let mut e = sample(EventType::OptedOut, at, id);
            e.contact = Contact::from_stored(contact.into());
            e
        };
        // In two batches, then both in one batch, for another contact.
        for (contact, batches) in [("+33612000001", 2), ("+33612000002", 1)] {
            let mut staged = l.stage();
            staged.append(stop(contact, 1_764_000_200, 1), 1).unwrap();
            if batches == 2 {
                staged.commit().unwrap();
                staged = l.stage();
            }
            staged.append(stop(contact, 1_764_000_100, 2), 0).unwrap();
            staged.commit().unwrap();
            let c = Contact::from_stored(contact.into());
            let marketing = l.own_consent(&tenant("acme"), &c).unwrap().marketing;
            assert_eq!(
                marketing.since,
                Some(chrono::Utc.timestamp_opt(1_764_000_100, 0).unwrap()),
                "the log's first STOP began the opt-out"
            );
            assert_eq!(marketing.events, 2);
        }
        let report = l.verify().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
