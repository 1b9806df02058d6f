//! `verify` and `rebuild`: the two answers to "can this ledger be trusted?". Verify re-hashes
//! every chain and compares the stored consent view with a fresh fold of the log; rebuild
//! replaces the view with that fold. Both use the same `apply` as the write path.

use std::collections::{BTreeMap, HashMap};

use super::{decode, keys, ChainHead, Ledger, Result};
use crate::domain::consent::{ContactConsent, PurposeState};
use crate::domain::event::{ConsentEvent, Purpose};
use crate::domain::tenant::TenantId;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    pub events: u64,
    pub partitions: usize,
    pub contacts: usize,
    /// Every mismatch found; empty means the ledger verifies.
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RebuildReport {
    pub events: u64,
    pub contacts: usize,
    /// Consent rows that differed from the fold and were rewritten or removed.
    pub changed: usize,
}

type View = HashMap<Vec<u8>, PurposeState>;

/// The `links` rows the log implies: link key → the `IdentityLinked` event's key.
type Links = HashMap<Vec<u8>, Vec<u8>>;

impl Ledger {
    /// The consent view computed from the log alone, plus chain problems met on the way.
    fn fold_log(&self, report: &mut VerifyReport) -> Result<(View, Links)> {
        let mut links = Links::new();
        let mut contacts: BTreeMap<(TenantId, String), ContactConsent> = BTreeMap::new();
        let mut last: BTreeMap<u32, ChainHead> = BTreeMap::new();
        for entry in self.events.iter() {
            let (key, bytes) = entry?;
            report.events += 1;
            let Some((partition, seq)) = parse_event_key(&key) else {
                report
                    .problems
                    .push(format!("event key {} is malformed", hex::encode(&key)));
                continue;
            };
            let at = format!("partition {partition} seq {seq}");
            let event: ConsentEvent = match serde_json::from_slice(&bytes) {
                Ok(e) => e,
                Err(e) => {
                    report
                        .problems
                        .push(format!("{at}: not a valid event ({e})"));
                    continue;
                }
            };
            let prev = last.entry(partition).or_default().clone();
            if (event.partition, event.seq) != (partition, seq) {
                report.problems.push(format!(
                    "{at}: stored under the wrong position (event says partition {} seq {})",
                    event.partition, event.seq
                ));
            }
            if seq != prev.seq + 1 {
                report.problems.push(format!(
                    "{at}: expected seq {} (events deleted or reordered)",
                    prev.seq + 1
                ));
            }
            if event.prev_hash != prev.hash {
                report.problems.push(format!(
                    "{at}: prev_hash does not match the previous event (chain broken)"
                ));
            }
            if event.compute_hash() != event.hash {
                report.problems.push(format!(
                    "{at}: hash mismatch (event {} was edited)",
                    event.event_id
                ));
            } else if event.stored_bytes() != bytes.as_ref() {
                report
                    .problems
                    .push(format!("{at}: stored bytes differ from the canonical form"));
            }
            for c in std::iter::once(&event.contact).chain(&event.linked_contact) {
                if !self.by_contact.contains_key(keys::by_contact(
                    &event.tenant,
                    c.as_str(),
                    partition,
                    seq,
                ))? {
                    report
                        .problems
                        .push(format!("{at}: missing from the by_contact index"));
                }
            }
            if let Some(linked) = &event.linked_contact {
                for (a, b) in [(&event.contact, linked), (linked, &event.contact)] {
                    links
                        .entry(keys::link(&event.tenant, a.as_str(), b.as_str()))
                        .or_insert_with(|| key.to_vec());
                }
            }
            last.insert(
                partition,
                ChainHead {
                    seq,
                    hash: event.hash.clone(),
                },
            );
            let slot = contacts
                .entry((event.tenant.clone(), event.contact.as_str().to_string()))
                .or_default();
            *slot = slot.apply(&event);
        }
        for entry in self.meta.scan_prefix(b"head/") {
            let (key, bytes) = entry?;
            let head: ChainHead = decode("meta", &bytes)?;
            let partition = String::from_utf8_lossy(&key[5..])
                .parse::<u32>()
                .unwrap_or(u32::MAX);
            let found = last.get(&partition).cloned().unwrap_or_default();
            if found != head {
                report.problems.push(format!(
                    "partition {partition}: chain head says seq {} but the log ends at seq {} (events deleted at the end)",
                    head.seq, found.seq
                ));
            }
        }
        if let Some(p) = last
            .keys()
            .find(|p| !self.meta.contains_key(keys::head(**p)).unwrap_or(false))
        {
            report
                .problems
                .push(format!("partition {p}: events without a chain head"));
        }
        if self.feed.len() as u64 != report.events {
            report.problems.push(format!(
                "the feed index has {} entries for {} events",
                self.feed.len(),
                report.events
            ));
        }
        report.partitions = last.len();
        report.contacts = contacts.len();
        let mut view = View::new();
        for ((tenant, contact), c) in contacts {
            for p in Purpose::ALL {
                if c.get(p).events > 0 {
                    view.insert(keys::consent(&tenant, &contact, p), c.get(p).clone());
                }
            }
        }
        Ok((view, links))
    }

    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let (mut view, mut links) = self.fold_log(&mut report)?;
        for entry in self.links.iter() {
            let (key, value) = entry?;
            let label = mask_label(&String::from_utf8_lossy(&key).replace('\0', "/"));
            match links.remove(key.as_ref()) {
                None => report
                    .problems
                    .push(format!("link {label}: not backed by any event")),
                Some(event) if event != value.as_ref() => report.problems.push(format!(
                    "link {label}: points at another event than the log's"
                )),
                Some(_) => {}
            }
        }
        for key in links.keys() {
            let label = mask_label(&String::from_utf8_lossy(key).replace('\0', "/"));
            report
                .problems
                .push(format!("link {label}: missing from the links index"));
        }
        for entry in self.consent.iter() {
            let (key, bytes) = entry?;
            let label = String::from_utf8_lossy(&key).replace('\0', "/");
            let stored: Option<PurposeState> = serde_json::from_slice(&bytes).ok();
            match (view.remove(key.as_ref()), stored) {
                (_, None) => report
                    .problems
                    .push(format!("consent {}: unreadable", mask_label(&label))),
                (None, Some(_)) => report.problems.push(format!(
                    "consent {}: not backed by any event",
                    mask_label(&label)
                )),
                (Some(folded), Some(stored)) if folded != stored => report.problems.push(format!(
                    "consent {}: view says {} but the log says {}",
                    mask_label(&label),
                    stored.status.as_str(),
                    folded.status.as_str()
                )),
                _ => {}
            }
        }
        for key in view.keys() {
            let label = String::from_utf8_lossy(key).replace('\0', "/");
            report.problems.push(format!(
                "consent {}: missing from the view",
                mask_label(&label)
            ));
        }
        Ok(report)
    }

    pub fn rebuild(&self) -> Result<RebuildReport> {
        let mut scratch = VerifyReport::default();
        let (view, links) = self.fold_log(&mut scratch)?;
        let mut link_batch = sled::Batch::default();
        for entry in self.links.iter() {
            link_batch.remove(entry?.0);
        }
        for (key, event) in &links {
            link_batch.insert(key.as_slice(), event.as_slice());
        }
        self.links.apply_batch(link_batch)?;
        let mut batch = sled::Batch::default();
        let mut changed = 0;
        for entry in self.consent.iter() {
            let (key, bytes) = entry?;
            let same = view
                .get(key.as_ref())
                .is_some_and(|v| serde_json::to_vec(v).expect("plain struct") == bytes.as_ref());
            if !same {
                changed += 1;
            }
            batch.remove(key);
        }
        for (key, state) in &view {
            if !self.consent.contains_key(key)? {
                changed += 1;
            }
            batch.insert(
                key.as_slice(),
                serde_json::to_vec(state).expect("plain struct"),
            );
        }
        self.consent.apply_batch(batch)?;
        self.sync()?;
        Ok(RebuildReport {
            events: scratch.events,
            contacts: scratch.contacts,
            changed,
        })
    }
}

fn parse_event_key(key: &[u8]) -> Option<(u32, u64)> {
    if key.len() != 12 {
        return None;
    }
    let partition = u32::from_be_bytes(key[..4].try_into().ok()?);
    let seq = u64::from_be_bytes(key[4..].try_into().ok()?);
    Some((partition, seq))
}

/// `tenant/+33612345678/marketing` → `tenant/+*********78/marketing`: verify output may be
/// pasted into tickets.
fn mask_label(label: &str) -> String {
    label
        .split('/')
        .map(|part| {
            if part.starts_with('+') {
                crate::domain::contact::mask(part)
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
