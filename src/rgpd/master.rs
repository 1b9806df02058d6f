//! The master key: it wraps (AES-256-GCM, random nonce) every key the ledger stores, and its
//! key-check value lets the ledger refuse a wrong one at open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of every key: the master key, the index secret, data keys.
pub const KEY_BYTES: usize = 32;

/// What the key-check value is an HMAC of. Fixed forever: changing it makes every ledger
/// refuse its own key.
const KEY_CHECK_LABEL: &[u8] = b"consent-ledger master key check v1";
/// Bound into every wrapped key with the slot it is stored under, so a wrapped key moved to
/// another slot (another identifier's) does not unwrap.
const WRAP_LABEL: &[u8] = b"consent-ledger key wrap v1\0";
/// First byte of a wrapped key: its layout (version, 12-byte nonce, ciphertext with its tag).
const WRAP_VERSION: u8 = 1;
const NONCE_BYTES: usize = 12;

/// The key every stored key is wrapped with. Never printed: `Debug` shows nothing of it.
pub struct MasterKey(Zeroizing<[u8; KEY_BYTES]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    pub fn generate() -> Self {
        MasterKey::from_bytes(super::random())
    }

    /// A key written as base64 of its 32 bytes (surrounding white space ignored).
    pub fn from_base64(text: &str) -> Option<Self> {
        let bytes = Zeroizing::new(B64.decode(text.trim()).ok()?);
        let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().ok()?;
        Some(MasterKey::from_bytes(key))
    }

    /// The form a key file holds.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.0.as_slice()))
    }

    /// HMAC-SHA256 of a fixed label: stored in the ledger, it proves the key is the one the
    /// ledger was written with, and says nothing about the key.
    pub fn key_check(&self) -> [u8; 32] {
        self.check_mac().finalize().into_bytes().into()
    }

    /// Whether `stored` is this key's key-check value, in constant time.
    pub fn matches(&self, stored: &[u8]) -> bool {
        self.check_mac().verify_slice(stored).is_ok()
    }

    fn check_mac(&self) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_slice())
            .expect("HMAC takes any key length");
        mac.update(KEY_CHECK_LABEL);
        mac
    }

    /// `key` wrapped for storage under `slot`.
    pub fn wrap(&self, slot: &[u8], key: &[u8; KEY_BYTES]) -> Vec<u8> {
        let nonce: [u8; NONCE_BYTES] = super::random();
        let aad = [WRAP_LABEL, slot].concat();
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: key,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encrypts any 32 bytes");
        [&[WRAP_VERSION][..], &nonce, &sealed].concat()
    }

    /// The key wrapped under `slot`; `None` when it was wrapped by another master key, for
    /// another slot, or altered.
    pub fn unwrap(&self, slot: &[u8], wrapped: &[u8]) -> Option<Zeroizing<[u8; KEY_BYTES]>> {
        let (&version, rest) = wrapped.split_first()?;
        if version != WRAP_VERSION || rest.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_BYTES);
        let aad = [WRAP_LABEL, slot].concat();
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .ok()?,
        );
        let key: [u8; KEY_BYTES] = plain.as_slice().try_into().ok()?;
        Some(Zeroizing::new(key))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.0.as_slice()).expect("a 32-byte key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_unwraps_only_with_its_master_key_and_slot() {
        let master = MasterKey::generate();
        let key = [9u8; KEY_BYTES];
        let wrapped = master.wrap(b"slot-a", &key);
        assert_eq!(*master.unwrap(b"slot-a", &wrapped).unwrap(), key);
        assert!(master.unwrap(b"slot-b", &wrapped).is_none());
        assert!(MasterKey::generate().unwrap(b"slot-a", &wrapped).is_none());
        let mut altered = wrapped.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(master.unwrap(b"slot-a", &altered).is_none());
    }

    #[test]
    fn the_key_is_never_stored_in_clear() {
        let master = MasterKey::from_bytes([7u8; KEY_BYTES]);
        let key = [5u8; KEY_BYTES];
        let wrapped = master.wrap(b"s", &key);
        assert!(!wrapped.windows(8).any(|w| w == [5u8; 8]));
        // A fresh nonce each time: the same key wraps differently.
        assert_ne!(wrapped, master.wrap(b"s", &key));
    }

    #[test]
    fn the_key_check_tells_keys_apart() {
        let a = MasterKey::from_bytes([1u8; KEY_BYTES]);
        let b = MasterKey::from_bytes([2u8; KEY_BYTES]);
        assert!(a.matches(&a.key_check()));
        assert!(!b.matches(&a.key_check()));
        assert_ne!(a.key_check().as_slice(), [1u8; KEY_BYTES].as_slice());
    }

    #[test]
    fn base64_round_trip_and_debug_hides_the_key() {
        let key = MasterKey::generate();
        let back = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(back.key_check(), key.key_check());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_none());
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }
}
