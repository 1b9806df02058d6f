//! Retention of message texts (`[rgpd] retention_days`): once a person's last event is older
//! than the retention, the text keys of every identifier of theirs are destroyed, so their
//! message texts read `[erased]`. The events, their types, times, sealed identifiers and
//! hashes stay, and so does their consent. Identifiers are found through their text keys, so
//! a run costs in proportion to the people whose texts are still readable: a range read of
//! the consent view each, and their events read only when the view says they may be past
//! retention.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::keyring::slot;
use super::person::{neighbours, Id};
use super::seal::field_ref;
use super::{decode, keys, kv, Ledger, Result};
use crate::domain::contact::Contact;
use crate::domain::event::{ConsentEvent, Purpose};
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
    /// The `keys` slots of the text keys its erasure destroys: scale-out tombstones their
    /// records on the key topic too ([`Ledger::key_records`]).
    pub fn slots(&self) -> &[Vec<u8>] {
        &self.slots
    }

    pub fn text_keys(&self) -> usize {
        self.slots.len()
    }
}

impl Ledger {
    /// Every person whose last event (in event time) is before `cutoff` and who still has a
    /// text key.
    ///
    /// One pass over the text keys. A person of one identifier is met once, at their key; only
    /// the other identifiers of linked people are remembered (to skip their keys when met),
    /// and only until then. Identifiers are opened for the expired only. Remembering every
    /// person and opening each one's first event took 1 GB and a core for minutes at each
    /// start of `serve` on a ledger of 10,000,000 people (BENCHMARKS.md, "Ten million").
    pub fn expired_texts(&self, cutoff: DateTime<Utc>) -> Result<Vec<Expired>> {
        let mut pending: BTreeSet<(TenantId, Id)> = BTreeSet::new();
        let mut out = Vec::new();
        for entry in self.keys.scan_prefix(b"d") {
            let (key, _) = entry?;
            let Some((tenant, id)) = parse_text_slot(&key) else {
                continue;
            };
            if !pending.is_empty() && pending.remove(&(tenant.clone(), id)) {
                continue;
            }
            let members = neighbours((id, None), |i| self.direct_links(&tenant, i))?;
            for member in members.keys().filter(|m| **m != id) {
                // Its key comes later in the scan, or came earlier and led here already.
                let text = slot(&tenant, member, KeyKind::Text);
                if text[..] > key[..] && self.keys.contains_key(&text)? {
                    pending.insert((tenant.clone(), *member));
                }
            }
            // The consent view's newest event is no later than the last event: when it is
            // recent, so is the person, and their events need not be read.
            let mut recent = false;
            for member in members.keys() {
                recent = recent || self.newest_in_view(&tenant, member)? >= Some(cutoff);
            }
            if recent {
                continue;
            }
            let mut last: Option<DateTime<Utc>> = None;
            for member in members.keys() {
                last = last.max(self.last_event_of(&tenant, member)?);
            }
            if last.is_some_and(|at| at >= cutoff) {
                continue;
            }
            let mut identifiers = Vec::new();
            let mut slots = Vec::new();
            for member in members.keys() {
                identifiers.extend(self.identifier_of(&tenant, member)?);
                let text = slot(&tenant, member, KeyKind::Text);
                if self.keys.contains_key(&text)? {
                    slots.push(text);
                }
            }
            identifiers.sort();
            out.push(Expired {
                tenant,
                identifiers,
                last_event: last,
                slots,
            });
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

    /// The newest event time the consent view holds for the identifier whose keyed hash is
    /// `id`: one range read, where its events are one read and one parse each.
    fn newest_in_view(&self, tenant: &TenantId, id: &Id) -> Result<Option<DateTime<Utc>>> {
        let consent = self.own_consent_of(tenant, id)?;
        Ok(Purpose::ALL
            .into_iter()
            .filter_map(|p| consent.get(p).latest.map(|t| t.occurred_at))
            .max())
    }

    /// When the identifier whose keyed hash is `id` had its last event, in event time.
    fn last_event_of(&self, tenant: &TenantId, id: &Id) -> Result<Option<DateTime<Utc>>> {
        let mut last = None;
        for stored in self.stored_events_of(tenant, id) {
            last = last.max(Some(stored?.occurred_at));
        }
        Ok(last)
    }

    /// The identifier whose keyed hash is `id`, opened from its first event; `None` when its
    /// key is gone.
    fn identifier_of(&self, tenant: &TenantId, id: &Id) -> Result<Option<Contact>> {
        let Some(stored) = self.stored_events_of(tenant, id).next().transpose()? else {
            return Ok(None);
        };
        Ok(if field_ref(stored.contact.as_str()).as_ref() == Some(id) {
            self.open_event(stored)?.contact.into()
        } else {
            self.link_side(&stored, id)?
        }
        .filter(|c: &Contact| c.as_str() != crate::rgpd::ERASED))
    }

    /// The stored (sealed) events of the identifier whose keyed hash is `id`, in log order.
    pub(super) fn stored_events_of<'a>(
        &'a self,
        tenant: &TenantId,
        id: &Id,
    ) -> impl Iterator<Item = Result<ConsentEvent>> + 'a {
        let prefix = keys::contact_prefix(tenant, id);
        let cut = prefix.len();
        let read = move |entry: kv::Entry| -> Result<Option<ConsentEvent>> {
            let (key, _) = entry?;
            let Some(bytes) = self.events.get(&key[cut..])? else {
                return Ok(None);
            };
            Ok(Some(decode("events", &bytes)?))
        };
        self.by_contact
            .scan_prefix(prefix)
            .filter_map(move |entry| read(entry).transpose())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigFile, Settings};
    use crate::pipeline::file::{ingest, FileSinks};
    use crate::rgpd::MasterKey;

    fn stop(id: &str, from: &str, at: &str) -> String {
        serde_json::json!({"type": "inbound", "tenant": "shop", "channel": "sms",
            "message_id": id, "from": from, "received_at": at, "text": "STOP"})
        .to_string()
    }

    /// Regression (retention at start held every person and opened every one's events):
    /// a person the consent view shows as recent is passed over without reading their
    /// events, so even an unreadable event of theirs does not stop the sweep; an old
    /// person's events are read, as their last event decides.
    #[test]
    fn people_the_view_shows_as_recent_are_not_read_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), MasterKey::generate()).unwrap();
        let settings = Settings::from_file(ConfigFile::default()).unwrap();
        let lines = [
            stop("m1", "+33612000001", "2026-01-01T10:00:00Z"),
            stop("m2", "+33612000002", "2026-06-01T10:00:00Z"),
        ]
        .join("\n");
        let mut sinks = FileSinks::in_dir(dir.path(), None);
        ingest(&ledger, &settings, lines.as_bytes(), "test", &mut sinks).unwrap();
        let cutoff = "2026-03-01T00:00:00Z".parse().unwrap();
        let expired = ledger.expired_texts(cutoff).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(
            expired[0].identifiers,
            [Contact::from_stored("+33612000001".into())]
        );

        // The recent person's event (seq 2) made unreadable: the sweep never reads it.
        ledger
            .events
            .insert(keys::event(0, 2), b"not an event")
            .unwrap();
        assert_eq!(ledger.expired_texts(cutoff).unwrap(), expired);
        // The old person's event made unreadable: the sweep reads it, and says so.
        ledger
            .events
            .insert(keys::event(0, 1), b"not an event")
            .unwrap();
        assert!(ledger.expired_texts(cutoff).is_err());
    }
}
