//! The fold of the log that `verify` and `rebuild` share: every event read, checked on its own
//! (parsed, re-hashed, its stored bytes compared), then folded in log order: the chains, the
//! indexes and the view. Checking an event alone is most of the work (parsing, the canonical
//! form, SHA-256) and needs nothing but the event, so chunks of the log are checked on
//! [`CHECKERS`] threads while one thread reads the log and this one folds, in order
//! (BENCHMARKS.md, "`verify` of 1,000,000 events").

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use foldhash::fast::FixedState;

use super::super::person::Id;
use super::super::seal::field_ref;
use super::super::{decode, keys, kv, ChainHead, Ledger, LedgerError, Result};
use super::VerifyReport;
use crate::domain::consent::{ContactConsent, PurposeState};
use crate::domain::event::{ConsentEvent, Purpose};
use crate::domain::tenant::TenantId;

/// What the log implies for the derived trees, each part sorted in its tree's key order so
/// that it is compared with the tree in one merged pass (`merge.rs`). Rows are compact tuples
/// rather than key bytes: a million events would otherwise hold a million small allocations
/// per index. Tenants are named by their rank in name order, and a tenant's id holds no NUL,
/// so sorting by rank, then by the fixed-width fields that follow, is sorting by key.
pub(super) struct Folded {
    /// Tenants in name order; a rank indexes this.
    tenants: Vec<TenantId>,
    /// Each identifier's consent, by (tenant rank, keyed hash), sorted.
    contacts: Vec<((u32, Id), ContactConsent)>,
    /// `links` rows: key → the event that made the link.
    pub links: BTreeMap<Vec<u8>, Vec<u8>>,
    /// `by_tenant` rows as (tenant rank, feed position, event key), sorted.
    by_tenant: Vec<(u32, u64, [u8; 12])>,
    /// `by_contact` rows as (tenant rank, keyed hash, partition, seq), sorted; empty unless
    /// asked for.
    by_contact: Vec<(u32, Id, u32, u64)>,
}

impl Folded {
    /// The identifiers the log names.
    pub fn contacts(&self) -> usize {
        self.contacts.len()
    }

    /// `consent` rows in key order: key → the state the log implies.
    pub fn view(&self) -> impl Iterator<Item = (Vec<u8>, &PurposeState)> {
        self.contacts
            .iter()
            .flat_map(move |((tenant, id), consent)| {
                let tenant = &self.tenants[*tenant as usize];
                Purpose::ALL
                    .into_iter()
                    .filter(|p| consent.get(*p).events > 0)
                    .map(move |p| (keys::consent(tenant, id, p), consent.get(p)))
            })
    }

    /// `by_tenant` rows in key order: key → the event's key.
    pub fn by_tenant(&self) -> impl Iterator<Item = (Vec<u8>, &[u8])> {
        self.by_tenant.iter().map(|(tenant, position, event)| {
            let key = keys::by_tenant(&self.tenants[*tenant as usize], *position);
            (key, event.as_slice())
        })
    }

    /// `by_contact` rows in key order: key → the position of the event that needs it.
    pub fn by_contact(&self) -> impl Iterator<Item = (Vec<u8>, (u32, u64))> + '_ {
        self.by_contact.iter().map(|(tenant, id, partition, seq)| {
            let key = keys::by_contact(&self.tenants[*tenant as usize], id, *partition, *seq);
            (key, (*partition, *seq))
        })
    }
}

/// Events per chunk handed to a checker: enough to make the channels' cost vanish, few
/// enough that every thread starts at once.
const CHUNK: usize = 256;

/// One event as a checker left it.
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
        // Chunks go to the checkers through `jobs`, each with the channel its checked form
        // comes back on; those channels reach this thread through `order`, in log order.
        let (order_tx, order) = sync_channel::<Result<Receiver<Vec<Read>>>>(4 * CHECKERS);
        let (jobs_tx, jobs) = sync_channel::<Job>(CHECKERS);
        let jobs = Mutex::new(jobs);
        std::thread::scope(|scope| {
            let events = &self.events;
            std::thread::Builder::new()
                .name("verify-read".into())
                .spawn_scoped(scope, move || read_log(events, order_tx, jobs_tx))
                .map_err(LedgerError::Thread)?;
            for _ in 0..CHECKERS {
                let jobs = &jobs;
                std::thread::Builder::new()
                    .name("verify-check".into())
                    .spawn_scoped(scope, move || check_chunks(jobs))
                    .map_err(LedgerError::Thread)?;
            }
            let started = std::time::Instant::now();
            let mut fold = Fold::new(by_contact, self.logged_events()?);
            for checked in order {
                let chunk = checked?.recv().map_err(|_| LedgerError::Corrupt {
                    tree: "events",
                    detail: "a verify thread stopped before checking its events".into(),
                })?;
                for read in chunk {
                    fold.event(read, report);
                }
            }
            tracing::debug!(ms = started.elapsed().as_millis(), "log read and folded");
            let folded = fold.finish(self, report);
            tracing::debug!(ms = started.elapsed().as_millis(), "the fold's rows sorted");
            folded
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

/// Threads that check events alone. Two: the machines this runs on have two cores or more,
/// and the reader and the fold share what is left.
const CHECKERS: usize = 2;

/// A chunk of stored events to check, and where its checked form goes.
type Job = (Vec<(kv::Bytes, kv::Bytes)>, SyncSender<Vec<Read>>);

/// Reads the log in order, chunk by chunk, handing each chunk to the checkers. Stops at the
/// first storage error (sent in the chunk's place) or when the fold stops listening.
fn read_log(
    events: &kv::Tree,
    order: SyncSender<Result<Receiver<Vec<Read>>>>,
    jobs: SyncSender<Job>,
) {
    let send = |chunk: Vec<(kv::Bytes, kv::Bytes)>| {
        let (done, checked) = sync_channel(1);
        order.send(Ok(checked)).is_ok() && jobs.send((chunk, done)).is_ok()
    };
    let mut chunk = Vec::with_capacity(CHUNK);
    for entry in events.iter() {
        match entry {
            Ok(row) => chunk.push(row),
            Err(e) => {
                let _ = order.send(Err(e.into()));
                return;
            }
        }
        if chunk.len() == CHUNK && !send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))) {
            return;
        }
    }
    if !chunk.is_empty() {
        send(chunk);
    }
}

/// Checks chunks until the reader has no more.
fn check_chunks(jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((chunk, done)) = job else { return };
        let checked = chunk
            .into_iter()
            .map(|(key, bytes)| check_alone(key, &bytes))
            .collect();
        // The fold may have stopped at an error; then nobody waits for this chunk.
        let _ = done.send(checked);
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
    } else if !event.is_stored_as(bytes) {
        read.content = Some(format!(
            "partition {partition} seq {seq}: stored bytes differ from the canonical form"
        ));
    }
    read.event = Some(event);
    read
}

/// The in-order half: the chains, the indexes and the view.
struct Fold {
    links: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Tenants by index (order of first sight), so that a row names its tenant in four bytes.
    tenants: Vec<TenantId>,
    tenant_index: HashMap<TenantId, u32, FixedState>,
    tenant_of: TenantOf,
    contacts: HashMap<(u32, Id), ContactConsent, FixedState>,
    last: BTreeMap<u32, ChainHead>,
    by_contact: Option<Vec<(u32, Id, u32, u64)>>,
    /// The events the chain heads announce (a capacity hint).
    events: usize,
}

/// The tenant of each event, for `by_tenant`, which is keyed by feed position. Within a
/// partition the log is read in seq order and seqs are dense, so a vector per partition
/// indexed by seq holds it; a seq far past the last one (events deleted, or a forged key)
/// goes to a map instead of growing the vector over the gap.
#[derive(Default)]
struct TenantOf {
    dense: BTreeMap<u32, Vec<u32>>,
    stray: HashMap<(u32, u64), u32, FixedState>,
}

/// A gap in a partition's seqs that is filled rather than sent to `stray`.
const GAP: u64 = 1 << 16;

/// No tenant: the slot of a seq the log skipped.
const NONE: u32 = u32::MAX;

impl TenantOf {
    fn record(&mut self, partition: u32, seq: u64, tenant: u32) {
        let dense = self.dense.entry(partition).or_default();
        let next = dense.len() as u64 + 1;
        if seq >= next && seq - next <= GAP {
            dense.resize((seq - 1) as usize, NONE);
            dense.push(tenant);
        } else {
            self.stray.insert((partition, seq), tenant);
        }
    }

    fn get(&self, partition: u32, seq: u64) -> Option<u32> {
        if let Some(tenant) = self.stray.get(&(partition, seq)) {
            return Some(*tenant);
        }
        let slot = usize::try_from(seq.checked_sub(1)?).ok()?;
        let tenant = *self.dense.get(&partition)?.get(slot)?;
        (tenant != NONE).then_some(tenant)
    }
}

impl Fold {
    fn new(by_contact: bool, events: usize) -> Self {
        Fold {
            links: BTreeMap::new(),
            tenants: Vec::new(),
            tenant_index: HashMap::default(),
            tenant_of: TenantOf::default(),
            contacts: HashMap::with_capacity_and_hasher(events, FixedState::default()),
            last: BTreeMap::new(),
            by_contact: by_contact.then(|| Vec::with_capacity(events)),
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
        let tenant = self.tenant(&event.tenant);
        if let Some(expected) = &mut self.by_contact {
            for id in std::iter::once(contact).chain(linked) {
                expected.push((tenant, id, partition, seq));
            }
        }
        self.tenant_of.record(partition, seq, tenant);
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
        // Tenants renumbered by name, so that every sort below is a sort by key.
        let mut by_name: Vec<u32> = (0..self.tenants.len() as u32).collect();
        by_name.sort_unstable_by(|a, b| self.tenants[*a as usize].cmp(&self.tenants[*b as usize]));
        let mut rank = vec![0u32; by_name.len()];
        for (r, i) in by_name.iter().enumerate() {
            rank[*i as usize] = r as u32;
        }
        let tenants = by_name
            .iter()
            .map(|i| self.tenants[*i as usize].clone())
            .collect();
        let Fold {
            contacts,
            tenant_of,
            by_contact,
            links,
            events,
            ..
        } = self;
        let rank = &rank;
        // The view's rows are sorted on a thread of their own while this one reads the feed
        // for `by_tenant` and sorts `by_contact`: a million of each take about as long.
        let (contacts, by_tenant, by_contact) = std::thread::scope(|scope| {
            let contacts = std::thread::Builder::new()
                .name("verify-sort".into())
                .spawn_scoped(scope, move || {
                    let mut contacts: Vec<_> = contacts
                        .into_iter()
                        .map(|((tenant, id), consent)| ((rank[tenant as usize], id), consent))
                        .collect();
                    contacts.sort_unstable_by_key(|(key, _)| *key);
                    contacts
                })
                .map_err(LedgerError::Thread)?;
            let mut by_tenant = Vec::with_capacity(events);
            for entry in ledger.feed.iter() {
                let (position, event_key) = entry?;
                let position = u64::from_be_bytes(position.as_ref().try_into().unwrap_or_default());
                let tenant = parse_event_key(&event_key).and_then(|(p, s)| tenant_of.get(p, s));
                if let (Some(tenant), Ok(event_key)) =
                    (tenant, <[u8; 12]>::try_from(event_key.as_ref()))
                {
                    by_tenant.push((rank[tenant as usize], position, event_key));
                }
            }
            by_tenant.sort_unstable();
            let mut by_contact = by_contact.unwrap_or_default();
            for row in &mut by_contact {
                row.0 = rank[row.0 as usize];
            }
            by_contact.sort_unstable();
            let contacts = contacts
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok::<_, LedgerError>((contacts, by_tenant, by_contact))
        })?;
        Ok(Folded {
            tenants,
            contacts,
            links,
            by_tenant,
            by_contact,
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
