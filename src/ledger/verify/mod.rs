//! `verify` and `rebuild`: the two answers to "can this ledger be trusted?". Verify re-hashes
//! every chain and compares the stored consent view with a fresh fold of the log; rebuild
//! replaces the view with that fold. Both use the same `apply` as the write path.

use std::collections::{BTreeMap, HashMap};

use super::seal::field_ref;
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

/// Rows of an index the log implies (`links`, `by_tenant`): key → an event's key.
type Index = HashMap<Vec<u8>, Vec<u8>>;

/// What the log implies for the derived trees.
struct Folded {
    view: View,
    links: Index,
    by_tenant: Index,
}

impl Ledger {
    /// The consent view computed from the log alone, plus chain problems met on the way.
    fn fold_log(&self, report: &mut VerifyReport) -> Result<Folded> {
        let mut links = Index::new();
        let mut tenants: HashMap<Vec<u8>, TenantId> = HashMap::new();
        let mut contacts: BTreeMap<(TenantId, [u8; 32]), ContactConsent> = BTreeMap::new();
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
            // Indexes name identifiers by the keyed hash their sealed field carries, so the
            // checks need no key: they hold after an erasure too.
            let Some(contact) = field_ref(event.contact.as_str()) else {
                report
                    .problems
                    .push(format!("{at}: its contact is not sealed (stored in clear)"));
                continue;
            };
            let linked = match &event.linked_contact {
                Some(c) => match field_ref(c.as_str()) {
                    Some(id) => Some(id),
                    None => {
                        report
                            .problems
                            .push(format!("{at}: its linked contact is not sealed"));
                        continue;
                    }
                },
                None => None,
            };
            for id in std::iter::once(&contact).chain(&linked) {
                if !self.by_contact.contains_key(keys::by_contact(
                    &event.tenant,
                    id,
                    partition,
                    seq,
                ))? {
                    report
                        .problems
                        .push(format!("{at}: missing from the by_contact index"));
                }
            }
            tenants.insert(key.to_vec(), event.tenant.clone());
            if let Some(linked) = &linked {
                for (a, b) in [(&contact, linked), (linked, &contact)] {
                    links
                        .entry(keys::link(&event.tenant, a, b))
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
            let slot = contacts.entry((event.tenant.clone(), contact)).or_default();
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
        let mut by_tenant = Index::new();
        for entry in self.feed.iter() {
            let (position, event_key) = entry?;
            let position = u64::from_be_bytes(position.as_ref().try_into().unwrap_or_default());
            if let Some(tenant) = tenants.get(event_key.as_ref()) {
                by_tenant.insert(keys::by_tenant(tenant, position), event_key.to_vec());
            }
        }
        Ok(Folded {
            view,
            links,
            by_tenant,
        })
    }

    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let Folded {
            mut view,
            links,
            by_tenant,
        } = self.fold_log(&mut report)?;
        compare_index(&self.links, links, "link", &mut report)?;
        compare_index(
            &self.by_tenant,
            by_tenant,
            "tenant index entry",
            &mut report,
        )?;
        for entry in self.consent.iter() {
            let (key, bytes) = entry?;
            let label = index_label(&key);
            let stored: Option<PurposeState> = serde_json::from_slice(&bytes).ok();
            match (view.remove(key.as_ref()), stored) {
                (_, None) => report
                    .problems
                    .push(format!("consent {}: unreadable", label)),
                (None, Some(_)) => report
                    .problems
                    .push(format!("consent {}: not backed by any event", label)),
                (Some(folded), Some(stored)) if folded != stored => report.problems.push(format!(
                    "consent {}: view says {} but the log says {}",
                    label,
                    stored.status.as_str(),
                    folded.status.as_str()
                )),
                _ => {}
            }
        }
        for key in view.keys() {
            let label = index_label(key);
            report
                .problems
                .push(format!("consent {}: missing from the view", label));
        }
        self.verify_suppressions(&mut report)?;
        Ok(report)
    }

    /// Every suppression entry names an `Erased` event of its tenant, so none can be added
    /// (or moved to another tenant) without an erasure in the chain.
    fn verify_suppressions(&self, report: &mut VerifyReport) -> Result<()> {
        for entry in self.suppressed.iter() {
            let (key, bytes) = entry?;
            let Ok(s) = serde_json::from_slice::<super::Suppression>(&bytes) else {
                report
                    .problems
                    .push("a suppression entry is unreadable".into());
                continue;
            };
            let at = format!("partition {} seq {}", s.partition, s.seq);
            let erased = self
                .events
                .get(keys::event(s.partition, s.seq))?
                .and_then(|b| serde_json::from_slice::<ConsentEvent>(&b).ok())
                .filter(|e| e.event_type == crate::domain::event::EventType::Erased)
                .filter(|e| key.starts_with(&keys::tenant_prefix(&e.tenant)));
            if erased.is_none() {
                report.problems.push(format!(
                    "a suppression entry names {at}, which is not an Erased event of its tenant"
                ));
            }
        }
        Ok(())
    }

    pub fn rebuild(&self) -> Result<RebuildReport> {
        let mut scratch = VerifyReport::default();
        let Folded {
            view,
            links,
            by_tenant,
        } = self.fold_log(&mut scratch)?;
        self.known.add_keys(links.keys().map(|key| key.as_slice()));
        replace_index(&self.links, &links)?;
        replace_index(&self.by_tenant, &by_tenant)?;
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
        self.known.add_keys(view.keys().map(Vec::as_slice));
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

/// Reports every row of `tree` the log does not imply, points elsewhere, or is missing.
fn compare_index(
    tree: &sled::Tree,
    mut expected: Index,
    what: &str,
    report: &mut VerifyReport,
) -> Result<()> {
    let label = index_label;
    for entry in tree.iter() {
        let (key, value) = entry?;
        match expected.remove(key.as_ref()) {
            None => report
                .problems
                .push(format!("{what} {}: not backed by any event", label(&key))),
            Some(event) if event != value.as_ref() => report.problems.push(format!(
                "{what} {}: points at another event than the log's",
                label(&key)
            )),
            Some(_) => {}
        }
    }
    for key in expected.keys() {
        report
            .problems
            .push(format!("{what} {}: missing from its index", label(key)));
    }
    Ok(())
}

fn replace_index(tree: &sled::Tree, rows: &Index) -> Result<()> {
    let mut batch = sled::Batch::default();
    for entry in tree.iter() {
        batch.remove(entry?.0);
    }
    for (key, event) in rows {
        batch.insert(key.as_slice(), event.as_slice());
    }
    tree.apply_batch(batch)?;
    Ok(())
}

fn parse_event_key(key: &[u8]) -> Option<(u32, u64)> {
    if key.len() != 12 {
        return None;
    }
    let partition = u32::from_be_bytes(key[..4].try_into().ok()?);
    let seq = u64::from_be_bytes(key[4..].try_into().ok()?);
    Some((partition, seq))
}

/// An index key as a problem names it: the tenant and the start of what follows in hex (an
/// identifier's keyed hash: the identifier itself is in no key), safe to paste in a ticket.
fn index_label(key: &[u8]) -> String {
    let cut = key.iter().position(|b| *b == 0).unwrap_or(key.len());
    let id = key.get(cut + 1..cut + 7).unwrap_or_default();
    format!(
        "{}/{}…",
        String::from_utf8_lossy(&key[..cut]),
        hex::encode(id)
    )
}
