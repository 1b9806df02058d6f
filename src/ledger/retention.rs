//! Retention of message texts (`[rgpd] retention_days`): once a person's last event is older
//! than the retention, the text keys of every identifier of theirs are destroyed, so their
//! message texts read `[erased]`. The events, their types, times, sealed identifiers and
//! hashes stay, and so does their consent. Identifiers are found through their text keys, so
//! a run costs in proportion to the people whose texts are still readable.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::keyring::slot;
use super::person::{neighbours, Id};
use super::seal::field_ref;
use super::{decode, keys, Ledger, Result};
use crate::domain::contact::Contact;
use crate::domain::event::ConsentEvent;
use crate::domain::tenant::TenantId;
use crate::rgpd::KeyKind;

/// A person whose texts are past retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub tenant: TenantId,
    /// The person's identifiers the ledger can still read.
    pub identifiers: Vec<Contact>,
    /// When their last event happened (`None`: a text key with no event left).
    pub last_event: Option<DateTime<Utc>>,
    /// The `keys` slots of their text keys.
    slots: Vec<Vec<u8>>,
}

impl Expired {
    pub fn text_keys(&self) -> usize {
        self.slots.len()
    }
}

impl Ledger {
    /// Every person whose last event (in event time) is before `cutoff` and who still has a
    /// text key.
    pub fn expired_texts(&self, cutoff: DateTime<Utc>) -> Result<Vec<Expired>> {
        let mut seen: BTreeSet<(TenantId, Id)> = BTreeSet::new();
        let mut out = Vec::new();
        for entry in self.keys.scan_prefix(b"d") {
            let (key, _) = entry?;
            let Some((tenant, id)) = parse_text_slot(&key) else {
                continue;
            };
            if seen.contains(&(tenant.clone(), id)) {
                continue;
            }
            let members = neighbours((id, None), |i| self.direct_links(&tenant, i))?;
            let mut last: Option<DateTime<Utc>> = None;
            let mut identifiers = Vec::new();
            let mut slots = Vec::new();
            for member in members.keys() {
                seen.insert((tenant.clone(), *member));
                let (member_last, contact) = self.last_event_of(&tenant, member)?;
                last = last.max(member_last);
                identifiers.extend(contact);
                let text = slot(&tenant, member, KeyKind::Text);
                if self.keys.contains_key(&text)? {
                    slots.push(text);
                }
            }
            if last.map_or(true, |at| at < cutoff) {
                identifiers.sort();
                out.push(Expired {
                    tenant,
                    identifiers,
                    last_event: last,
                    slots,
                });
            }
        }
        Ok(out)
    }

    /// Destroys the text keys of `expired`, in one batch, durable when it returns; returns
    /// how many keys.
    pub fn erase_texts(&self, expired: &[Expired]) -> Result<usize> {
        let mut batch = self.stage();
        for e in expired {
            batch.destroy.extend(e.slots.iter().cloned());
        }
        let count = batch.destroy.len();
        if count > 0 {
            batch.commit()?;
        }
        Ok(count)
    }

    /// The latest event time of the identifier `id`, and the identifier, opened from one of
    /// its events when its key still exists.
    fn last_event_of(
        &self,
        tenant: &TenantId,
        id: &Id,
    ) -> Result<(Option<DateTime<Utc>>, Option<Contact>)> {
        let prefix = keys::contact_prefix(tenant, id);
        let mut last = None;
        let mut contact = None;
        for entry in self.by_contact.scan_prefix(&prefix) {
            let (key, _) = entry?;
            let Some(bytes) = self.events.get(&key[prefix.len()..])? else {
                continue;
            };
            let stored: ConsentEvent = decode("events", &bytes)?;
            last = last.max(Some(stored.occurred_at));
            if contact.is_none() {
                contact = if field_ref(stored.contact.as_str()).as_ref() == Some(id) {
                    self.open_event(stored)?.contact.into()
                } else {
                    self.link_side(&stored, id)?
                }
                .filter(|c: &Contact| c.as_str() != crate::rgpd::ERASED);
            }
        }
        Ok((last, contact))
    }
}

/// (tenant, keyed hash) of a text key's slot, `d` tenant \0 id `t`.
fn parse_text_slot(key: &[u8]) -> Option<(TenantId, Id)> {
    let rest = key.strip_prefix(b"d")?;
    let cut = rest.iter().position(|b| *b == 0)?;
    let tenant = TenantId::new(std::str::from_utf8(&rest[..cut]).ok()?).ok()?;
    let tail = &rest[cut + 1..];
    let (id, kind) = tail.split_at_checked(32)?;
    (kind == [KeyKind::Text.tag()]).then_some((tenant, id.try_into().ok()?))
}
