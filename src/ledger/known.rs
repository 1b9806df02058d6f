//! Which identifiers the consent view may hold anything about, in memory.
//!
//! An audience check asks the view about every contact of the audience, and nearly all of them
//! have never written to the business: for each, the ledger read the identifier's links, its
//! consent and the suppression list in the store to find nothing (about half of a 1,000,000-contact
//! check, BENCHMARKS.md). This set answers "nothing here" from memory.
//!
//! It is a filter, never the record: it holds the first 8 bytes of the keyed hash of every
//! identifier with a row in `consent`, `links` or `suppressed`, and is always a superset of
//! them. A hit, true or by collision, reads the store as before; only a miss skips it. Identifiers
//! are added before the rows that name them are written, and never removed while the process
//! runs (an erased person keeps a suppression row anyway). At open it is filled from those
//! trees on a background thread; until that scan is done it answers "maybe" for everyone,
//! so the service starts at once and answers the same before and after.
//!
//! Memory: about 9 to 18 bytes an identifier (a hash set of `u64`), 90 to 180 MB for 10
//! million.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

type Ids = HashSet<u64, BuildHasherDefault<Prefix>>;

/// Shards, by middle bits of the prefix (the set hashes by its low and top bits): a check reads the filter from every core, and readers
/// of one lock still write its counter, which two cores then pass back and forth.
const SHARDS: usize = 64;

pub(super) struct Known {
    ready: AtomicBool,
    shards: [RwLock<Ids>; SHARDS],
}

impl Default for Known {
    fn default() -> Self {
        Known {
            ready: AtomicBool::new(false),
            shards: std::array::from_fn(|_| RwLock::default()),
        }
    }
}

impl Known {
    /// A filter filled from `trees` in the background; ready once they are all read. The
    /// scan stops when the returned [`Loading`] is dropped with the ledger.
    pub(super) fn load(trees: Vec<super::kv::Tree>) -> (Arc<Known>, Loading) {
        let known = Arc::new(Known::default());
        let filling = Arc::clone(&known);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("known-identifiers".into())
            .spawn(move || filling.fill(&trees, &stopped))
            .expect("a thread can be started at open");
        let loading = Loading {
            stop,
            thread: Some(thread),
        };
        (known, loading)
    }

    fn fill(&self, trees: &[super::kv::Tree], stop: &AtomicBool) {
        for tree in trees {
            for entry in tree.keys() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                match entry {
                    Ok(key) => self.add_key(&key),
                    // Left "maybe" for everyone: every check reads the store, as without the filter.
                    Err(e) => {
                        tracing::warn!(error = %e, "the in-memory index of known identifiers could not be loaded; checks read the ledger for every contact");
                        return;
                    }
                }
            }
        }
        self.ready.store(true, Ordering::Release);
    }

    /// Whether the view may hold something about the identifier whose keyed hash is `id`.
    pub(super) fn may_know(&self, id: &[u8; 32]) -> bool {
        if !self.ready.load(Ordering::Acquire) {
            return true;
        }
        let id = prefix(id);
        self.shard(id)
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&id)
    }

    /// Records the identifier a `consent`, `links` or `suppressed` key names (`tenant \0 id
    /// …`), before that key is written.
    pub(super) fn add_key(&self, key: &[u8]) {
        self.add_keys([key]);
    }

    pub(super) fn add_keys<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        for id in keys.into_iter().filter_map(identifier) {
            self.shard(id)
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(id);
        }
    }

    fn shard(&self, id: u64) -> &RwLock<Ids> {
        &self.shards[(id >> 32) as usize % SHARDS]
    }

    /// Waits for the scan at open, so that tests exercise the filter rather than its "maybe".
    #[cfg(test)]
    pub(super) fn wait_until_loaded(&self) {
        while !self.ready.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// The scan at open. Its thread holds clones of the ledger's trees, and with them the lock
/// on the directory: dropping the ledger stops and joins it, so that the directory can be
/// opened again as soon as the ledger is gone (`migrate`, `rotate-master-key` and the tests
/// reopen a ledger they have just closed).
#[derive(Default)]
pub(super) struct Loading {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loading {
    /// Stops the scan if it is still running, leaving the filter at "maybe" for everyone
    /// (correct, only slower): for the passes over the whole log (`verify`, `rebuild`), which
    /// never ask the filter and need the core it takes.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Loading {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A panic in the scan left the filter at "maybe": nothing to add here.
            let _ = thread.join();
        }
    }
}

/// The identifier's prefix in a key laid out as `tenant \0 id(32) …`.
fn identifier(key: &[u8]) -> Option<u64> {
    let start = key.iter().position(|&b| b == 0)? + 1;
    let id: &[u8; 32] = key.get(start..start + 32)?.try_into().ok()?;
    Some(prefix(id))
}

fn prefix(id: &[u8; 32]) -> u64 {
    u64::from_le_bytes(id[..8].try_into().expect("8 of 32 bytes"))
}

/// The prefix of an HMAC is already uniformly distributed: hashing it again is wasted work.
#[derive(Default)]
struct Prefix(u64);

impl Hasher for Prefix {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rgpd::MasterKey;

    fn key(tenant: &str, id: [u8; 32], rest: &[u8]) -> Vec<u8> {
        [tenant.as_bytes(), b"\0", &id, b"\0", rest].concat()
    }

    #[test]
    fn before_its_scan_is_done_the_filter_answers_maybe_for_everyone() {
        let known = Known::default();
        assert!(known.may_know(&[7; 32]));
        known.ready.store(true, Ordering::Release);
        assert!(!known.may_know(&[7; 32]));
    }

    #[test]
    fn an_identifier_named_by_a_key_is_known_whatever_its_bytes() {
        let known = Known::default();
        known.ready.store(true, Ordering::Release);
        // An id may hold NUL bytes: only the first NUL, after the tenant, delimits.
        let mut id = [0u8; 32];
        id[5] = 9;
        known.add_key(&key("acme", id, b"marketing"));
        known.add_keys([key("acme", [3; 32], b"").as_slice()]);
        assert!(known.may_know(&id));
        assert!(known.may_know(&[3; 32]));
        assert!(!known.may_know(&[4; 32]));
        // Keys too short to name an identifier add nothing and do not panic.
        known.add_key(b"acme\0short");
        known.add_key(b"no separator");
    }

    /// Regression: the scan's thread held the trees, and so the lock on the directory, for
    /// a while after the ledger was dropped; a reopen at once failed with "locked by another
    /// consent-ledger process" (the master-key rotation test, one CI run in a few).
    #[test]
    fn a_ledger_dropped_while_its_identifiers_load_can_be_reopened_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let master = [7u8; 32];
        {
            let ledger = super::super::Ledger::open(&path, MasterKey::from_bytes(master)).unwrap();
            for i in 0..20_000u32 {
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&i.to_be_bytes());
                ledger
                    .consent
                    .insert(key("acme", id, b"marketing"), b"{}")
                    .unwrap();
            }
        }
        for _ in 0..5 {
            let ledger = super::super::Ledger::open(&path, MasterKey::from_bytes(master));
            assert!(ledger.is_ok(), "{:?}", ledger.err());
        }
    }

    #[test]
    fn the_scan_fills_the_filter_from_every_tree_then_makes_it_ready() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::kv::Db::open(dir.path(), 8 << 20).unwrap();
        let consent = db.open_tree("consent").unwrap();
        let links = db.open_tree("links").unwrap();
        consent
            .insert(key("acme", [1; 32], b"marketing"), b"{}")
            .unwrap();
        links.insert(key("acme", [2; 32], &[1; 32]), b"e").unwrap();
        let known = Known::default();
        known.fill(&[consent, links], &AtomicBool::new(false));
        assert!(known.may_know(&[1; 32]) && known.may_know(&[2; 32]));
        assert!(!known.may_know(&[5; 32]));
    }
}
