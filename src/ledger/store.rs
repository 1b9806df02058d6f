//! Opening the database and making writes power-loss durable.

use std::path::Path;

use super::keyring::Keyring;
use super::kv::{Db, OpenError};
use super::{keys, Ledger, LedgerError, Result, SCHEMA_VERSION};
use crate::rgpd::MasterKey;

/// Opens (or creates) the database in `dir`, with a clear error when another process holds
/// it, and a ledger written by an older build (a sled database, layouts 1 to 5) refused with
/// the way to convert it, before anything is written to it.
pub(super) fn open_db(dir: &Path) -> Result<Db> {
    if let Some(found) = super::legacy::version_in(dir)? {
        return Err(older(dir, found.to_string()));
    }
    Db::open(dir, cache_bytes()).map_err(|e: OpenError| LedgerError::Open {
        path: dir.display().to_string(),
        detail: e.to_string(),
    })
}

/// The store's block cache and write buffer, in bytes each. A bound makes the service's memory
/// flat once the cache is warm (sled's default of 1 GiB let a soak run grow with the data).
/// `CONSENT_LEDGER_CACHE_MB` overrides it.
pub const DEFAULT_CACHE_MB: u64 = 64;

fn cache_bytes() -> u64 {
    std::env::var("CONSENT_LEDGER_CACHE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|mb| *mb > 0)
        .unwrap_or(DEFAULT_CACHE_MB)
        * 1024
        * 1024
}

pub(super) fn open(dir: &Path, master: MasterKey) -> Result<Ledger> {
    super::migrate::refuse_if_interrupted(dir)?;
    let db = open_db(dir)?;
    check_version(&db, dir)?;
    let keyring = super::keyring::unlock(&db, dir, master)?;
    let mut ledger = with_trees(dir, db, Some(keyring))?;
    (ledger.known, ledger.loading) = super::known::Known::load(vec![
        ledger.consent.clone(),
        ledger.links.clone(),
        ledger.suppressed.clone(),
    ]);
    Ok(ledger)
}

/// Opens a ledger whatever its version, with its keys: only `migrate` does, on its own copy.
pub(super) fn open_unchecked(dir: &Path, master: MasterKey) -> Result<Ledger> {
    let db = open_db(dir)?;
    let keyring = super::keyring::unlock(&db, dir, master)?;
    with_trees(dir, db, Some(keyring))
}

/// Opens a ledger whatever its version and without its keys: only `migrate` does, on its
/// own copy.
pub(super) fn open_any_version(dir: &Path) -> Result<Ledger> {
    with_trees(dir, open_db(dir)?, None)
}

fn with_trees(dir: &Path, db: Db, keyring: Option<Keyring>) -> Result<Ledger> {
    let ledger = Ledger {
        loading: Default::default(),
        path: dir.to_path_buf(),
        events: db.open_tree("events")?,
        by_contact: db.open_tree("by_contact")?,
        dedupe: db.open_tree("dedupe")?,
        consent: db.open_tree("consent")?,
        links: db.open_tree("links")?,
        replies: db.open_tree("replies")?,
        meta: db.open_tree("meta")?,
        feed: db.open_tree("feed")?,
        by_tenant: db.open_tree("by_tenant")?,
        signed_heads: db.open_tree("signed_heads")?,
        sent: db.open_tree("sent")?,
        sent_by_contact: db.open_tree("sent_by_contact")?,
        delivery: db.open_tree("delivery")?,
        campaign_signals: db.open_tree("campaign_signals")?,
        keys: db.open_tree("keys")?,
        suppressed: db.open_tree("suppressed")?,
        keyring,
        // Never filled, so "maybe" for every identifier, unless `open` loads it: `migrate`
        // writes the trees without it.
        known: Default::default(),
        writer: std::sync::Mutex::new(()),
        keys_read: std::sync::OnceLock::new(),
        signer: std::sync::OnceLock::new(),
        committed: tokio::sync::watch::Sender::new(0),
        db,
    };
    ledger.committed.send_replace(ledger.feed_head()?);
    Ok(ledger)
}

/// The layout version of an open database, written on first open. Checked before any tree is
/// opened, so that a ledger of another version is refused without a byte written to it.
fn check_version(db: &Db, dir: &Path) -> Result<()> {
    let meta = db.open_tree("meta")?;
    match meta.get(keys::SCHEMA)? {
        None => {
            meta.insert(keys::SCHEMA, SCHEMA_VERSION.to_string().as_bytes())?;
            Ok(db.flush()?)
        }
        Some(v) if v.as_ref() == SCHEMA_VERSION.to_string().as_bytes() => Ok(()),
        Some(v) => Err(older(dir, String::from_utf8_lossy(&v).into_owned())),
    }
}

/// The refusal of a ledger of layout `found`, with what to do about it.
fn older(dir: &Path, found: String) -> LedgerError {
    let older = found.parse::<u32>().is_ok_and(|n| n < SCHEMA_VERSION);
    LedgerError::Version {
        path: dir.display().to_string(),
        found,
        hint: if older {
            "; run `consent-ledger migrate` to convert it (the old layout is kept as a backup)"
        } else {
            "; it was written by a newer consent-ledger"
        },
    }
}

/// The version a database directory was written with, without opening it for writing.
pub(super) fn version_of(db: &Db) -> Result<Option<u32>> {
    let meta = db.open_tree("meta")?;
    Ok(meta
        .get(keys::SCHEMA)?
        .and_then(|v| String::from_utf8_lossy(&v).parse().ok()))
}

impl Ledger {
    /// Makes every write so far durable: the journal, which holds every tree's writes,
    /// written and fsynced (fjall fsyncs a new journal's directory when it creates one).
    pub fn sync(&self) -> Result<()> {
        Ok(self.db.flush()?)
    }

    /// Before a clean exit of a command that wrote: the trees' memtables written out, so that
    /// the next open starts at once instead of replaying the journal. Durability does not
    /// depend on it; a kill before it only makes that next open slower.
    pub fn settle(&self) -> Result<()> {
        Ok(self.db.settle()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a ledger closed and opened again in one process was refused as "locked
    /// by another consent-ledger process" while sled (the store then) had not yet let go of its lock (the
    /// master-key rotation test, under load). The lock now goes with the last handle, on the
    /// thread that drops it: a reopen right after a close always finds it free.
    #[test]
    fn a_ledger_this_process_closed_opens_again_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let key = [3u8; 32];
        for _ in 0..20 {
            let ledger = Ledger::open(&path, MasterKey::from_bytes(key)).unwrap();
            drop(ledger);
        }
        assert!(Ledger::open(&path, MasterKey::from_bytes(key)).is_ok());
    }

    /// Two opens of one directory would interleave two journals: the second is refused, in
    /// words an operator understands, until every handle of the first is gone.
    #[test]
    fn a_ledger_open_elsewhere_is_refused_until_its_last_handle_goes() {
        let dir = tempfile::tempdir().unwrap();
        let key = [4u8; 32];
        let ledger = Ledger::open(dir.path(), MasterKey::from_bytes(key)).unwrap();
        let lingering = ledger.events.clone();
        drop(ledger);
        match Ledger::open(dir.path(), MasterKey::from_bytes(key)) {
            Err(LedgerError::Open { detail, .. }) => {
                assert!(detail.contains("locked by another"), "{detail}")
            }
            other => panic!("a held lock must be an error: {:?}", other.err()),
        }
        drop(lingering);
        assert!(Ledger::open(dir.path(), MasterKey::from_bytes(key)).is_ok());
    }
}
