//! The storage engine under the ledger: fjall, an LSM tree whose one journal takes every
//! tree's writes. A batch is one journal record whatever trees it spans, and one fsync of
//! the journal makes it durable; sled's flush wrote and synced every dirty page instead, and
//! capped a batch commit at about 4,800 events/s on this machine (BENCHMARKS.md, "The store,
//! side by side"). fjall's memory is bounded by its block cache and write buffer, where sled
//! kept every page it had paged in.
//!
//! This module gives the rest of the ledger named trees with the few operations it uses, so
//! that no other file names the engine.

use std::fs::File;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

/// A stored key or value: cheap to clone, derefs to bytes.
pub(crate) type Bytes = fjall::Slice;

pub(crate) type Entry = std::result::Result<(Bytes, Bytes), fjall::Error>;

/// The exclusive lock on a ledger directory: fjall itself does not stop a second process
/// from opening the same directory, which would interleave two journals. Every handle holds
/// it, so it goes only with the last of them, after fjall's own threads are joined.
#[derive(Debug)]
struct DirLock(#[allow(dead_code)] File);

/// Why an open failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("it is locked by another consent-ledger process")]
    Locked,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Engine(#[from] fjall::Error),
}

/// An open database: its trees, its journal, its lock.
pub(crate) struct Db {
    keyspace: fjall::Keyspace,
    lock: Arc<DirLock>,
}

/// One named tree of a [`Db`].
#[derive(Clone)]
pub(crate) struct Tree {
    part: fjall::PartitionHandle,
    _lock: Arc<DirLock>,
}

/// The name of the lock file in a ledger directory.
const LOCK_FILE: &str = "LOCK";

impl Db {
    /// Opens (or creates) the database in `dir`. `cache_bytes` bounds the block cache, and the
    /// write buffer (the memtables not yet flushed) to the same size, so that memory stays
    /// flat however long it runs.
    pub(crate) fn open(dir: &Path, cache_bytes: u64) -> std::result::Result<Db, OpenError> {
        std::fs::create_dir_all(dir)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(OpenError::Locked),
            Err(e) => return Err(OpenError::Io(e.into())),
        }
        remove_half_created_trees(dir)?;
        // The journal keeps fjall's default bound (512 MiB, its files sparse): at 128 MiB,
        // writes stalled for 2.5 s every 32,000 STOPs (fjall sleeps a writer once the journals
        // pass 90% of the bound), and 100,000 STOPs took 16 s instead of 9.5 s.
        let keyspace = fjall::Config::new(dir)
            .cache_size(cache_bytes)
            .max_write_buffer_size(cache_bytes.max(8 << 20))
            // Durability is the ledger's decision, at each batch's end (`flush`), never a
            // side effect of a write.
            .manual_journal_persist(true)
            .open()?;
        Ok(Db {
            keyspace,
            lock: Arc::new(DirLock(file)),
        })
    }

    pub(crate) fn open_tree(&self, name: &str) -> fjall::Result<Tree> {
        Ok(Tree {
            part: self
                .keyspace
                .open_partition(name, fjall::PartitionCreateOptions::default())?,
            _lock: self.lock.clone(),
        })
    }

    /// The names of the trees that exist.
    pub(crate) fn tree_names(&self) -> Vec<String> {
        self.keyspace
            .list_partitions()
            .into_iter()
            .map(|n| n.to_string())
            .collect()
    }

    /// Makes every write so far durable: the journal written and fsynced.
    pub(crate) fn flush(&self) -> fjall::Result<()> {
        self.keyspace.persist(fjall::PersistMode::SyncAll)
    }

    /// Writes every tree's memtable out to its tables and waits for it, so that the journal
    /// holds nothing the next open must replay. fjall flushes a tree's memtable only once it is
    /// full, so without this a command run after `ingest` read the whole of its journal back
    /// first (half a second after 10,000 STOPs, for a `status`).
    pub(crate) fn settle(&self) -> fjall::Result<()> {
        for name in self.keyspace.list_partitions() {
            self.keyspace
                .open_partition(&name, fjall::PartitionCreateOptions::default())?
                .rotate_memtable_and_wait()?;
        }
        self.flush()
    }

    /// A set of writes across trees that lands whole or not at all.
    pub(crate) fn batch(&self) -> Batch {
        Batch(self.keyspace.batch())
    }
}

/// fjall 2.11 creates a tree by writing its `manifest`, then its `levels` file, and opens
/// only trees that have both: a kill -9 between the two (a first start killed in its first
/// few hundred milliseconds) left a ledger that no later start could open. Such a tree was
/// never handed out, so nothing was ever written to it: it is removed, manifest first as
/// fjall itself removes a tree, and opening creates it again. A tree with segments is left
/// for fjall to judge. Returns the names of the trees removed.
fn remove_half_created_trees(dir: &Path) -> std::io::Result<Vec<String>> {
    let trees = dir.join("partitions");
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(&trees) else {
        return Ok(removed);
    };
    for entry in entries {
        let path = entry?.path();
        let half_created = path.join("manifest").exists()
            && !path.join("levels").exists()
            && !path.join(".deleted").exists()
            && std::fs::read_dir(path.join("segments"))
                .map(|mut s| s.next().is_none())
                .unwrap_or(true);
        if !half_created {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        tracing::warn!(
            tree = %name,
            "removing a storage tree whose creation a crash interrupted; it held nothing and is created again"
        );
        std::fs::remove_file(path.join("manifest"))?;
        std::fs::remove_dir_all(&path)?;
        removed.push(name);
    }
    if !removed.is_empty() {
        File::open(&trees)?.sync_all()?;
    }
    Ok(removed)
}

/// Writes across trees committed as one journal record.
pub(crate) struct Batch(fjall::Batch);

impl Batch {
    pub(crate) fn insert(&mut self, tree: &Tree, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.0.insert(&tree.part, key.as_ref(), value.as_ref());
    }

    pub(crate) fn remove(&mut self, tree: &Tree, key: impl AsRef<[u8]>) {
        self.0.remove(&tree.part, key.as_ref());
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Applies the writes; durable only after [`Db::flush`].
    pub(crate) fn commit(self) -> fjall::Result<()> {
        self.0.commit()
    }
}

impl Db {
    /// Writes `rows` into `dst`, in batches of 10,000 (a copy of a whole tree, for `migrate`);
    /// returns how many. Durable only after [`Db::flush`].
    pub(crate) fn fill<K, V, E>(
        &self,
        dst: &Tree,
        rows: impl Iterator<Item = std::result::Result<(K, V), E>>,
    ) -> super::Result<u64>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
        super::LedgerError: From<E>,
    {
        let mut n = 0u64;
        let mut batch = self.batch();
        for row in rows {
            let (k, v) = row?;
            batch.insert(dst, k, v);
            n += 1;
            if batch.len() >= 10_000 {
                std::mem::replace(&mut batch, self.batch()).commit()?;
            }
        }
        batch.commit()?;
        Ok(n)
    }
}

impl Tree {
    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> fjall::Result<Option<Bytes>> {
        self.part.get(key)
    }

    pub(crate) fn contains_key(&self, key: impl AsRef<[u8]>) -> fjall::Result<bool> {
        self.part.contains_key(key)
    }

    pub(crate) fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> fjall::Result<()> {
        self.part.insert(key.as_ref(), value.as_ref())
    }

    pub(crate) fn remove(&self, key: impl AsRef<[u8]>) -> fjall::Result<()> {
        self.part.remove(key.as_ref())
    }

    /// Every key in key order, as of the call.
    pub(crate) fn keys(&self) -> impl DoubleEndedIterator<Item = fjall::Result<Bytes>> + 'static {
        self.part.keys()
    }

    /// Every entry in key order, as of the call: later writes are not seen.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = Entry> + 'static {
        self.part.iter()
    }

    pub(crate) fn scan_prefix(
        &self,
        prefix: impl AsRef<[u8]>,
    ) -> impl DoubleEndedIterator<Item = Entry> + 'static {
        self.part.prefix(prefix.as_ref().to_vec())
    }

    pub(crate) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = Entry> + 'static {
        let owned = |b: std::ops::Bound<&K>| b.map(|k| k.as_ref().to_vec());
        let bounds = (owned(range.start_bound()), owned(range.end_bound()));
        self.part.range::<Vec<u8>, _>(bounds)
    }

    /// The number of entries: a full scan, as in sled.
    pub(crate) fn len(&self) -> fjall::Result<usize> {
        self.part.len()
    }

    pub(crate) fn is_empty(&self) -> fjall::Result<bool> {
        self.part.is_empty()
    }

    pub(crate) fn last(&self) -> fjall::Result<Option<(Bytes, Bytes)>> {
        self.part.last_key_value()
    }

    /// Removes every entry, in one batch.
    pub(crate) fn clear(&self, db: &Db) -> fjall::Result<()> {
        let mut batch = db.batch();
        for entry in self.part.keys() {
            batch.0.remove(&self.part, entry?);
        }
        batch.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crash of CI at d4ab3b3 (`kill_9_at_random_points_loses_and_doubles_nothing`): a
    /// first start killed while fjall created its trees left one with a manifest and no
    /// levels file, and every later start failed with "No such file or directory".
    #[test]
    fn a_kill_while_a_tree_is_created_leaves_a_ledger_that_opens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path(), 1 << 20).unwrap();
            db.open_tree("kept").unwrap().insert("k", "v").unwrap();
            db.open_tree("half").unwrap();
            db.open_tree("empty_manifest").unwrap();
            db.flush().unwrap();
        }
        let trees = dir.path().join("partitions");
        std::fs::remove_file(trees.join("half/levels")).unwrap();
        // Killed inside the manifest's own write: the file is there, empty.
        std::fs::remove_file(trees.join("empty_manifest/levels")).unwrap();
        std::fs::write(trees.join("empty_manifest/manifest"), b"").unwrap();

        let db = Db::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            db.open_tree("kept").unwrap().get("k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        let half = db.open_tree("half").unwrap();
        half.insert("a", "b").unwrap();
        assert_eq!(half.len().unwrap(), 1);
        assert!(db.open_tree("empty_manifest").unwrap().is_empty().unwrap());
    }

    #[test]
    fn a_tree_with_segments_and_no_levels_file_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("partitions/t");
        std::fs::create_dir_all(tree.join("segments")).unwrap();
        std::fs::write(tree.join("manifest"), b"x").unwrap();
        std::fs::write(tree.join("segments/0"), b"data").unwrap();
        assert!(remove_half_created_trees(dir.path()).unwrap().is_empty());
        assert!(tree.join("segments/0").exists());
    }
}
