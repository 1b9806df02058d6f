//! The `keys` tree: the index secret and every data key, each wrapped by the master key, and
//! the master key's key-check value in `meta`. Nothing here is ever written in clear.
//!
//! | key                                      | value                          |
//! |------------------------------------------|--------------------------------|
//! | `index`                                  | wrapped index secret           |
//! | `d` tenant \0 HMAC(identifier) kind byte | wrapped data key (`i`, `t`)    |
//! | `n` tenant \0 event id                   | wrapped notice key of an `Erased` event |
//! | data-key slot `#` key id                 | another data key of the same slot        |
//!
//! A slot holds one data key, except under scale-out when two instances made a key for one
//! new identifier at once (its first records reached both through different inbound
//! partitions): each sealed events under its own, the key topic carries both (its records
//! are named by slot and key id, [`DataKey::id`]), and every instance keeps the first it
//! took in the slot and the other under the slot and its id. Sealing uses the slot's key;
//! opening tries each of its keys (the AEAD tag tells which one sealed a field); destroying
//! a slot destroys them all.
//!
//! A data key belongs to one identifier, not to a person: links may arrive after the events
//! they join, and an event's fields stay under the key they were written with. Erasing a
//! person destroys the keys of every identifier linked to the one asked about, which is the
//! per-person key of DESIGN.md realised as per-identifier keys destroyed together.

use std::path::Path;

use super::{Ledger, LedgerError, Result};
use crate::domain::contact::Contact;
use crate::domain::tenant::TenantId;
use crate::rgpd::{DataKey, IndexSecret, KeyKind, MasterKey, TenantSecret};

/// `meta` key of the master key's key-check value.
const KEY_CHECK: &[u8] = b"key_check";
/// `keys` key of the wrapped index secret.
const INDEX: &[u8] = b"index";

/// The unlocked keys of an open ledger.
pub(super) struct Keyring {
    master: MasterKey,
    /// Replaced once at most, on a new instance of scale-out that takes the deployment's
    /// (`adopt_index_secret`).
    index: std::sync::RwLock<IndexSecret>,
    /// Tenant secrets derived so far: one HKDF per tenant, not per lookup.
    /// Shared, not copied: every keyed hash reads one, from every thread of a check.
    secrets: std::sync::RwLock<std::collections::HashMap<TenantId, std::sync::Arc<TenantSecret>>>,
}

impl Keyring {
    fn new(master: MasterKey, index: IndexSecret) -> Self {
        Keyring {
            master,
            index: std::sync::RwLock::new(index),
            secrets: Default::default(),
        }
    }
}

/// The `keys` slot of the notice key of the `Erased` event `event_id`.
pub(super) fn notice_slot(tenant: &TenantId, event_id: &uuid::Uuid) -> Vec<u8> {
    [
        b"n",
        tenant.as_str().as_bytes(),
        b"\0",
        event_id.as_bytes().as_slice(),
    ]
    .concat()
}

/// The `keys` slot of one identifier's data key of `kind`.
pub(super) fn slot(tenant: &TenantId, digest: &[u8; 32], kind: KeyKind) -> Vec<u8> {
    let mut k = data_prefix(tenant, digest);
    k.push(kind.tag());
    k
}

fn data_prefix(tenant: &TenantId, digest: &[u8; 32]) -> Vec<u8> {
    [b"d", tenant.as_str().as_bytes(), b"\0", digest.as_slice()].concat()
}

/// Separates a slot from a key id: an extra key's entry, and a record's key on the key topic.
const ID_MARK: u8 = b'#';

/// The name of `slot`'s key `id`: an extra entry of the `keys` tree, and the key of its record
/// on scale-out's key topic.
pub(super) fn with_id(slot: &[u8], id: &str) -> Vec<u8> {
    [slot, &[ID_MARK], id.as_bytes()].concat()
}

/// A key-topic record's key read back: the data-key slot and the key id it names (`None`: a
/// record of before key ids, which names the slot alone). `None` for anything else.
pub(crate) fn split_record(record: &[u8]) -> Option<(&[u8], Option<&str>)> {
    if record.first() != Some(&b'd') {
        return None;
    }
    let slot_len = record.iter().position(|b| *b == 0)? + 1 + 32 + 1;
    let slot = record.get(..slot_len)?;
    match record.get(slot_len..)? {
        [] => Some((slot, None)),
        [ID_MARK, id @ ..] => {
            let id = std::str::from_utf8(id).ok()?;
            let hex16 = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
            hex16.then_some((slot, Some(id)))
        }
        _ => None,
    }
}

/// Checks `master` against the ledger's key-check value and unwraps the index secret; on a
/// ledger that has none yet (new, or written before keys existed), creates both. A wrong key
/// is refused before anything is written.
pub(super) fn unlock(db: &super::kv::Db, dir: &Path, master: MasterKey) -> Result<Keyring> {
    let meta = db.open_tree("meta")?;
    let keys = db.open_tree("keys")?;
    if let Some(check) = meta.get(KEY_CHECK)? {
        if !master.matches(&check) {
            return Err(LedgerError::WrongMasterKey {
                path: dir.display().to_string(),
            });
        }
        let wrapped = keys
            .get(INDEX)?
            .ok_or_else(|| corrupt("the index secret is missing"))?;
        let index = master
            .unwrap(INDEX, &wrapped)
            .ok_or_else(|| corrupt("the index secret does not unwrap under the master key"))?;
        return Ok(Keyring::new(master, IndexSecret::from_bytes(index)));
    }
    if !keys.is_empty()? {
        return Err(corrupt(
            "data keys are stored but the key-check value is missing",
        ));
    }
    let index = IndexSecret::generate();
    let wrapped = master.wrap(INDEX, index.bytes());
    let check = master.key_check();
    let mut batch = db.batch();
    batch.insert(&meta, KEY_CHECK, check);
    batch.insert(&keys, INDEX, wrapped);
    batch.commit()?;
    db.flush()?;
    Ok(Keyring::new(master, index))
}

fn corrupt(detail: &str) -> LedgerError {
    LedgerError::Corrupt {
        tree: "keys",
        detail: detail.into(),
    }
}

impl Ledger {
    fn keyring(&self) -> Result<&Keyring> {
        self.keyring.as_ref().ok_or(LedgerError::Locked)
    }

    /// The tenant's secret for keyed hashes of identifiers.
    pub fn tenant_secret(&self, tenant: &TenantId) -> Result<std::sync::Arc<TenantSecret>> {
        let keyring = self.keyring()?;
        let known = keyring
            .secrets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(tenant)
            .cloned();
        if let Some(secret) = known {
            return Ok(secret);
        }
        let mut secrets = keyring
            .secrets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(secrets
            .entry(tenant.clone())
            .or_insert_with(|| {
                let index = keyring
                    .index
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                std::sync::Arc::new(index.tenant(tenant))
            })
            .clone())
    }

    /// The keyed hash of `contact` in `tenant`: what indexes and sealed fields name it by.
    pub fn digest(&self, tenant: &TenantId, contact: &Contact) -> Result<[u8; 32]> {
        Ok(self.tenant_secret(tenant)?.digest(contact.as_str()))
    }

    /// The keyed hash of a message id in `tenant`: what `dedupe`, `sent`, `delivery` and
    /// `campaign_signals` are keyed by, since a WhatsApp message id carries its sender's
    /// number. The same HMAC as identifiers', so one secret covers every index.
    pub fn message_digest(&self, tenant: &TenantId, message_id: &str) -> Result<[u8; 32]> {
        Ok(self.tenant_secret(tenant)?.digest(message_id))
    }

    /// The key stored in `slot`, unwrapped; `None` when there is none (destroyed, or never
    /// created).
    pub(super) fn stored_key(&self, slot: &[u8]) -> Result<Option<DataKey>> {
        let Some(wrapped) = self.keys.get(slot)? else {
            return Ok(None);
        };
        let key = self
            .keyring()?
            .master
            .unwrap(slot, &wrapped)
            .ok_or_else(|| corrupt("a data key does not unwrap under the master key"))?;
        Ok(Some(DataKey::from_bytes(key)))
    }

    /// Every key of `slot` (see the module doc), the slot's own first: empty when there is
    /// none.
    pub(super) fn stored_keys(&self, slot: &[u8]) -> Result<Vec<DataKey>> {
        let mut keys: Vec<DataKey> = self.stored_key(slot)?.into_iter().collect();
        keys.extend(self.other_keys(slot)?);
        Ok(keys)
    }

    /// The keys of `slot` other than its own: those scale-out's key race left (module doc).
    pub(super) fn other_keys(&self, slot: &[u8]) -> Result<Vec<DataKey>> {
        let mut keys = Vec::new();
        for entry in self.keys.scan_prefix(with_id(slot, "")) {
            let (name, _) = entry?;
            keys.extend(self.stored_key(&name)?);
        }
        Ok(keys)
    }

    /// The `keys` entries of `slot`: the slot itself when it holds a key, and its other keys.
    pub(super) fn key_entries(&self, slot: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        if self.keys.contains_key(slot)? {
            out.push(slot.to_vec());
        }
        for name in self.keys.scan_prefix(with_id(slot, "")) {
            out.push(name?.0.to_vec());
        }
        Ok(out)
    }

    /// The key-topic records that hold `slot`'s keys, to tombstone when they are destroyed:
    /// one per key, named by its id, and the slot alone (how a record was named before ids).
    pub fn key_records(&self, slot: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut out = vec![slot.to_vec()];
        for key in self.stored_keys(slot)? {
            out.push(with_id(slot, &key.id()));
        }
        Ok(out)
    }

    /// Stores a wrapped data key read from the key topic under `record` (slot and key id), or
    /// removes it on its tombstone (`None`). Written at once, outside any batch: a key is only
    /// ever added whole or removed, and the event it opens is adopted after it. A key this
    /// ledger holds already is not stored twice; a second key for a slot is kept beside the
    /// first (see the module doc).
    pub fn adopt_key(&self, record: &[u8], wrapped: Option<&[u8]>) -> Result<()> {
        let Some((slot, id)) = split_record(record) else {
            // A notice key, or nothing this build knows: kept as named.
            match wrapped {
                Some(w) => self.keys.insert(record, w)?,
                None => self.keys.remove(record)?,
            }
            return Ok(());
        };
        let Some(wrapped) = wrapped else {
            if let Some(key) = self.stored_key(slot)? {
                let named = match id {
                    Some(id) => key.id() == id,
                    None => true,
                };
                if named {
                    self.keys.remove(slot)?;
                }
            }
            match id {
                Some(id) => self.keys.remove(with_id(slot, id))?,
                None => {
                    for name in self.key_entries(slot)? {
                        self.keys.remove(name)?;
                    }
                }
            }
            return Ok(());
        };
        let key = self
            .keyring()?
            .master
            .unwrap(slot, wrapped)
            .map(DataKey::from_bytes)
            .ok_or_else(|| {
                corrupt("a data key on the key topic does not unwrap under the master key")
            })?;
        let key_id = key.id();
        if id.is_some_and(|id| id != key_id) {
            return Err(corrupt(
                "a data key on the key topic is not the key its record names",
            ));
        }
        let held = self.stored_keys(slot)?;
        if held.iter().any(|k| k.id() == key_id) {
            return Ok(());
        }
        if held.is_empty() {
            self.keys.insert(slot, wrapped)?;
        } else {
            let name = with_id(slot, &key_id);
            self.keys.insert(&name, self.wrap_key(&name, &key)?)?;
        }
        Ok(())
    }

    /// `key` wrapped for `slot`, to store in the batch that first uses it.
    pub(super) fn wrap_key(&self, slot: &[u8], key: &DataKey) -> Result<Vec<u8>> {
        Ok(self.keyring()?.master.wrap(slot, key.bytes()))
    }

    /// `contact`'s data key of `kind`; `None` when it was destroyed (erasure, retention) or
    /// never created.
    pub fn data_key(
        &self,
        tenant: &TenantId,
        contact: &Contact,
        kind: KeyKind,
    ) -> Result<Option<DataKey>> {
        let digest = self.digest(tenant, contact)?;
        self.stored_key(&slot(tenant, &digest, kind))
    }

    /// The index secret wrapped under the master key, as scale-out shares it on the key topic
    /// (every instance has the same master key, from its configuration).
    pub fn wrapped_index_secret(&self) -> Result<Vec<u8>> {
        self.keys
            .get(INDEX)?
            .map(|w| w.to_vec())
            .ok_or_else(|| corrupt("the index secret is missing"))
    }

    /// Whether `wrapped` holds the same index secret as this ledger's: the key topic's copy
    /// and this ledger's are wrapped apart, so their bytes differ.
    pub fn same_index_secret(&self, wrapped: &[u8]) -> Result<bool> {
        let keyring = self.keyring()?;
        let theirs = keyring
            .master
            .unwrap(INDEX, wrapped)
            .ok_or(LedgerError::ForeignIndexSecret)?;
        let ours = keyring
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(theirs.as_slice() == ours.bytes().as_slice())
    }

    /// Takes the deployment's index secret (scale-out) in place of this ledger's own, which
    /// only a ledger that holds nothing keyed by it yet may do ([`Ledger::is_fresh`]).
    pub fn adopt_index_secret(&self, wrapped: &[u8]) -> Result<()> {
        if !self.is_fresh()? {
            return Err(corrupt(
                "this ledger already holds events under another index secret",
            ));
        }
        let keyring = self.keyring()?;
        let secret = keyring
            .master
            .unwrap(INDEX, wrapped)
            .ok_or(LedgerError::ForeignIndexSecret)?;
        self.keys.insert(INDEX, wrapped)?;
        self.sync()?;
        *keyring
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = IndexSecret::from_bytes(secret);
        keyring
            .secrets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
        Ok(())
    }

    /// Data keys stored (every identifier and kind).
    pub fn data_key_count(&self) -> usize {
        self.keys.scan_prefix(b"d").count()
    }

    /// Rewraps the index secret and every data key under `new`, and replaces the key-check
    /// value, in one transaction, then makes it durable: after it only `new` opens the ledger.
    /// Returns the number of data keys rewrapped. Consumes the ledger, whose keyring holds the
    /// old key.
    pub fn rotate_master_key(self, new: &MasterKey) -> Result<usize> {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let keyring = self.keyring()?;
        let mut rewrapped = Vec::new();
        for entry in self.keys.iter() {
            let (slot, wrapped) = entry?;
            let key = keyring
                .master
                .unwrap(&slot, &wrapped)
                .ok_or_else(|| corrupt("a stored key does not unwrap under the master key"))?;
            rewrapped.push((slot.to_vec(), new.wrap(&slot, &key)));
        }
        let check = new.key_check();
        let mut batch = self.db.batch();
        for (slot, wrapped) in &rewrapped {
            batch.insert(&self.keys, slot, wrapped);
        }
        batch.insert(&self.meta, KEY_CHECK, check);
        batch.commit()?;
        self.sync()?;
        Ok(rewrapped
            .iter()
            .filter(|(slot, _)| slot.starts_with(b"d"))
            .count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(s: &str) -> Contact {
        Contact::from_stored(s.into())
    }

    /// Stores a new data key of `kind` for `c`, as the first batch that seals a field does.
    fn create(l: &Ledger, t: &TenantId, c: &Contact, kind: KeyKind) -> DataKey {
        let slot = slot(t, &l.digest(t, c).unwrap(), kind);
        let key = DataKey::generate();
        l.keys
            .insert(&slot, l.wrap_key(&slot, &key).unwrap())
            .unwrap();
        key
    }

    #[test]
    fn a_wrong_master_key_is_refused_and_rotation_moves_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let tenant = TenantId::new("acme").unwrap();
        let c = contact("+33612345678");
        let key = {
            let l = Ledger::open(&path, MasterKey::from_bytes(old)).unwrap();
            let k = create(&l, &tenant, &c, KeyKind::Text);
            assert_eq!(l.data_key_count(), 1);
            *k.bytes()
        };
        let err = Ledger::open(&path, MasterKey::from_bytes(new))
            .err()
            .unwrap();
        assert!(matches!(err, LedgerError::WrongMasterKey { .. }), "{err}");
        let l = Ledger::open(&path, MasterKey::from_bytes(old)).unwrap();
        assert_eq!(l.rotate_master_key(&MasterKey::from_bytes(new)).unwrap(), 1);
        assert!(Ledger::open(&path, MasterKey::from_bytes(old)).is_err());
        let l = Ledger::open(&path, MasterKey::from_bytes(new)).unwrap();
        let back = l.data_key(&tenant, &c, KeyKind::Text).unwrap().unwrap();
        assert_eq!(*back.bytes(), key);
        assert!(l
            .data_key(&tenant, &c, KeyKind::Identity)
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_stored_keys_hold_neither_the_identifier_nor_a_key_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("ledger"), MasterKey::generate()).unwrap();
        let tenant = TenantId::new("acme").unwrap();
        let k = create(&l, &tenant, &contact("+33612345678"), KeyKind::Identity);
        for entry in l.keys.iter() {
            let (slot, value) = entry.unwrap();
            assert!(!slot.windows(8).any(|w| w == b"12345678"));
            assert!(!value.windows(16).any(|w| w == &k.bytes()[..16]));
        }
    }
}
