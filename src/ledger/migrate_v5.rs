//! The step of `migrate` to layout 5: message ids sealed in events and replies, and the
//! indexes keyed by a message id re-keyed by its HMAC (see `migrate::v4_to_v5`). A WhatsApp
//! message id is base64 of bytes that include the sender's number, so layout 4 kept a number
//! in clear wherever it kept a message id.

use std::collections::BTreeMap;

use super::keyring::{notice_slot, slot};
use super::sent::keys as sent_keys;
use super::{decode, keys, ChainHead, Ledger, LedgerError, Result};
use crate::domain::analytics::SentRef;
use crate::domain::contact::Contact;
use crate::domain::event::{ConsentEvent, EventType};
use crate::domain::replies::{OutboundMessage, ReplyKind};
use crate::domain::tenant::TenantId;
use crate::rgpd::field::{self, Sealed, ERASED};
use crate::rgpd::KeyKind;

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Seals every message id, re-hashes the chains and re-keys the message-id indexes; returns
/// the steps to print.
pub(super) fn seal_message_ids(ledger: &Ledger) -> Result<Vec<String>> {
    let mut steps = Vec::new();
    let mut chains: BTreeMap<u32, (ChainHead, ChainHead, u64)> = BTreeMap::new();
    let (mut events, mut replies): (Rows, Rows) = Default::default();
    let mut erased = 0;
    for entry in ledger.events.iter() {
        let (key, bytes) = entry?;
        let mut e: ConsentEvent = decode("events", &bytes)?;
        let (old, new, n) = chains.entry(e.partition).or_default();
        *old = ChainHead {
            seq: e.seq,
            hash: e.hash.clone(),
        };
        if e.event_type != EventType::Erased {
            let (tenant, id, owner) = (e.tenant.clone(), e.event_id, e.contact.to_string());
            let mut seal = |name: &str, value: &str| {
                let sealed = seal_like(ledger, &tenant, &owner, &id, name, value)?;
                erased += usize::from(sealed == ERASED);
                Result::Ok(sealed)
            };
            e.source.message_id = seal("source.message_id", &e.source.message_id)?;
            if let Some(m) = &e.source.context_message_id {
                e.source.context_message_id = Some(seal("source.context_message_id", m)?);
            }
        }
        e.seal(&new.hash);
        *new = ChainHead {
            seq: e.seq,
            hash: e.hash.clone(),
        };
        *n += 1;
        events.push((key.to_vec(), e.stored_bytes()));
    }
    for entry in ledger.replies.iter() {
        let (key, bytes) = entry?;
        let mut m: OutboundMessage = decode("replies", &bytes)?;
        let context = m
            .event_id
            .filter(|_| m.kind == ReplyKind::Erased)
            .unwrap_or(m.message_id);
        m.in_reply_to = seal_like(
            ledger,
            &m.tenant,
            m.to.as_str(),
            &context,
            "in_reply_to",
            &m.in_reply_to,
        )?;
        replies.push((key.to_vec(), serde_json::to_vec(&m).expect("plain struct")));
    }
    let indexes = rekey(ledger)?;
    for tree in [
        &ledger.dedupe,
        &ledger.sent,
        &ledger.sent_by_contact,
        &ledger.delivery,
        &ledger.campaign_signals,
        &ledger.signed_heads,
    ] {
        tree.clear(&ledger.db)?;
    }
    let counts: Vec<String> = indexes
        .iter()
        .map(|(name, _, rows)| format!("{} `{name}`", rows.len()))
        .collect();
    let written = [(&ledger.events, events), (&ledger.replies, replies)]
        .into_iter()
        .chain(indexes.into_iter().map(|(_, tree, rows)| (tree, rows)));
    for (tree, rows) in written {
        ledger
            .db
            .fill(tree, rows.into_iter().map(Ok::<_, LedgerError>))?;
    }
    steps.push(format!(
        "sealed the message ids of {} events and the replied-to ids of {} replies ({erased} read [erased]: their identifier was erased); re-keyed by HMAC {} entries",
        ledger.events.len()?,
        ledger.replies.len()?,
        counts.join(", ")
    ));
    super::migrate::record_rehash(
        ledger,
        5,
        "format 3, message ids in clear -> format 3, message ids sealed (same digest chain over the stored form)",
        chains,
        &mut steps,
    )?;
    Ok(steps)
}

/// `value` sealed under the key that seals the stored identifier `owner` (so that erasing the
/// identifier erases it), bound to `context` and `name`; [`ERASED`] when that key is gone.
/// A value already sealed (by the step to layout 4, which seals message ids) stays as it is.
fn seal_like(
    ledger: &Ledger,
    tenant: &TenantId,
    owner: &str,
    context: &uuid::Uuid,
    name: &str,
    value: &str,
) -> Result<String> {
    if Sealed::parse(value).is_some() {
        return Ok(value.to_string());
    }
    let (kind, key_ref) = match Sealed::parse(owner) {
        Some(s) => (s.kind, s.key_ref),
        None => (
            KeyKind::Identity,
            ledger.digest(tenant, &Contact::from_stored(owner.to_string()))?,
        ),
    };
    let slot = match kind {
        KeyKind::Notice => notice_slot(tenant, context),
        kind => slot(tenant, &key_ref, kind),
    };
    Ok(match ledger.stored_key(&slot)? {
        Some(key) => field::seal(&key, kind, &key_ref, &field::context(context, name), value),
        None => ERASED.to_string(),
    })
}

/// The message-id indexes under their layout-5 keys: the name, the tree, the rows.
fn rekey(ledger: &Ledger) -> Result<Vec<(&'static str, &super::kv::Tree, Rows)>> {
    let mid = |tenant: &[u8], message_id: &[u8]| -> Result<Option<(TenantId, [u8; 32])>> {
        let Ok(tenant) = TenantId::new(&String::from_utf8_lossy(tenant)) else {
            return Ok(None);
        };
        let digest = ledger.message_digest(&tenant, &String::from_utf8_lossy(message_id))?;
        Ok(Some((tenant, digest)))
    };
    let mut dedupe = Rows::new();
    for entry in ledger.dedupe.iter() {
        let (key, value) = entry?;
        let (first, last) = (nul(&key, 0), key.iter().rposition(|b| *b == 0));
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        if first >= last {
            continue;
        }
        if let Some((tenant, m)) = mid(&key[..first], &key[first + 1..last])? {
            let kind = String::from_utf8_lossy(&key[last + 1..]);
            dedupe.push((keys::dedupe(&tenant, &m, &kind), value.to_vec()));
        }
    }
    let (mut sent, mut sent_by_contact, mut delivery) = (Rows::new(), Rows::new(), Rows::new());
    for entry in ledger.sent.iter() {
        let (key, value) = entry?;
        let Some(cut) = nul(&key, 0) else { continue };
        let Some((tenant, m)) = mid(&key[..cut], &key[cut + 1..])? else {
            continue;
        };
        let s: SentRef = decode("sent", &value)?;
        let id: [u8; 32] = match hex::decode(s.contact.as_str()).map(<[u8; 32]>::try_from) {
            Ok(Ok(id)) => id,
            _ => ledger.digest(&tenant, &s.contact)?,
        };
        let s = SentRef {
            contact: Contact::from_stored(hex::encode(id)),
            message_id: hex::encode(m),
            ..s
        };
        let json = serde_json::to_vec(&s).expect("plain struct");
        sent_by_contact.push((
            sent_keys::sent_by_contact(&tenant, &id, s.sent_at, &m),
            json.clone(),
        ));
        sent.push((sent_keys::sent(&tenant, &m), json));
    }
    for entry in ledger.delivery.iter() {
        let (key, value) = entry?;
        let Some(cut) = nul(&key, 0) else { continue };
        if let Some((tenant, m)) = mid(&key[..cut], &key[cut + 1..])? {
            delivery.push((sent_keys::sent(&tenant, &m), value.to_vec()));
        }
    }
    let mut signals = Rows::new();
    for entry in ledger.campaign_signals.iter() {
        let (key, value) = entry?;
        let mut parts = key.splitn(4, |b| *b == 0);
        let (Some(tenant), Some(campaign), Some(kind), Some(message_id)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if let Some((tenant, m)) = mid(tenant, message_id)? {
            let (campaign, kind) = (
                String::from_utf8_lossy(campaign),
                String::from_utf8_lossy(kind),
            );
            signals.push((
                sent_keys::signal(&tenant, &campaign, &kind, &m),
                value.to_vec(),
            ));
        }
    }
    Ok(vec![
        ("dedupe", &ledger.dedupe, dedupe),
        ("sent", &ledger.sent, sent),
        ("sent_by_contact", &ledger.sent_by_contact, sent_by_contact),
        ("delivery", &ledger.delivery, delivery),
        ("campaign_signals", &ledger.campaign_signals, signals),
    ])
}

/// The position of the first NUL of `key` at or after `from`.
fn nul(key: &[u8], from: usize) -> Option<usize> {
    key[from..].iter().position(|b| *b == 0).map(|p| p + from)
}
