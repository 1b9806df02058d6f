//! The ledger's own rows, read from a ledger directory, and the order the replay writes them in.
//!
//! A real commit (src/ledger/batch.rs, `Staged::commit`) writes, for the events of one batch,
//! their rows in every tree in one atomic write, then makes it durable. The replay keeps
//! what decides an engine's cost: the same trees, the same key and value bytes, the same number
//! of rows per batch, and where in each tree they land:
//!
//! - trees keyed by sequence (`events` and `replies`: partition ++ seq; `feed`: position;
//!   `by_tenant`: tenant ++ position; `signed_heads`) are appended in key order, as the log
//!   grows;
//! - trees keyed by keyed hashes (`consent`, `by_contact`, `dedupe`, `keys`, `suppressed`,
//!   `links`, the analytics trees, and any tree not named here) get their rows in a seeded
//!   shuffled order, so that inserts land at random places in the key space, as HMACs do;
//! - `meta` is written whole by every batch: the chain and reply heads it holds are rewritten
//!   by every commit.
//!
//! Batch `b` of `n` holds the rows `[len * b / n, len * (b + 1) / n)` of each tree's order, so
//! every batch carries the rows of about BATCH events in each tree.
//!
//! Left out: the reads a commit makes (its consent rows, dedupe and chain heads are read before
//! they are written), rows a later batch overwrites (a contact's consent row written again by
//! its next event; the replay writes each final row once), the relays' cursor writes between
//! batches, and the signing of chain heads after the fsync. `by_tenant` is in key order, which
//! is append order only for a ledger of one tenant (the STOP traffic has one).

use std::path::Path;

use anyhow::{bail, Context};

/// Trees whose keys grow with the log.
const IN_KEY_ORDER: [&str; 5] = ["events", "replies", "feed", "by_tenant", "signed_heads"];
/// Trees every commit rewrites.
const EVERY_BATCH: [&str; 1] = ["meta"];

pub type Row = (Vec<u8>, Vec<u8>);

pub struct Tree {
    pub name: String,
    /// In the order the replay writes them.
    pub rows: Vec<Row>,
    pub every_batch: bool,
}

pub struct Workload {
    pub trees: Vec<Tree>,
    /// Rows of the `events` tree: what "per event" divides by.
    pub events: usize,
    pub batches: usize,
}

impl Workload {
    /// Reads every non-empty tree of the ledger's store in `dir` (a closed ledger, e.g.
    /// DATA_DIR/ledger) and orders its rows for batches of `batch` events. `seed: None` keeps
    /// every tree in key order: not what the ledger does, it shows what random placement costs.
    pub fn read(dir: &Path, batch: usize, seed: Option<u64>) -> anyhow::Result<Workload> {
        let db = fjall::Config::new(dir)
            .open()
            .with_context(|| format!("opening the ledger at {}", dir.display()))?;
        let mut trees = Vec::new();
        for name in db.list_partitions() {
            let tree = db.open_partition(&name, Default::default())?;
            let mut rows = Vec::new();
            for row in tree.iter() {
                let (k, v) = row?;
                rows.push((k.to_vec(), v.to_vec()));
            }
            if rows.is_empty() {
                continue;
            }
            let name = name.to_string();
            match seed {
                Some(seed) if !IN_KEY_ORDER.contains(&name.as_str()) => {
                    shuffle(&mut rows, seed ^ fnv(&name))
                }
                _ => {}
            }
            let every_batch = EVERY_BATCH.contains(&name.as_str());
            trees.push(Tree {
                name,
                rows,
                every_batch,
            });
        }
        let events = trees
            .iter()
            .find(|t| t.name == "events")
            .map_or(0, |t| t.rows.len());
        if events == 0 {
            bail!(
                "{} holds no events: not a ledger, or an empty one",
                dir.display()
            );
        }
        Ok(Workload {
            trees,
            events,
            batches: events.div_ceil(batch.max(1)),
        })
    }

    /// The rows of tree `tree` that batch `b` writes.
    pub fn rows(&self, tree: usize, b: usize) -> &[Row] {
        let t = &self.trees[tree];
        if t.every_batch {
            return &t.rows;
        }
        let len = t.rows.len();
        &t.rows[len * b / self.batches..len * (b + 1) / self.batches]
    }
}

/// Key bytes and value bytes of a tree.
pub fn tree_bytes(tree: &Tree) -> (u64, u64) {
    tree.rows.iter().fold((0, 0), |(k, v), (key, value)| {
        (k + key.len() as u64, v + value.len() as u64)
    })
}

/// Fisher-Yates with splitmix64: the same seed gives the same order on every machine.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        items.swap(i, (z % (i as u64 + 1)) as usize);
    }
}

/// A tree's own seed, so that two trees of equal size are not shuffled alike.
fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
