//! Personal fields on their way into the log and out of it. An event is stored with every
//! identifier (`contact`, `linked_contact`, `linked`) sealed under that identifier's identity
//! key and its message text under the sender's text key ([`crate::rgpd::field`]); its hash
//! covers that stored form, so the chain verifies whichever keys are gone. Readers get the
//! event opened, with `[erased]` for a field whose key was destroyed. A reply is stored with
//! its recipient sealed the same way.
//!
//! Message ids (`source.message_id`, `source.context_message_id`, a reply's `in_reply_to`)
//! are sealed under the sender's identity key too: a WhatsApp message id is base64 of bytes
//! that include the sender's number, so it is an identifier in disguise. An `Erased` event's
//! own message id (`erasure:<request id>`) is the ledger's and stays in clear.
//!
//! An `Erased` event's identifiers are sealed under a notice key of their own instead, since
//! the person's keys go in the same batch and the feeds still have to tell subscribers whom
//! to forget; the notice key is destroyed once every feed that follows the partition has
//! published the event and its reply records (`Ledger::release_notices`).

use serde::{Deserialize, Serialize};

use super::batch::Staged;
use super::keyring::{notice_slot, slot};
use super::person::Id;
use super::{decode, keys, Ledger, Result};
use crate::domain::contact::Contact;
use crate::domain::event::{ConsentEvent, EventType};
use crate::domain::replies::{OutboundMessage, ReplyKind};
use crate::domain::tenant::TenantId;
use crate::rgpd::field::{self, Sealed};
use crate::rgpd::{DataKey, KeyKind};

/// A notice key waiting for the feeds: the `Erased` event at (`partition`, `seq`) and its
/// reply records up to `reply_seq`. Kept in `meta` under `notice/P/S`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Notice {
    pub tenant: TenantId,
    pub event_id: uuid::Uuid,
    pub seq: u64,
    pub reply_seq: u64,
}

pub(super) fn notice_key(partition: u32, seq: u64) -> Vec<u8> {
    format!("notice/{partition:010}/{seq:020}").into_bytes()
}

/// The (partition, seq) an `events` key names.
fn event_position(key: &[u8]) -> Option<(u32, u64)> {
    let partition = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let seq = u64::from_be_bytes(key.get(4..12)?.try_into().ok()?);
    Some((partition, seq))
}

/// The `keys` slot of the key that sealed `s`, a field of the event `event_id`.
fn field_slot(tenant: &TenantId, event_id: &uuid::Uuid, s: &Sealed) -> Vec<u8> {
    match s.kind {
        KeyKind::Notice => notice_slot(tenant, event_id),
        kind => slot(tenant, &s.key_ref, kind),
    }
}

/// The reference (keyed hash) of a stored identifier field; `None` when it is not sealed.
pub(super) fn field_ref(stored: &str) -> Option<Id> {
    Sealed::parse(stored).map(|s| s.key_ref)
}

impl Ledger {
    /// The keys that may have sealed a field of the event `event_id`: those of the slot its
    /// reference names (more than one only after scale-out's key race, see `keyring`).
    fn field_keys_of(
        &self,
        tenant: &TenantId,
        event_id: &uuid::Uuid,
        s: &Sealed,
    ) -> Result<Vec<DataKey>> {
        self.stored_keys(&field_slot(tenant, event_id, s))
    }

    /// The key that opens the field `name` of the event `event_id`, and the plaintext. The
    /// slot's own key is tried before its others are looked for: there are others only after
    /// scale-out's key race, and looking cost a range scan for every field the relays opened.
    fn opening_key(
        &self,
        tenant: &TenantId,
        event_id: &uuid::Uuid,
        name: &str,
        sealed: &Sealed,
    ) -> Result<Option<(DataKey, String)>> {
        let context = field::context(event_id, name);
        let slot = field_slot(tenant, event_id, sealed);
        let open = |key: DataKey| sealed.open(&key, &context).map(|plain| (key, plain));
        if let Some(opened) = self.stored_key(&slot)?.and_then(open) {
            return Ok(Some(opened));
        }
        Ok(self.other_keys(&slot)?.into_iter().find_map(open))
    }

    /// One stored field opened: the plaintext, `None` when its key is gone; a field that is
    /// not sealed (events written before encryption, read only by `migrate`) as it is.
    fn open_field(
        &self,
        tenant: &TenantId,
        id: &uuid::Uuid,
        name: &str,
        stored: &str,
    ) -> Result<Option<String>> {
        let Some(sealed) = Sealed::parse(stored) else {
            return Ok(Some(stored.to_string()));
        };
        Ok(self
            .opening_key(tenant, id, name, &sealed)?
            .map(|(_, plain)| plain))
    }

    /// A stored event with its personal fields opened (`[erased]` where a key is gone).
    pub fn open_event(&self, stored: ConsentEvent) -> Result<ConsentEvent> {
        let (tenant, id) = (stored.tenant.clone(), stored.event_id);
        // An event's fields mostly share a slot (the sender's contact and message id): each
        // slot's keys are read and unwrapped once per event, not once per field.
        let mut read: Vec<(Vec<u8>, Vec<DataKey>)> = Vec::new();
        field::open_event(&stored, |s| {
            let slot = field_slot(&tenant, &id, s);
            if let Some((_, keys)) = read.iter().find(|(known, _)| *known == slot) {
                return Ok(keys.clone());
            }
            let keys = self.stored_keys(&slot)?;
            read.push((slot, keys.clone()));
            Ok(keys)
        })
    }

    /// Whether a key that opens each of `stored`'s sealed fields is here.
    pub(super) fn keys_present(&self, stored: &ConsentEvent) -> Result<bool> {
        for (name, sealed) in field::sealed_fields(stored) {
            let opened = self.opening_key(&stored.tenant, &stored.event_id, &name, &sealed)?;
            if opened.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The keys that open `stored`'s sealed fields, by the name a proof file gives them;
    /// destroyed ones are absent. A key that is not its slot's first (scale-out's key race)
    /// is named with its id after the slot's name (`i:<ref>:<id>`), so that both can be in
    /// one file.
    pub fn field_keys(&self, stored: &ConsentEvent) -> Result<Vec<(String, DataKey)>> {
        let (tenant, id) = (&stored.tenant, &stored.event_id);
        let mut out = Vec::new();
        for (name, sealed) in field::sealed_fields(stored) {
            let Some((key, _)) = self.opening_key(tenant, id, &name, &sealed)? else {
                continue;
            };
            let first = self.field_keys_of(tenant, id, &sealed)?;
            let mut name = field::key_name(&sealed, id);
            if first.first().is_some_and(|f| f.id() != key.id()) {
                name = format!("{name}:{}", key.id());
            }
            out.push((name, key));
        }
        Ok(out)
    }

    /// The side of a stored link event whose reference is `other`, opened when its key exists.
    pub(super) fn link_side(&self, stored: &ConsentEvent, other: &Id) -> Result<Option<Contact>> {
        let sides = [
            ("contact", Some(&stored.contact)),
            ("linked_contact", stored.linked_contact.as_ref()),
        ];
        for (name, side) in sides {
            let Some(side) = side else { continue };
            if field_ref(side.as_str()).as_ref() == Some(other) {
                return Ok(self
                    .open_field(&stored.tenant, &stored.event_id, name, side.as_str())?
                    .map(Contact::from_stored));
            }
        }
        Ok(None)
    }

    /// The greatest (partition, seq) of an event of the identifier whose keyed hash is `id`
    /// (its own or a link), by its `by_contact` index; `None` when it has none.
    pub(super) fn last_position_of(
        &self,
        tenant: &TenantId,
        id: &Id,
    ) -> Result<Option<(u32, u64)>> {
        if !self.known.may_know(id) {
            return Ok(None);
        }
        let prefix = keys::contact_prefix(tenant, id);
        let Some(entry) = self.by_contact.scan_prefix(&prefix).next_back() else {
            return Ok(None);
        };
        let (key, _) = entry?;
        Ok(event_position(&key[prefix.len()..]))
    }

    /// The stored events of the identifier whose keyed hash is `id` that are its own (not the
    /// links it is a side of), in log order, as stored (sealed): what its consent folds.
    pub(super) fn own_events_of(&self, tenant: &TenantId, id: &Id) -> Result<Vec<ConsentEvent>> {
        let mut out = Vec::new();
        for stored in self.stored_events_of(tenant, id) {
            let stored = stored?;
            if stored.linked_contact.is_none() && field_ref(stored.contact.as_str()) == Some(*id) {
                out.push(stored);
            }
        }
        Ok(out)
    }

    /// Every event of the identifier whose keyed hash is `id`, opened, oldest first in event
    /// time (ties by append order).
    pub(super) fn history_of(&self, tenant: &TenantId, id: &Id) -> Result<Vec<ConsentEvent>> {
        let prefix = keys::contact_prefix(tenant, id);
        let mut out = Vec::new();
        for entry in self.by_contact.scan_prefix(&prefix) {
            let (key, _) = entry?;
            let event_key = &key[prefix.len()..];
            let bytes = self
                .events
                .get(event_key)?
                .ok_or_else(|| super::LedgerError::Corrupt {
                    tree: "by_contact",
                    detail: "index points at a missing event".into(),
                })?;
            out.push(self.open_event(decode::<ConsentEvent>("events", &bytes)?)?);
        }
        out.sort_by_key(|e| (e.occurred_at, e.partition, e.seq));
        Ok(out)
    }

    /// A stored reply opened; `None` when its recipient's key is gone (the person was erased:
    /// nothing is sent to them, and the feed skips it).
    pub fn open_reply(&self, stored: OutboundMessage) -> Result<Option<OutboundMessage>> {
        let mut m = stored;
        let context = m
            .event_id
            .filter(|_| m.kind == ReplyKind::Erased)
            .unwrap_or(m.message_id);
        let Some(to) = self.open_field(&m.tenant, &context, "to", m.to.as_str())? else {
            return Ok(None);
        };
        m.to = Contact::from_stored(to);
        m.in_reply_to = self
            .open_field(&m.tenant, &context, "in_reply_to", &m.in_reply_to)?
            .unwrap_or_else(|| field::ERASED.to_string());
        Ok(Some(m))
    }

    /// Destroys the notice keys of `partition` that every feed following it has published:
    /// each sink with a cursor on the partition is past the `Erased` event and its replies.
    pub(super) fn release_notices(&self, partition: u32) -> Result<()> {
        let prefix = format!("notice/{partition:010}/").into_bytes();
        let mut cursors = Vec::new();
        for sink in super::Sink::ALL {
            let events = self.cursor(sink, super::Stream::Events, partition)?;
            let replies = self.cursor(sink, super::Stream::Replies, partition)?;
            if events > 0 || replies > 0 {
                cursors.push((events, replies));
            }
        }
        for entry in self.meta.scan_prefix(&prefix) {
            let (key, value) = entry?;
            let notice: Notice = decode("meta", &value)?;
            let published = !cursors.is_empty()
                && cursors
                    .iter()
                    .all(|(e, r)| *e >= notice.seq && *r >= notice.reply_seq);
            if published {
                self.keys
                    .remove(notice_slot(&notice.tenant, &notice.event_id))?;
                self.meta.remove(key)?;
            }
        }
        Ok(())
    }
}

impl Staged<'_> {
    /// The key in `slot` for this batch: used before in it, stored, or created now and
    /// stored with the batch.
    fn key_for(&mut self, slot: Vec<u8>) -> Result<DataKey> {
        if let Some(k) = self.key_cache.get(&slot) {
            return Ok(k.clone());
        }
        let key = match self.ledger().stored_key(&slot)? {
            Some(k) => k,
            None => {
                let k = DataKey::generate();
                let wrapped = self.ledger().wrap_key(&slot, &k)?;
                self.new_keys.insert(slot.clone(), wrapped);
                k
            }
        };
        self.key_cache.insert(slot, key.clone());
        Ok(key)
    }

    /// `plaintext` sealed under `owner`'s key of `kind` (or the event's notice key).
    fn seal_field(
        &mut self,
        tenant: &TenantId,
        owner: &Contact,
        kind: KeyKind,
        context_id: &uuid::Uuid,
        name: &str,
        plaintext: &str,
    ) -> Result<String> {
        let id = self.ledger().digest(tenant, owner)?;
        let slot = match kind {
            KeyKind::Notice => notice_slot(tenant, context_id),
            kind => slot(tenant, &id, kind),
        };
        let key = self.key_for(slot)?;
        Ok(field::seal(
            &key,
            kind,
            &id,
            &field::context(context_id, name),
            plaintext,
        ))
    }

    /// The stored form of `e`: every personal field sealed.
    pub(super) fn seal_event(&mut self, e: &ConsentEvent) -> Result<ConsentEvent> {
        let mut s = e.clone();
        let (tenant, id) = (&e.tenant, &e.event_id);
        let kind = if e.event_type == EventType::Erased {
            KeyKind::Notice
        } else {
            KeyKind::Identity
        };
        let identifier = |this: &mut Self, c: &Contact, name: &str| -> Result<Contact> {
            Ok(Contact::from_stored(this.seal_field(
                tenant,
                c,
                kind,
                id,
                name,
                c.as_str(),
            )?))
        };
        s.contact = identifier(self, &e.contact, "contact")?;
        if let Some(c) = &e.linked_contact {
            s.linked_contact = Some(identifier(self, c, "linked_contact")?);
        }
        for (i, c) in e.linked.iter().enumerate() {
            s.linked[i] = identifier(self, c, &format!("linked/{i}"))?;
        }
        if let Some(t) = &e.source.text {
            s.source.text =
                Some(self.seal_field(tenant, &e.contact, KeyKind::Text, id, "source.text", t)?);
        }
        if e.event_type != EventType::Erased {
            let m = &e.source.message_id;
            s.source.message_id = self.seal_field(
                tenant,
                &e.contact,
                KeyKind::Identity,
                id,
                "source.message_id",
                m,
            )?;
            if let Some(m) = &e.source.context_message_id {
                s.source.context_message_id = Some(self.seal_field(
                    tenant,
                    &e.contact,
                    KeyKind::Identity,
                    id,
                    "source.context_message_id",
                    m,
                )?);
            }
        }
        Ok(s)
    }

    /// The stored form of a reply: its recipient and the message it answers sealed (an
    /// erasure record's under the `Erased` event's notice key).
    pub(super) fn seal_reply(&mut self, m: &OutboundMessage) -> Result<OutboundMessage> {
        let mut s = m.clone();
        let (kind, context) = match (m.kind, m.event_id) {
            (ReplyKind::Erased, Some(event_id)) => (KeyKind::Notice, event_id),
            _ => (KeyKind::Identity, m.message_id),
        };
        s.to = Contact::from_stored(self.seal_field(
            &m.tenant,
            &m.to,
            kind,
            &context,
            "to",
            m.to.as_str(),
        )?);
        s.in_reply_to = self.seal_field(
            &m.tenant,
            &m.to,
            kind,
            &context,
            "in_reply_to",
            &m.in_reply_to,
        )?;
        Ok(s)
    }
}
