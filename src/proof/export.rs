//! The access export with proofs (RGPD Art. 15): every event about one person (each of their
//! identifiers, and the links between them), each tied by its chain to a signed head. The
//! file is RFC 8785 canonical JSON signed as a whole, so a change of any byte is caught:
//! a change of meaning by the signature, a change of form by the canonical-form check.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SignedHead;
use crate::domain::canonical;
use crate::domain::contact::Contact;
use crate::domain::event::ConsentEvent;
use crate::domain::tenant::TenantId;
use crate::ledger::{Ledger, LedgerError};

/// What the `proof` field of every proof file says; anything else is not one.
pub const MARKER: &str = "consent-ledger access export";
/// Version 2: events sealed (format 3), with their opened form and the keys that open them.
/// Version 1 files (format 2, fields in clear) still verify.
pub const VERSION: u32 = 2;

/// An access export with proofs (schemas/access-export.v1.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProofFile {
    /// Always [`MARKER`].
    pub proof: String,
    pub version: u32,
    pub tenant: TenantId,
    /// The identifier the export was asked for.
    pub contact: String,
    /// Every identifier of the person: the one asked for and those linked to it.
    pub identifiers: Vec<String>,
    pub generated_at: DateTime<Utc>,
    /// Base64 of the ledger's Ed25519 public key (`consent-ledger public-key`).
    pub public_key: String,
    /// The person's events as stored (consent and link events), in chain order: their
    /// personal fields sealed, which is what their hashes cover.
    pub events: Vec<ConsentEvent>,
    /// The same events as the person reads them: each sealed field opened with `keys`, or
    /// `[erased]` where its key was destroyed. A verifier opens `events` with `keys` and
    /// must find exactly this.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opened: Vec<ConsentEvent>,
    /// The keys that open the sealed fields, base64, by name: `i:<ref>` (an identifier's
    /// identity key), `t:<ref>` (its text key), `n:<event id>` (an `Erased` event's notice
    /// key), where `<ref>` is the keyed hash a sealed field carries. A second key of one
    /// identifier (two scale-out instances made one each) is named `i:<ref>:<key id>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
    /// The keyed hashes of every identifier of the person (hex): each event names one of
    /// them in its sealed `contact` or, for a link, `linked_contact`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
    /// For each partition, the chain segments that tie the events to signed heads.
    pub chains: Vec<Segment>,
    /// Base64 Ed25519 signature over the canonical JSON of this object without `signature`.
    pub signature: String,
}

/// A stretch of one partition's chain, from the event before `from_seq` to a signed head:
/// the content digest of every event in it, the person's and others' alike, so the chain can
/// be followed without anybody else's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Segment {
    pub partition: u32,
    pub from_seq: u64,
    /// The hash of event `from_seq - 1` (64 zeros when `from_seq` is 1).
    pub prev_hash: String,
    /// `content_digest` of events `from_seq ..= head.seq`, in order.
    pub digests: Vec<String>,
    pub head: SignedHead,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("this ledger has no signing key: set one (see README \"RGPD\") to export proofs")]
    NoSigningKey,
    #[error("no event about {0} in this tenant")]
    Unknown(String),
}

/// Builds the proof file of the person behind `contact`.
pub fn build(
    ledger: &Ledger,
    tenant: &TenantId,
    contact: &Contact,
    now: DateTime<Utc>,
) -> Result<ProofFile, ExportError> {
    let signer = ledger.signer().ok_or(ExportError::NoSigningKey)?;
    let (mut opened, linked) = ledger.person_history(tenant, contact)?;
    if opened.is_empty() {
        return Err(ExportError::Unknown(contact.masked()));
    }
    opened.sort_by_key(|e| (e.partition, e.seq));
    let mut events = Vec::with_capacity(opened.len());
    let mut keys = BTreeMap::new();
    for e in &opened {
        let stored = ledger.event_at(e.partition, e.seq)?;
        for (name, key) in ledger.field_keys(&stored)? {
            keys.insert(name, B64.encode(key.bytes()));
        }
        events.push(stored);
    }
    let mut refs: Vec<String> = ledger
        .person_refs(tenant, contact)?
        .iter()
        .map(hex::encode)
        .collect();
    refs.sort();
    let mut chains = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let first = &events[i];
        let head = ledger.signed_head_covering(first.partition, first.seq, now)?;
        let mut digests = Vec::new();
        for seq in first.seq..=head.seq {
            digests.push(ledger.event_at(first.partition, seq)?.content_digest());
        }
        chains.push(Segment {
            partition: first.partition,
            from_seq: first.seq,
            prev_hash: ledger.hash_at(first.partition, first.seq - 1)?,
            digests,
            head: head.clone(),
        });
        while i < events.len() && events[i].partition == head.partition && events[i].seq <= head.seq
        {
            i += 1;
        }
    }
    let mut identifiers: Vec<String> = std::iter::once(contact)
        .chain(&linked)
        .map(|c| c.to_string())
        .collect();
    identifiers.sort();
    let mut file = ProofFile {
        proof: MARKER.into(),
        version: VERSION,
        tenant: tenant.clone(),
        contact: contact.to_string(),
        identifiers,
        generated_at: now,
        public_key: signer.public_key(),
        events,
        opened,
        keys,
        refs,
        chains,
        signature: String::new(),
    };
    file.signature = signer.sign(&unsigned_bytes(&file));
    Ok(file)
}

impl ProofFile {
    /// The events as the person reads them: opened (version 2), or as stored (version 1,
    /// whose fields were in clear).
    pub fn readable(&self) -> &[ConsentEvent] {
        if self.opened.is_empty() {
            &self.events
        } else {
            &self.opened
        }
    }
}

/// The bytes the file's signature covers: its canonical JSON without `signature`.
pub fn unsigned_bytes(file: &ProofFile) -> Vec<u8> {
    let mut value = serde_json::to_value(file).expect("a plain struct serializes");
    if let Some(map) = value.as_object_mut() {
        map.remove("signature");
    }
    canonical::to_vec(&value)
}

/// The file as written: its canonical JSON and a newline.
pub fn to_bytes(file: &ProofFile) -> Vec<u8> {
    let value = serde_json::to_value(file).expect("a plain struct serializes");
    let mut out = canonical::to_vec(&value);
    out.push(b'\n');
    out
}
