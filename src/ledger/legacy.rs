//! Ledgers of layouts 1 to 5 are sled databases. `migrate` reads them here, once, into the
//! current store; nothing else opens them, and opening one as a ledger is refused with the
//! way to convert it (the old directory is kept as the migration's backup).

use std::path::Path;

use super::{keys, kv, LedgerError, Result};

/// A sled database's own files: a directory holding both is one, whatever else it holds.
fn is_sled(dir: &Path) -> bool {
    dir.join("conf").is_file() && dir.join("db").is_file()
}

/// Opens the sled database in `dir`, with a clear error when another process holds it.
fn open(dir: &Path) -> Result<sled::Db> {
    sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .open()
        .map_err(|e| LedgerError::Open {
            path: dir.display().to_string(),
            detail: match &e {
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock") =>
                {
                    "it is locked by another consent-ledger process".into()
                }
                _ => e.to_string(),
            },
        })
}

/// The sled database in `dir`, opened; `None` when `dir` is not one. `migrate` keeps the one
/// handle for every step that reads it: sled lets go of its lock from a background thread,
/// so a second open right after the first could find it still held.
pub(super) fn open_if_sled(dir: &Path) -> Result<Option<sled::Db>> {
    if !is_sled(dir) {
        return Ok(None);
    }
    open(dir).map(Some)
}

/// The layout version a sled ledger says it has; "unknown" when it says none.
pub(super) fn version(db: &sled::Db) -> Result<String> {
    Ok(match db.open_tree("meta")?.get(keys::SCHEMA)? {
        Some(v) => String::from_utf8_lossy(&v).into_owned(),
        None => "unknown".into(),
    })
}

/// The layout version of the sled ledger in `dir`; `None` when `dir` is not a sled database.
pub(super) fn version_in(dir: &Path) -> Result<Option<String>> {
    open_if_sled(dir)?.map(|db| version(&db)).transpose()
}

/// Copies the sled tree `name` into the tree of the same name in `new`, in batches; returns
/// the number of entries.
pub(super) fn copy_tree(old: &sled::Db, new: &kv::Db, name: &str) -> Result<u64> {
    let (src, dst) = (old.open_tree(name)?, new.open_tree(name)?);
    new.fill(&dst, src.iter())
}

/// The names of the trees a sled database holds, sled's own default tree aside.
pub(super) fn tree_names(old: &sled::Db) -> Vec<String> {
    old.tree_names()
        .into_iter()
        .map(|n| String::from_utf8_lossy(&n).into_owned())
        .filter(|n| n != "__sled__default")
        .collect()
}
