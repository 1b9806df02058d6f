//! Proofs anyone can verify (RGPD Art. 7(1), 7(3), 15). Each partition's log is a hash chain
//! (`domain::event`); its heads are signed with the ledger's Ed25519 key, and an access export
//! ([`export`]) carries a person's events with the chain links that tie each one to a signed
//! head. [`verify`] checks such a file with nothing but the file (and, to prove who signed it,
//! the ledger's public key), as `scripts/verify_export.py` does in plain Python, so an auditor
//! need not trust this binary.

pub mod export;
pub mod render;
pub mod verify;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::canonical;

/// A chain head and the ledger's signature over it: the anchor a proof ties events to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignedHead {
    pub partition: u32,
    pub seq: u64,
    pub hash: String,
    pub signed_at: DateTime<Utc>,
    /// Base64 of the signature (Ed25519) over the RFC 8785 canonical JSON of the four fields
    /// above.
    pub signature: String,
}

impl SignedHead {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        canonical::to_vec(&serde_json::json!({
            "partition": self.partition,
            "seq": self.seq,
            "hash": self.hash,
            "signed_at": self.signed_at,
        }))
    }
}

/// The ledger's signing key. Never logged, never serialized.
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", fingerprint(&self.public_key()))
    }
}

impl Signer {
    pub fn from_seed(seed: [u8; 32]) -> Signer {
        Signer {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> Result<([u8; 32], Signer), getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok((seed, Signer::from_seed(seed)))
    }

    /// Base64 of the raw 32-byte public key: what `consent-ledger public-key` prints.
    pub fn public_key(&self) -> String {
        B64.encode(self.key.verifying_key().to_bytes())
    }

    pub fn sign_head(&self, partition: u32, seq: u64, hash: &str, at: DateTime<Utc>) -> SignedHead {
        let mut head = SignedHead {
            partition,
            seq,
            hash: hash.to_string(),
            signed_at: at,
            signature: String::new(),
        };
        head.signature = self.sign(&head.signed_bytes());
        head
    }

    /// Base64 of the signature over `bytes`.
    pub fn sign(&self, bytes: &[u8]) -> String {
        B64.encode(self.key.sign(bytes).to_bytes())
    }
}

/// Why a public key or a signature is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a base64 Ed25519 public key of 32 bytes")]
    PublicKey,
    #[error("not a base64 Ed25519 signature of 64 bytes")]
    Signature,
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks a base64 signature over `bytes` under a base64 public key.
pub fn check_signature(public_key: &str, bytes: &[u8], signature: &str) -> Result<(), KeyError> {
    let key: [u8; 32] = B64
        .decode(public_key.trim())
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or(KeyError::PublicKey)?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| KeyError::PublicKey)?;
    let sig: [u8; 64] = B64
        .decode(signature)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or(KeyError::Signature)?;
    key.verify(bytes, &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|_| KeyError::Mismatch)
}

/// A short, stable name for a public key, for people to compare: the first 16 hex digits of
/// its SHA-256, in groups of four.
pub fn fingerprint(public_key: &str) -> String {
    let digest = hex::encode(Sha256::digest(public_key.trim().as_bytes()));
    digest.as_bytes()[..16]
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_signed_head_verifies_under_its_key_and_not_once_edited() {
        let signer = Signer::from_seed([7; 32]);
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let head = signer.sign_head(0, 42, &"ab".repeat(32), at);
        let key = signer.public_key();
        assert_eq!(
            check_signature(&key, &head.signed_bytes(), &head.signature),
            Ok(())
        );
        let mut edited = head.clone();
        edited.seq = 43;
        assert_eq!(
            check_signature(&key, &edited.signed_bytes(), &head.signature),
            Err(KeyError::Mismatch)
        );
        let other = Signer::from_seed([8; 32]).public_key();
        assert!(check_signature(&other, &head.signed_bytes(), &head.signature).is_err());
        assert_eq!(fingerprint(&key).len(), 19);
    }
}
