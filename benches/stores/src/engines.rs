//! The three engines, each committing a batch the way a ledger on it would have to: one atomic
//! write over every tree, durable (fsynced) before `commit` returns, so before the batch's
//! Kafka offsets could be committed. Each gets a 64 MiB cache, the ledger's sled cache.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

use crate::workload::Workload;

const CACHE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sled,
    Fjall,
    Redb,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sled => "sled",
            Engine::Fjall => "fjall",
            Engine::Redb => "redb",
        }
    }

    pub fn parse(name: &str) -> anyhow::Result<Engine> {
        [Engine::Sled, Engine::Fjall, Engine::Redb]
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| anyhow!("unknown engine {name:?} (sled, fjall or redb)"))
    }

    /// The store in `dir`, created when missing, with one tree per tree of `w`.
    pub fn open(self, dir: &Path, w: &Workload) -> anyhow::Result<Box<dyn Store>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let names = w.trees.iter().map(|t| t.name.clone());
        Ok(match self {
            Engine::Sled => {
                let db = sled::Config::new()
                    .path(dir)
                    .cache_capacity(CACHE_BYTES)
                    .flush_every_ms(None)
                    .open()?;
                let trees = names.map(|n| db.open_tree(n)).collect::<Result<_, _>>()?;
                Box::new(Sled {
                    db,
                    trees,
                    dir: dir.to_path_buf(),
                })
            }
            Engine::Fjall => {
                let keyspace = fjall::Config::new(dir).cache_size(CACHE_BYTES).open()?;
                let partitions = names
                    .map(|n| keyspace.open_partition(&n, Default::default()))
                    .collect::<Result<_, _>>()?;
                Box::new(Fjall {
                    keyspace,
                    partitions,
                })
            }
            Engine::Redb => {
                let db = redb::Database::builder()
                    .set_cache_size(CACHE_BYTES as usize)
                    .create(dir.join("ledger.redb"))?;
                Box::new(Redb {
                    db,
                    names: names.collect(),
                })
            }
        })
    }
}

pub trait Store {
    /// Writes batch `b` of `w` atomically and makes it durable; returns the time of the call
    /// that made it durable (sled's flush and fsyncs, fjall's persist, redb's commit).
    fn commit(&mut self, w: &Workload, b: usize) -> anyhow::Result<Duration>;
    /// What the engine says of its own disk use, per event, for the report.
    fn detail(&self, events: u64) -> anyhow::Result<String>;
}

/// As the ledger does it (src/ledger/batch.rs and store.rs): a transaction over every tree,
/// then `flush`, then an fsync of every file and directory, since sled's flush uses
/// sync_file_range, which persists neither file metadata nor the disk cache.
struct Sled {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    dir: PathBuf,
}

impl Store for Sled {
    fn commit(&mut self, w: &Workload, b: usize) -> anyhow::Result<Duration> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;
        let trees: Vec<&sled::Tree> = self.trees.iter().collect();
        trees[..]
            .transaction(|t| {
                for (i, tree) in t.iter().enumerate() {
                    for (k, v) in w.rows(i, b) {
                        tree.insert(k.as_slice(), v.as_slice())?;
                    }
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| anyhow!("sled transaction: {e:?}"))?;
        let t = Instant::now();
        self.db.flush()?;
        sync_tree(&self.dir)?;
        Ok(t.elapsed())
    }

    fn detail(&self, events: u64) -> anyhow::Result<String> {
        Ok(format!(
            "size_on_disk {} bytes per event",
            self.db.size_on_disk()? / events
        ))
    }
}

fn sync_tree(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            match File::open(entry.path()) {
                Ok(f) => f.sync_all()?,
                // sled may delete an old snapshot between the listing and the open.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// One batch across the partitions (atomic in fjall's journal), then the journal fsynced.
struct Fjall {
    keyspace: fjall::Keyspace,
    partitions: Vec<fjall::PartitionHandle>,
}

impl Store for Fjall {
    fn commit(&mut self, w: &Workload, b: usize) -> anyhow::Result<Duration> {
        let mut batch = self.keyspace.batch();
        for (i, partition) in self.partitions.iter().enumerate() {
            for (k, v) in w.rows(i, b) {
                batch.insert(partition, k.as_slice(), v.as_slice());
            }
        }
        batch.commit()?;
        let t = Instant::now();
        self.keyspace.persist(fjall::PersistMode::SyncAll)?;
        Ok(t.elapsed())
    }

    /// The journal holds what the memtables have not yet flushed to sorted tables (its files
    /// are sized up front, so this counts their length, not their blocks); the tables are
    /// per partition, compressed.
    fn detail(&self, events: u64) -> anyhow::Result<String> {
        let tables: u64 = self.partitions.iter().map(|p| p.disk_space()).sum();
        let mut out = format!(
            "bytes per event: journal files {}, sorted tables {} (",
            self.keyspace.journal_disk_space() / events,
            tables / events
        );
        for (i, p) in self.partitions.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            out.push_str(&format!("{sep}{} {}", p.name, p.disk_space() / events));
        }
        out.push(')');
        Ok(out)
    }
}

/// One write transaction over every table, committed with redb's default durability
/// (`Immediate`: fsynced before `commit` returns).
struct Redb {
    db: redb::Database,
    names: Vec<String>,
}

impl Store for Redb {
    fn commit(&mut self, w: &Workload, b: usize) -> anyhow::Result<Duration> {
        let tx = self.db.begin_write()?;
        for (i, name) in self.names.iter().enumerate() {
            let rows = w.rows(i, b);
            if rows.is_empty() {
                continue;
            }
            let mut table = tx.open_table(redb::TableDefinition::<&[u8], &[u8]>::new(name))?;
            for (k, v) in rows {
                table.insert(k.as_slice(), v.as_slice())?;
            }
        }
        let t = Instant::now();
        tx.commit()?;
        Ok(t.elapsed())
    }

    /// redb's own split of its pages: the rows, the branch pages and tables of free pages,
    /// and the space inside pages that holds nothing.
    fn detail(&self, events: u64) -> anyhow::Result<String> {
        let tx = self.db.begin_write()?;
        let s = tx.stats()?;
        let out = format!(
            "bytes per event: stored {}, metadata {}, fragmented {}; pages allocated {}",
            s.stored_bytes() / events,
            s.metadata_bytes() / events,
            s.fragmented_bytes() / events,
            s.allocated_pages() * s.page_size() as u64 / events
        );
        tx.abort()?;
        Ok(out)
    }
}
