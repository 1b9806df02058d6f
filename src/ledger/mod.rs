//! The ledger: the only code that touches the store (fjall, through `kv`). Trees (see DESIGN.md "Storage"):
//!
//! `id` is the keyed hash of an identifier and `mid` that of a message id (HMAC-SHA256 under
//! the tenant's secret; a WhatsApp message id carries its sender's number): no key holds an
//! identifier or a message id, and no value but a sealed field's ciphertext (`seal.rs`).
//!
//! | tree         | key                                   | value                     |
//! |--------------|---------------------------------------|---------------------------|
//! | `events`     | partition (u32 BE) ++ seq (u64 BE)    | stored event JSON, personal fields sealed |
//! | `by_contact` | tenant \0 id \0 partition ++ seq      | empty                     |
//! | `dedupe`     | tenant \0 mid \0 kind                 | event id or empty         |
//! | `consent`    | tenant \0 id \0 purpose               | `PurposeState` JSON       |
//! | `links`      | tenant \0 id \0 other id              | `IdentityLinked` event key|
//! | `replies`    | partition (u32 BE) ++ seq (u64 BE)    | `OutboundMessage` JSON, `to` and `in_reply_to` sealed |
//! | `meta`       | `head/P`, `reply_head/P`, `cursor/…`, `notice/P/S` | chain heads, relay cursors, notice keys waiting |
//! | `feed`       | feed position (u64 BE), from 1        | event key                 |
//! | `by_tenant`  | tenant \0 feed position (u64 BE)      | event key                 |
//! | `signed_heads` | partition (u32 BE) ++ seq (u64 BE)  | `SignedHead` JSON         |
//! | `sent`       | tenant \0 mid                         | `SentRef` JSON (recipient: id, message id: mid, in hex) |
//! | `sent_by_contact` | tenant \0 id \0 sent_at ms (i64 BE, sign flipped) \0 mid | `SentRef` JSON |
//! | `delivery`   | tenant \0 mid                         | `DeliveryRecord` JSON     |
//! | `campaign_signals` | tenant \0 campaign \0 kind \0 mid | occurred_at JSON |
//! | `keys`       | `index`, `d` tenant \0 id kind, `n` tenant \0 event id | wrapped keys (`keyring.rs`) |
//! | `suppressed` | tenant \0 id                          | `Suppression` JSON (`erase.rs`) |
//!
//! `sent` to `campaign_signals` are campaign analytics: derived data, not proof. `verify` and
//! `rebuild` concern the event chains and the consent view only; losing these trees loses
//! statistics, never a consent decision. Attribution reads them before an event is appended, so
//! what they held at that moment is frozen into the (hashed) event and later changes never
//! rewrite history.
//!
//! `dedupe` remembers only the messages that acted (an event or a reply): a redelivered chat
//! message costs nothing durable, and a redelivered STOP finds its id.
//!
//! The log is the outbox: relays follow `events` and `replies` from a cursor per sink and
//! partition ([`log`]), so nothing is written, read back and deleted to be published.
//!
//! Every write goes through one multi-tree transaction per batch ([`Staged::commit`]), followed
//! by a flush and an fsync of the database files, so a batch is either wholly durable or absent.
//! Input offsets are not stored here: the consumer group decides where consumption resumes, so
//! a partition's next owner needs no local copy of them.

mod batch;
mod erase;
mod keyring;
mod known;
mod kv;
mod legacy;
pub mod log;
pub mod migrate;
mod migrate_v4;
mod migrate_v5;
mod person;
pub mod replica;
mod retention;
mod seal;
mod sent;
mod signed;
mod store;
mod verify;

#[doc(hidden)]
pub mod forensics;

pub use batch::{Committed, Staged};
pub use erase::{Erased, Suppression};
pub use log::{LogEntry, Sink, Stream};
pub use person::PersonView;
pub use retention::Expired;
pub use signed::SIGN_EVERY;
pub use verify::{RebuildReport, VerifyReport};

use std::path::{Path, PathBuf};

use crate::domain::consent::{ContactConsent, PurposeState};
use crate::domain::contact::Contact;
use crate::domain::event::{ConsentEvent, Purpose};
use crate::domain::tenant::TenantId;
use crate::rgpd::MasterKey;

/// Version of the on-disk layout. A ledger of another version is refused at open, never half
/// read; `consent-ledger migrate` brings an older one up to this version. Every change of a
/// tree's layout or of a stored format bumps it.
///
/// - 1: an `outbox` tree, every message id in `dedupe`, input offsets in `meta`.
/// - 2: the log is the outbox (reply log and relay cursors), dedupe only for messages that
///   acted, no input offsets.
/// - 3: `IdentityLinked` events and the `links` tree; the consent view folded with the
///   opt-out winning ties (a view of version 2 may differ where two events had one time);
///   the `by_tenant` index, so a tenant's reads cost in proportion to its own events.
/// - 4: personal fields sealed (events of format 3, replies' recipients) under data keys in
///   the `keys` tree; every index that held an identifier keyed by its HMAC instead; the
///   `suppressed` tree.
/// - 5: message ids sealed in events and replies; `dedupe`, `sent`, `sent_by_contact`,
///   `delivery` and `campaign_signals` keyed by the message id's HMAC, and sent records hold
///   that HMAC instead of the id (a WhatsApp message id carries its sender's number).
/// - 6: the same trees and rows in fjall instead of sled (layouts 1 to 5 are sled databases,
///   read only by `migrate`, through `legacy`).
pub const SCHEMA_VERSION: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("storage error: {0}")]
    Storage(#[from] fjall::Error),
    #[error("storage error in a ledger of an older layout (sled): {0}")]
    Legacy(#[from] sled::Error),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("corrupt ledger record in {tree}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
    #[error(
        "ledger at {path} has storage layout version {found}, this build reads version {SCHEMA_VERSION}{hint}"
    )]
    Version {
        path: String,
        found: String,
        /// What to do about it, when something can be done.
        hint: &'static str,
    },
    #[error("migration of {path} failed: {detail}")]
    Migrate { path: String, detail: String },
    #[error("cannot open the ledger at {path}: {detail}")]
    Open { path: String, detail: String },
    #[error(
        "the master key does not open the ledger at {path}: it is not the key this ledger was written with (the key-check value differs); nothing was written. Set CONSENT_LEDGER_MASTER_KEY or [rgpd] master_key_file to this ledger's key"
    )]
    WrongMasterKey { path: String },
    #[error("the ledger was opened without its master key (only `migrate` does that)")]
    Locked,
    #[error(
        "the index secret on the key topic does not unwrap under this instance's master key: every instance of a deployment needs the same master key (CONSENT_LEDGER_MASTER_KEY or [rgpd] master_key_file)"
    )]
    ForeignIndexSecret,
}

pub type Result<T> = std::result::Result<T, LedgerError>;

/// An open ledger. It holds an exclusive lock on the directory, so one process at a time.
pub struct Ledger {
    /// The scan that fills `known`, stopped and joined when the ledger is dropped. First, so
    /// that it is dropped first: its thread holds clones of the trees, and the last handle
    /// must go with `db` on the dropping thread, for the directory's lock (held by every
    /// handle, see `kv`) to be free for a reopen as soon as the ledger is gone.
    loading: known::Loading,
    path: PathBuf,
    db: kv::Db,
    events: kv::Tree,
    by_contact: kv::Tree,
    dedupe: kv::Tree,
    consent: kv::Tree,
    links: kv::Tree,
    replies: kv::Tree,
    meta: kv::Tree,
    feed: kv::Tree,
    by_tenant: kv::Tree,
    signed_heads: kv::Tree,
    sent: kv::Tree,
    sent_by_contact: kv::Tree,
    delivery: kv::Tree,
    campaign_signals: kv::Tree,
    keys: kv::Tree,
    suppressed: kv::Tree,
    /// Which identifiers the view may hold anything about (see `known`).
    known: std::sync::Arc<known::Known>,
    /// The master key and the index secret; `None` only for `migrate`'s raw open.
    keyring: Option<keyring::Keyring>,
    /// One batch at a time: chain heads and the consent view are read, then written, by the
    /// batch, so two concurrent writers (the Kafka consumer and the HTTP API) must queue.
    writer: std::sync::Mutex<()>,
    /// Keys read by the scans whose cost a caller controls (exports, feeds, reports): the
    /// metric `consent_ledger_ledger_keys_read_total` once the process shares its counter.
    keys_read: std::sync::OnceLock<prometheus_client::metrics::counter::Counter>,
    /// The key chain heads are signed with (`sign_with`).
    signer: std::sync::OnceLock<crate::proof::Signer>,
    /// Bumped after every durable commit, with the last feed position: long-poll readers wait
    /// on it instead of polling storage.
    committed: tokio::sync::watch::Sender<u64>,
}

/// The last event of a partition's chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

impl Default for ChainHead {
    fn default() -> Self {
        ChainHead {
            seq: 0,
            hash: crate::domain::event::GENESIS_HASH.to_string(),
        }
    }
}

impl Ledger {
    /// Opens the ledger in `dir` with its master key: a wrong key is refused before anything
    /// is written ([`LedgerError::WrongMasterKey`]).
    pub fn open(dir: &Path, master: MasterKey) -> Result<Ledger> {
        store::open(dir, master)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The consent of one identifier, every purpose: the person's consent when the
    /// identifier is linked to others (DESIGN.md invariant 6).
    pub fn consent(&self, tenant: &TenantId, contact: &Contact) -> Result<ContactConsent> {
        Ok(self.person(tenant, contact)?.consent)
    }

    /// The fold of this identifier's own events: the stored view, which `verify` checks
    /// against the log and the person's consent is computed from.
    pub fn own_consent(&self, tenant: &TenantId, contact: &Contact) -> Result<ContactConsent> {
        self.own_consent_of(tenant, &self.digest(tenant, contact)?)
    }

    /// [`Self::own_consent`] of the identifier whose keyed hash is `id`: its purposes are
    /// keys side by side, read in one range scan rather than one lookup each.
    pub(crate) fn own_consent_of(
        &self,
        tenant: &TenantId,
        id: &[u8; 32],
    ) -> Result<ContactConsent> {
        let mut c = ContactConsent::default();
        if !self.known.may_know(id) {
            return Ok(c);
        }
        let prefix = keys::contact_prefix(tenant, id);
        for entry in self.consent.scan_prefix(&prefix) {
            let (key, bytes) = entry?;
            let name = &key[prefix.len()..];
            if let Some(purpose) = Purpose::ALL
                .into_iter()
                .find(|p| p.as_str().as_bytes() == name)
            {
                *c.get_mut(purpose) = decode::<PurposeState>("consent", &bytes)?;
            }
        }
        Ok(c)
    }

    pub fn is_seen(&self, tenant: &TenantId, message_id: &str, kind: &str) -> Result<bool> {
        let mid = self.message_digest(tenant, message_id)?;
        Ok(self.dedupe.contains_key(keys::dedupe(tenant, &mid, kind))?)
    }

    pub fn chain_head(&self, partition: u32) -> Result<ChainHead> {
        match self.meta.get(keys::head(partition))? {
            Some(bytes) => decode("meta", &bytes),
            None => Ok(ChainHead::default()),
        }
    }

    /// Every event of one contact, opened, oldest first in event time (ties by append order).
    pub fn history(&self, tenant: &TenantId, contact: &Contact) -> Result<Vec<ConsentEvent>> {
        self.history_of(tenant, &self.digest(tenant, contact)?)
    }

    /// Every event as stored (personal fields sealed: see [`Ledger::open_event`]), partition
    /// by partition, in chain order.
    pub fn events(&self) -> impl Iterator<Item = Result<ConsentEvent>> + '_ {
        self.events.iter().map(|entry| {
            self.count_reads(1);
            let (_, bytes) = entry?;
            decode::<ConsentEvent>("events", &bytes)
        })
    }

    /// One tenant's events as stored after feed position `after`, in append order, with
    /// their positions: reads the tenant's index entries and events only, never another
    /// tenant's.
    pub fn tenant_events(
        &self,
        tenant: &TenantId,
        after: u64,
    ) -> impl Iterator<Item = Result<(u64, ConsentEvent)>> + '_ {
        let prefix = keys::tenant_prefix(tenant);
        let mut start = prefix.clone();
        start.extend_from_slice(&after.saturating_add(1).to_be_bytes());
        let mut end = prefix.clone();
        end.push(1);
        self.by_tenant.range(start..end).map(move |entry| {
            self.count_reads(2);
            let (key, event_key) = entry?;
            let position = u64::from_be_bytes(key[prefix.len()..].try_into().map_err(|_| {
                LedgerError::Corrupt {
                    tree: "by_tenant",
                    detail: "malformed key".into(),
                }
            })?);
            let bytes = self
                .events
                .get(&event_key)?
                .ok_or_else(|| LedgerError::Corrupt {
                    tree: "by_tenant",
                    detail: "index points at a missing event".into(),
                })?;
            Ok((position, decode("events", &bytes)?))
        })
    }

    /// Counts reads into `counter` from now on (the process's metric).
    pub fn count_reads_in(&self, counter: prometheus_client::metrics::counter::Counter) {
        let _ = self.keys_read.set(counter);
    }

    pub(crate) fn count_reads(&self, keys: u64) {
        if let Some(c) = self.keys_read.get() {
            c.inc_by(keys);
        }
    }

    /// The number of events stored: a scan of the log.
    pub fn event_count(&self) -> Result<usize> {
        Ok(self.events.len()?)
    }

    /// Starts a batch: reads see the ledger plus what the batch staged so far. Blocks while
    /// another batch is open; the batch holds the writer lock until it is committed or dropped.
    pub fn stage(&self) -> Staged<'_> {
        let guard = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Staged::new(self, guard)
    }

    /// A receiver that changes after each commit; its value is the last feed position.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// The last feed position (0 when the ledger is empty).
    pub fn feed_head(&self) -> Result<u64> {
        Ok(match self.feed.last()? {
            Some((k, _)) => u64::from_be_bytes(k.as_ref().try_into().unwrap_or_default()),
            None => 0,
        })
    }

    /// Events as stored appended after feed position `after`, in append order across all
    /// partitions, with their feed positions: the cursor of consumers that do not read Kafka.
    pub fn feed_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, ConsentEvent)>> {
        let mut out = Vec::new();
        for entry in self.feed.range((after + 1).to_be_bytes()..) {
            if out.len() >= limit {
                break;
            }
            self.count_reads(2);
            let (k, event_key) = entry?;
            let position = u64::from_be_bytes(k.as_ref().try_into().unwrap_or_default());
            let bytes = self
                .events
                .get(&event_key)?
                .ok_or_else(|| LedgerError::Corrupt {
                    tree: "feed",
                    detail: "feed points at a missing event".into(),
                })?;
            out.push((position, decode("events", &bytes)?));
        }
        Ok(out)
    }
}

fn decode<T: serde::de::DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| LedgerError::Corrupt {
        tree,
        detail: e.to_string(),
    })
}

/// Key layouts, in one place so that every reader and writer agrees.
pub(crate) mod keys {
    use crate::domain::event::Purpose;
    use crate::domain::tenant::TenantId;

    pub fn event(partition: u32, seq: u64) -> [u8; 12] {
        let mut k = [0u8; 12];
        k[..4].copy_from_slice(&partition.to_be_bytes());
        k[4..].copy_from_slice(&seq.to_be_bytes());
        k
    }

    /// `tenant \0`: the prefix of the tenant's entries in `by_tenant`. A tenant id holds no
    /// NUL, so one tenant's prefix is never another's.
    pub fn tenant_prefix(tenant: &TenantId) -> Vec<u8> {
        [tenant.as_str().as_bytes(), b"\0"].concat()
    }

    pub fn by_tenant(tenant: &TenantId, position: u64) -> Vec<u8> {
        let mut k = tenant_prefix(tenant);
        k.extend_from_slice(&position.to_be_bytes());
        k
    }

    /// `tenant \0 id \0`, where `id` is the keyed hash of an identifier
    /// ([`crate::rgpd::TenantSecret::digest`]): index keys never hold the identifier itself.
    pub fn contact_prefix(tenant: &TenantId, id: &[u8]) -> Vec<u8> {
        [tenant.as_str().as_bytes(), b"\0", id, b"\0"].concat()
    }

    pub fn by_contact(tenant: &TenantId, id: &[u8], partition: u32, seq: u64) -> Vec<u8> {
        let mut k = contact_prefix(tenant, id);
        k.extend_from_slice(&event(partition, seq));
        k
    }

    /// `mid`: the message id's keyed hash ([`super::Ledger::message_digest`]).
    pub fn dedupe(tenant: &TenantId, mid: &[u8], kind: &str) -> Vec<u8> {
        [
            tenant.as_str().as_bytes(),
            b"\0",
            mid,
            b"\0",
            kind.as_bytes(),
        ]
        .concat()
    }

    pub fn link(tenant: &TenantId, id: &[u8], other: &[u8]) -> Vec<u8> {
        let mut k = contact_prefix(tenant, id);
        k.extend_from_slice(other);
        k
    }

    pub fn consent(tenant: &TenantId, id: &[u8], purpose: Purpose) -> Vec<u8> {
        let mut k = contact_prefix(tenant, id);
        k.extend_from_slice(purpose.as_str().as_bytes());
        k
    }

    pub fn head(partition: u32) -> Vec<u8> {
        format!("head/{partition:010}").into_bytes()
    }

    pub fn reply_head(partition: u32) -> Vec<u8> {
        format!("reply_head/{partition:010}").into_bytes()
    }

    pub fn cursor(sink: &str, stream: &str, partition: u32) -> Vec<u8> {
        format!("cursor/{sink}/{stream}/{partition:010}").into_bytes()
    }

    pub const SCHEMA: &[u8] = b"schema_version";
}
