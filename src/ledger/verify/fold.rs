//! The fold of the log that `verify` and `rebuild` share: every event read, checked on its own
//! (parsed, re-hashed, its stored bytes compared) on a reader thread while this thread checks
//! the chain and folds the view. The two halves cost about the same: checking an event alone
//! is parsing, the canonical form and SHA-256; the fold's maps grow with the log and, at a
//! million events, miss the cache on nearly every probe. Two threads take a 1,000,000-event
//! log in about half the time of one (BENCHMARKS.md, "`verify` of 1,000,000 events").

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{sync_channel, SyncSender};

use super::super::seal::field_ref;
use super::super::{decode, keys, kv, ChainHead, Ledger, LedgerError, Result};
use super::VerifyReport;
use crate::domain::consent::{ContactConsent, PurposeState};
use crate::domain::event::{ConsentEvent, Purpose};
use crate::domain::tenant::TenantId;

/// Consent rows the log implies: key → state.
pub(super) type View = HashMap<Vec<u8>, PurposeState>;

/// Rows of an index the log implies (`links`, `by_tenant`): key → an event's key.
pub(super) type Index = HashMap<Vec<u8>, Vec<u8>>;

/// What the log implies for the derived trees.
pub(super) struct Folded {
    pub view: View,
    pub links: Index,
    pub by_tenant: Index,
    /// `by_contact` keys → the position of the event that needs them; empty unless asked for.
    pub by_contact: HashMap<Vec<u8>, (u32, u64)>,
}

/// Events per message from the reader thread: enough to make the channel's cost vanish, few
/// enough that both threads start at once.
const CHUNK: usize = 256;

/// One event as the reader thread left it.
struct Read {
    key: kv::Bytes,
    position: Option<(u32, u64)>,
    event: Option<ConsentEvent>,
    /// The event says it is elsewhere in the log than where it is stored.
    misplaced: Option<String>,
    /// Unreadable, edited, or stored in another form than its canonical one.
    content: Option<String>,
}

impl Ledger {
    /// The consent view and indexes computed from the log alone, plus the problems met on the
    /// way. `by_contact`: also collect the `by_contact` keys the log implies (verify compares
    /// them; rebuild leaves that index alone).
    pub(super) fn fold_log(&self, report: &mut VerifyReport, by_contact: bool) -> Result<Folded> {
        self.loading.stop();
        let (tx, rx) = sync_channel::<Result<Vec<Read>>>(8);
        std::thread::scope(|scope| {
            let events = &self.events;
            std::thread::Builder::new()
                .name("verify-read".into())
                .spawn_scoped(scope, move || read_log(events, tx))
                .map_err(LedgerError::Thread)?;
            let mut fold = Fold::new(by_contact, self.logged_events()?);
            for chunk in rx {
                for read in chunk? {
                    fold.event(read, report);
                }
            }
            fold.finish(self, report)
        })
    }

    /// How many events the chain heads say the log holds: the fold's maps are sized for them
    /// at once, rather than grown (and copied) a dozen times over a million events. Only a
    /// hint: a damaged head makes the maps grow as before.
    fn logged_events(&self) -> Result<usize> {
        let mut total = 0usize;
        for entry in self.meta.scan_prefix(b"head/") {
            let (_, bytes) = entry?;
            if let Ok(head) = decode::<ChainHead>("meta", &bytes) {
                total = total.saturating_add(usize::try_from(head.seq).unwrap_or(0));
            }
        }
        // Never more than a guess can cost: a head claiming 2^60 events must not allocate.
        Ok(total.min(1 << 26))
    }
}

fn read_log(events: &kv::Tree, tx: SyncSender<Result<Vec<Read>>>) {
    let mut chunk = Vec::with_capacity(CHUNK);
    for entry in events.iter() {
        match entry {
            Ok((key, bytes)) => chunk.push(check_alone(key, &bytes)),
            Err(e) => {
                let _ = tx.send(Err(e.into()));
                return;
            }
        }
        if chunk.len() == CHUNK
            && tx
                .send(Ok(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))))
                .is_err()
        {
            return;
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Ok(chunk));
    }
}

/// The checks that need the event alone.
fn check_alone(key: kv::Bytes, bytes: &[u8]) -> Read {
    let mut read = Read {
        position: parse_event_key(&key),
        key,
        event: None,
        misplaced: None,
        content: None,
    };
    let Some((partition, seq)) = read.position else {
        return read;
    };
    let event: ConsentEvent = match serde_json::from_slice(bytes) {
        Ok(e) => e,
        Err(e) => {
            read.content = Some(format!(
                "partition {partition} seq {seq}: not a valid event ({e})"
            ));
            return read;
        }
    };
    if (event.partition, event.seq) != (partition, seq) {
        read.misplaced = Some(format!(
            "partition {partition} seq {seq}: stored under the wrong position (event says partition {} seq {})",
            event.partition, event.seq
        ));
    }
    if event.compute_hash() != event.hash {
        read.content = Some(format!(
            "partition {partition} seq {seq}: hash mismatch (event {} was edited)",
            event.event_id
        ));
    } else if event.stored_bytes() != bytes {
        read.content = Some(format!(
            "partition {partition} seq {seq}: stored bytes differ from the canonical form"
        ));
    }
    read.event = Some(event);
    read
}

/// The in-order half: the chains, the indexes and the view.
struct Fold {
    links: Index,
    /// Tenants by index, so that a position or a contact names its tenant in four bytes.
    tenants: Vec<TenantId>,
    tenant_index: HashMap<TenantId, u32>,
    tenant_of: HashMap<(u32, u64), u32>,
    contacts: HashMap<(u32, [u8; 32]), ContactConsent>,
    last: BTreeMap<u32, ChainHead>,
    by_contact: Option<HashMap<Vec<u8>, (u32, u64)>>,
    /// The events the chain heads announce (a capacity hint).
    events: usize,
}

impl Fold {
    fn new(by_contact: bool, events: usize) -> Self {
        Fold {
            links: Index::new(),
            tenants: Vec::new(),
            tenant_index: HashMap::new(),
            tenant_of: HashMap::with_capacity(events),
            contacts: HashMap::with_capacity(events),
            last: BTreeMap::new(),
            by_contact: by_contact.then(|| HashMap::with_capacity(events)),
            events,
        }
    }

    fn tenant(&mut self, tenant: &TenantId) -> u32 {
        if let Some(i) = self.tenant_index.get(tenant) {
            return *i;
        }
        let i = self.tenants.len() as u32;
        self.tenants.push(tenant.clone());
        self.tenant_index.insert(tenant.clone(), i);
        i
    }

    fn event(&mut self, read: Read, report: &mut VerifyReport) {
        report.events += 1;
        let Some((partition, seq)) = read.position else {
            report
                .problems
                .push(format!("event key {} is malformed", hex::encode(&read.key)));
            return;
        };
        let Some(event) = read.event else {
            report.problems.extend(read.content);
            return;
        };
        let at = || format!("partition {partition} seq {seq}");
        report.problems.extend(read.misplaced);
        let prev = self.last.entry(partition).or_default();
        if seq != prev.seq + 1 {
            report.problems.push(format!(
                "{}: expected seq {} (events deleted or reordered)",
                at(),
                prev.seq + 1
            ));
        }
        if event.prev_hash != prev.hash {
            report.problems.push(format!(
                "{}: prev_hash does not match the previous event (chain broken)",
                at()
            ));
        }
        *prev = ChainHead {
            seq,
            hash: event.hash.clone(),
        };
        report.problems.extend(read.content);
        // Indexes name identifiers by the keyed hash their sealed field carries, so the
        // checks need no key: they hold after an erasure too.
        let Some(contact) = field_ref(event.contact.as_str()) else {
            report.problems.push(format!(
                "{}: its contact is not sealed (stored in clear)",
                at()
            ));
            return;
        };
        let linked = match &event.linked_contact {
            Some(c) => match field_ref(c.as_str()) {
                Some(id) => Some(id),
                None => {
                    report
                        .problems
                        .push(format!("{}: its linked contact is not sealed", at()));
                    return;
                }
            },
            None => None,
        };
        if let Some(expected) = &mut self.by_contact {
            for id in std::iter::once(&contact).chain(&linked) {
                expected.insert(
                    keys::by_contact(&event.tenant, id, partition, seq),
                    (partition, seq),
                );
            }
        }
        let tenant = self.tenant(&event.tenant);
        self.tenant_of.insert((partition, seq), tenant);
        if let Some(linked) = &linked {
            for (a, b) in [(&contact, linked), (linked, &contact)] {
                self.links
                    .entry(keys::link(&event.tenant, a, b))
                    .or_insert_with(|| read.key.to_vec());
            }
        }
        let slot = self.contacts.entry((tenant, contact)).or_default();
        *slot = slot.apply(&event);
    }

    fn finish(self, ledger: &Ledger, report: &mut VerifyReport) -> Result<Folded> {
        for entry in ledger.meta.scan_prefix(b"head/") {
            let (key, bytes) = entry?;
            let head: ChainHead = decode("meta", &bytes)?;
            let partition = String::from_utf8_lossy(&key[5..])
                .parse::<u32>()
                .unwrap_or(u32::MAX);
            let found = self.last.get(&partition).cloned().unwrap_or_default();
            if found != head {
                report.problems.push(format!(
                    "partition {partition}: chain head says seq {} but the log ends at seq {} (events deleted at the end)",
                    head.seq, found.seq
                ));
            }
        }
        if let Some(p) = self
            .last
            .keys()
            .find(|p| !ledger.meta.contains_key(keys::head(**p)).unwrap_or(false))
        {
            report
                .problems
                .push(format!("partition {p}: events without a chain head"));
        }
        let feed = ledger.feed.len()?;
        if feed as u64 != report.events {
            report.problems.push(format!(
                "the feed index has {feed} entries for {} events",
                report.events
            ));
        }
        report.partitions = self.last.len();
        report.contacts = self.contacts.len();
        let mut view = View::with_capacity(self.contacts.len());
        for ((tenant, contact), c) in &self.contacts {
            for p in Purpose::ALL {
                if c.get(p).events > 0 {
                    let tenant = &self.tenants[*tenant as usize];
                    view.insert(keys::consent(tenant, contact, p), c.get(p).clone());
                }
            }
        }
        let mut by_tenant = Index::with_capacity(self.events);
        for entry in ledger.feed.iter() {
            let (position, event_key) = entry?;
            let position = u64::from_be_bytes(position.as_ref().try_into().unwrap_or_default());
            let tenant = parse_event_key(&event_key).and_then(|at| self.tenant_of.get(&at));
            if let Some(tenant) = tenant {
                let tenant = &self.tenants[*tenant as usize];
                by_tenant.insert(keys::by_tenant(tenant, position), event_key.to_vec());
            }
        }
        Ok(Folded {
            view,
            links: self.links,
            by_tenant,
            by_contact: self.by_contact.unwrap_or_default(),
        })
    }
}

pub(super) fn parse_event_key(key: &[u8]) -> Option<(u32, u64)> {
    if key.len() != 12 {
        return None;
    }
    let partition = u32::from_be_bytes(key[..4].try_into().ok()?);
    let seq = u64::from_be_bytes(key[4..].try_into().ok()?);
    Some((partition, seq))
}
