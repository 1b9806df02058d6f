//! Offline verification of a proof file (`consent-ledger verify-export`): with nothing but
//! the file, and optionally the ledger's public key. `scripts/verify_export.py` implements the
//! same checks in plain Python; both are tested on the same good and tampered files.

use std::collections::BTreeMap;

use super::export::{to_bytes, unsigned_bytes, ProofFile, MARKER, VERSION};
use super::{check_signature, fingerprint};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::domain::event::{chain_hash, ConsentEvent, EventType, FORMAT, FORMAT_2};
use crate::rgpd::field::{self, Sealed};
use crate::rgpd::DataKey;

/// Why a file does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a proof file at all (exit 2).
    #[error("not a consent-ledger proof file: {0}")]
    NotAProof(String),
    /// A proof file whose content or form was changed, or signed by another key (exit 1).
    #[error("the proof does not verify: {0}")]
    Tampered(String),
}

/// What a file that verifies proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub events: usize,
    pub identifiers: Vec<String>,
    /// The key it was checked against, and whether the caller gave it (else it is the file's).
    pub public_key: String,
    pub key_given: bool,
}

impl Verified {
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public_key)
    }
}

fn tampered(detail: impl Into<String>) -> VerifyError {
    VerifyError::Tampered(detail.into())
}

/// Checks `bytes` as a proof file, against `public_key` when given (base64), else against
/// the key the file names (which proves integrity under that key only).
pub fn verify(bytes: &[u8], public_key: Option<&str>) -> Result<Verified, VerifyError> {
    // A file that names itself a proof but no longer parses, or lost its marker field, was
    // one before somebody changed it.
    let names_itself = bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes());
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) if names_itself => return Err(tampered(format!("no longer valid JSON ({e})"))),
        Err(e) => return Err(VerifyError::NotAProof(format!("not JSON ({e})"))),
    };
    if value.get("proof").and_then(|v| v.as_str()) != Some(MARKER) {
        if names_itself {
            return Err(tampered("its \"proof\" field was changed"));
        }
        return Err(VerifyError::NotAProof(format!(
            "no \"proof\": \"{MARKER}\" field"
        )));
    }
    let file: ProofFile = serde_json::from_value(value)
        .map_err(|e| tampered(format!("a field is missing or malformed ({e})")))?;
    if !(1..=VERSION).contains(&file.version) {
        return Err(tampered(format!("unknown version {}", file.version)));
    }
    if to_bytes(&file) != bytes {
        return Err(tampered(
            "the file is not in its canonical form (RFC 8785 JSON and a newline): bytes were changed",
        ));
    }
    let key = public_key.unwrap_or(&file.public_key).trim().to_string();
    if public_key.is_some() && key != file.public_key {
        return Err(tampered(
            "the file was signed with another key than the one given",
        ));
    }
    check_signature(&key, &unsigned_bytes(&file), &file.signature)
        .map_err(|e| tampered(format!("the file's signature: {e}")))?;
    let mut segments: BTreeMap<(u32, u64), usize> = BTreeMap::new();
    for (i, s) in file.chains.iter().enumerate() {
        check_segment(&key, s)?;
        segments.insert((s.partition, s.from_seq), i);
    }
    if file.version >= 2 {
        check_opened(&file)?;
    }
    for e in &file.events {
        check_event(&file, e)?;
        let covering = segments
            .range(..=(e.partition, e.seq))
            .next_back()
            .map(|(_, i)| &file.chains[*i])
            .filter(|s| s.partition == e.partition && e.seq <= s.head.seq)
            .ok_or_else(|| {
                tampered(format!("event {} is not tied to a signed head", e.event_id))
            })?;
        let at = (e.seq - covering.from_seq) as usize;
        if covering.digests[at] != e.content_digest() {
            return Err(tampered(format!(
                "event {} differs from the chain's record of it",
                e.event_id
            )));
        }
        let mut h = covering.prev_hash.clone();
        for d in &covering.digests[..=at] {
            h = chain_hash(&h, d);
        }
        if h != e.hash {
            return Err(tampered(format!(
                "event {} is not where the chain puts it",
                e.event_id
            )));
        }
    }
    Ok(Verified {
        events: file.events.len(),
        identifiers: file.identifiers.clone(),
        public_key: key,
        key_given: public_key.is_some(),
    })
}

/// A segment's digests lead from its `prev_hash` to its head, and the head is signed.
fn check_segment(key: &str, s: &super::export::Segment) -> Result<(), VerifyError> {
    if s.head.partition != s.partition
        || s.from_seq == 0
        || s.head.seq + 1 != s.from_seq + s.digests.len() as u64
    {
        return Err(tampered(format!(
            "the segment of partition {} from {} does not end at its head",
            s.partition, s.from_seq
        )));
    }
    let mut h = s.prev_hash.clone();
    for d in &s.digests {
        h = chain_hash(&h, d);
    }
    if h != s.head.hash {
        return Err(tampered(format!(
            "the chain of partition {} from {} does not lead to its signed head",
            s.partition, s.from_seq
        )));
    }
    check_signature(key, &s.head.signed_bytes(), &s.head.signature).map_err(|e| {
        tampered(format!(
            "the signed head of partition {} at {}: {e}",
            s.partition, s.head.seq
        ))
    })
}

/// The event is the person's, of a format this verifier reads, and hashes to its `hash`.
fn check_event(file: &ProofFile, e: &ConsentEvent) -> Result<(), VerifyError> {
    // Version 1 files hold events of format 2 (fields in clear), version 2 of format 3.
    let format = if file.version == 1 { FORMAT_2 } else { FORMAT };
    if e.format != format {
        return Err(tampered(format!(
            "event {} has format {}, expected {format}",
            e.event_id, e.format
        )));
    }
    if e.tenant != file.tenant {
        return Err(tampered(format!(
            "event {} is of another tenant",
            e.event_id
        )));
    }
    // Version 2 names the person's identifiers by the keyed hashes sealed fields carry, which
    // holds for fields whose key was destroyed too.
    let names = |c: &str| match file.version {
        1 => file.identifiers.iter().any(|i| i == c),
        _ => field_ref_hex(c).is_some_and(|r| file.refs.contains(&r)),
    };
    let about_person = names(e.contact.as_str())
        || (e.event_type == EventType::IdentityLinked
            && e.linked_contact.as_ref().is_some_and(|c| names(c.as_str())));
    if !about_person {
        return Err(tampered(format!(
            "event {} is about none of the file's identifiers",
            e.event_id
        )));
    }
    if e.compute_hash() != e.hash {
        return Err(tampered(format!(
            "event {} does not hash to its hash: it was edited",
            e.event_id
        )));
    }
    Ok(())
}

fn field_ref_hex(stored: &str) -> Option<String> {
    Sealed::parse(stored).map(|s| hex::encode(s.key_ref))
}

/// The opened events are exactly the stored ones opened with the file's keys: every sealed
/// field decrypts (under the key its reference names) to the text shown, or shows
/// `[erased]` where the file has no key for it.
fn check_opened(file: &ProofFile) -> Result<(), VerifyError> {
    if file.opened.len() != file.events.len() {
        return Err(tampered("the opened events do not match the stored ones"));
    }
    for (stored, shown) in file.events.iter().zip(&file.opened) {
        let opened = field::open_event(stored, |sealed| {
            // The slot's key by its name, and any other key of the slot by its name and id
            // (`i:<ref>:<id>`, scale-out's key race).
            let name = field::key_name(sealed, &stored.event_id);
            let others = format!("{name}:");
            let mut keys = Vec::new();
            for (n, b64) in &file.keys {
                if *n != name && !n.starts_with(&others) {
                    continue;
                }
                let bytes: [u8; 32] = B64
                    .decode(b64)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| tampered(format!("key {n} is not base64 of 32 bytes")))?;
                keys.push(DataKey::from_bytes(zeroize::Zeroizing::new(bytes)));
            }
            Ok::<_, VerifyError>(keys)
        })?;
        if &opened != shown {
            return Err(tampered(format!(
                "event {} does not open to what the file shows of it",
                stored.event_id
            )));
        }
    }
    Ok(())
}
