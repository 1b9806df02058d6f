//! The index secret and the tenant secrets derived from it, and data keys.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::KEY_BYTES;
use crate::domain::tenant::TenantId;

/// The root of every keyed hash the ledger stores; random, stored wrapped by the master key.
pub struct IndexSecret(Zeroizing<[u8; KEY_BYTES]>);

impl std::fmt::Debug for IndexSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IndexSecret(..)")
    }
}

impl IndexSecret {
    pub fn generate() -> Self {
        IndexSecret(Zeroizing::new(super::random()))
    }

    pub fn from_bytes(bytes: Zeroizing<[u8; KEY_BYTES]>) -> Self {
        IndexSecret(bytes)
    }

    pub fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// The tenant's secret: HKDF-SHA256 with info `consent-ledger tenant <id>`, so one
    /// tenant's hashes tell nothing about another's identifiers.
    pub fn tenant(&self, tenant: &TenantId) -> TenantSecret {
        let mut okm = Zeroizing::new([0u8; KEY_BYTES]);
        Hkdf::<Sha256>::new(None, self.0.as_slice())
            .expand(
                format!("consent-ledger tenant {tenant}").as_bytes(),
                okm.as_mut(),
            )
            .expect("32 bytes is a valid HKDF-SHA256 length");
        TenantSecret::new(&okm)
    }
}

/// One tenant's secret for keyed hashes of identifiers, held as HMAC-SHA256 with its key
/// blocks already hashed: a digest then costs two SHA-256 compressions instead of four, and
/// an audience check computes one for every contact.
pub struct TenantSecret {
    mac: Hmac<Sha256>,
}

impl TenantSecret {
    fn new(key: &[u8; KEY_BYTES]) -> Self {
        TenantSecret {
            mac: Hmac::<Sha256>::new_from_slice(key).expect("any key length"),
        }
    }

    /// HMAC-SHA256 of `identifier`: what an index or the suppression list holds instead of
    /// the identifier. A plain SHA-256 of a phone number is still personal data (anyone can
    /// hash every number of a country), which is why it is keyed.
    pub fn digest(&self, identifier: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(identifier.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// The hashed key blocks are as good as the key for computing digests, and `hmac` does not
/// wipe them: they are overwritten with those of an all-zero key before the memory is freed
/// (`black_box` keeps the compiler from dropping the store as dead).
impl Drop for TenantSecret {
    fn drop(&mut self) {
        self.mac = Hmac::<Sha256>::new_from_slice(&[0; KEY_BYTES]).expect("any key length");
        std::hint::black_box(&self.mac);
    }
}

/// Which of an identifier's two data keys: identity fields, or message texts (which
/// retention erases alone).
///
/// `Notice` is neither: the key of one `Erased` event's identifiers, which the feeds must
/// still publish after the person's keys are gone; it is destroyed once they have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    Identity,
    Text,
    Notice,
}

impl KeyKind {
    /// The kinds every identifier has.
    pub const ALL: [KeyKind; 2] = [KeyKind::Identity, KeyKind::Text];

    pub fn tag(self) -> u8 {
        match self {
            KeyKind::Identity => b'i',
            KeyKind::Text => b't',
            KeyKind::Notice => b'n',
        }
    }

    pub fn from_tag(tag: u8) -> Option<KeyKind> {
        match tag {
            b'i' => Some(KeyKind::Identity),
            b't' => Some(KeyKind::Text),
            b'n' => Some(KeyKind::Notice),
            _ => None,
        }
    }
}

/// A data key: encrypts one identifier's personal fields of one kind.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; KEY_BYTES]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub fn generate() -> Self {
        DataKey(Zeroizing::new(super::random()))
    }

    pub fn from_bytes(bytes: Zeroizing<[u8; KEY_BYTES]>) -> Self {
        DataKey(bytes)
    }

    pub fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// A public name for this key, the same on every instance that holds it: 16 hex digits of
    /// a hash of the key (one-way: it tells nothing of the key). Scale-out keeps each key on
    /// the key topic under its slot and this id, so that two keys made at once for one
    /// identifier by two instances both survive compaction.
    pub fn id(&self) -> String {
        use sha2::Digest;
        let digest = Sha256::new()
            .chain_update(b"consent-ledger data key id\0")
            .chain_update(self.0.as_slice())
            .finalize();
        hex::encode(&digest[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_secrets_differ_by_tenant_and_are_stable() {
        let root = IndexSecret::generate();
        let (a, b) = (
            TenantId::new("acme").unwrap(),
            TenantId::new("other").unwrap(),
        );
        let id = "+33612345678";
        assert_eq!(root.tenant(&a).digest(id), root.tenant(&a).digest(id));
        assert_ne!(root.tenant(&a).digest(id), root.tenant(&b).digest(id));
        assert_ne!(
            root.tenant(&a).digest(id),
            root.tenant(&a).digest("+33612345679")
        );
        let other_root = IndexSecret::generate();
        assert_ne!(root.tenant(&a).digest(id), other_root.tenant(&a).digest(id));
    }
}
