//! The step of `migrate` to layout 4: personal fields sealed, indexes keyed by HMAC (see
//! `migrate::v3_to_v4`). Apart from `migrate.rs` because it is the one migration that needs
//! the keys, and reads every tree that held an identifier.

use std::collections::{BTreeMap, HashMap};

use super::keyring::{notice_slot, slot};
use super::sent::keys as sent_keys;
use super::{decode, keys, ChainHead, Ledger, LedgerError, Result};
use crate::domain::analytics::SentRef;
use crate::domain::contact::Contact;
use crate::domain::event::{ConsentEvent, EventType, Purpose, FORMAT};
use crate::domain::replies::{OutboundMessage, ReplyKind};
use crate::domain::tenant::TenantId;
use crate::rgpd::KeyKind;

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Seals, re-hashes and re-indexes everything; returns the steps to print.
pub(super) fn seal_all(ledger: &Ledger) -> Result<Vec<String>> {
    let old_view = old_consent_rows(ledger)?;
    let mut steps = Vec::new();
    let mut batch = ledger.stage();
    let mut chains: BTreeMap<u32, (ChainHead, ChainHead, u64)> = BTreeMap::new();
    let (mut events, mut by_contact, mut replies): (Rows, Rows, Rows) = Default::default();
    let mut notices = Vec::new();
    for entry in ledger.events.iter() {
        let (key, bytes) = entry?;
        let event: ConsentEvent = decode("events", &bytes)?;
        let mut stored = batch.seal_event(&event)?;
        if event.event_type == EventType::Erased {
            notices.push(notice_slot(&event.tenant, &event.event_id));
        }
        let (old, new, n) = chains.entry(event.partition).or_default();
        *old = ChainHead {
            seq: event.seq,
            hash: event.hash.clone(),
        };
        stored.format = FORMAT;
        stored.seal(&new.hash);
        *new = ChainHead {
            seq: stored.seq,
            hash: stored.hash.clone(),
        };
        *n += 1;
        for c in std::iter::once(&event.contact).chain(&event.linked_contact) {
            let id = ledger.digest(&event.tenant, c)?;
            by_contact.push((
                keys::by_contact(&event.tenant, &id, event.partition, event.seq),
                vec![],
            ));
        }
        events.push((key.to_vec(), stored.stored_bytes()));
    }
    for entry in ledger.replies.iter() {
        let (key, bytes) = entry?;
        let reply: OutboundMessage = decode("replies", &bytes)?;
        if let (ReplyKind::Erased, Some(id)) = (reply.kind, reply.event_id) {
            notices.push(notice_slot(&reply.tenant, &id));
        }
        let stored = batch.seal_reply(&reply)?;
        replies.push((
            key.to_vec(),
            serde_json::to_vec(&stored).expect("plain struct"),
        ));
    }
    let (mut sent, mut sent_by_contact): (Rows, Rows) = Default::default();
    for entry in ledger.sent.iter() {
        let (key, bytes) = entry?;
        let s: SentRef = decode("sent", &bytes)?;
        let tenant_end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
        let Ok(tenant) = TenantId::new(&String::from_utf8_lossy(&key[..tenant_end])) else {
            continue;
        };
        let id = ledger.digest(&tenant, &s.contact)?;
        let s = SentRef {
            contact: Contact::from_stored(hex::encode(id)),
            ..s
        };
        let json = serde_json::to_vec(&s).expect("plain struct");
        sent_by_contact.push((
            sent_keys::sent_by_contact(&tenant, &id, s.sent_at, s.message_id.as_bytes()),
            json.clone(),
        ));
        sent.push((key.to_vec(), json));
    }
    let mut new_keys = std::mem::take(&mut batch.new_keys);
    drop(batch);
    // Erasures recorded before fields were sealed were published then: their notice keys
    // have nothing left to do.
    for slot in &notices {
        new_keys.remove(slot);
    }
    let data_keys = new_keys.len();
    for tree in [
        &ledger.by_contact,
        &ledger.sent_by_contact,
        &ledger.signed_heads,
    ] {
        tree.clear(&ledger.db)?;
    }
    for (tree, rows) in [
        (&ledger.events, events),
        (&ledger.by_contact, by_contact),
        (&ledger.replies, replies),
        (&ledger.sent, sent),
        (&ledger.sent_by_contact, sent_by_contact),
        (&ledger.keys, new_keys.into_iter().collect()),
    ] {
        ledger
            .db
            .fill(tree, rows.into_iter().map(Ok::<_, LedgerError>))?;
    }
    let erased = destroy_suppressed_keys(ledger)?;
    steps.push(format!(
        "sealed the identifiers and texts of {} events and the recipients of {} replies under {data_keys} new data keys; {erased} identifiers on the suppression list keep none",
        ledger.events.len()?,
        ledger.replies.len()?
    ));
    super::migrate::record_rehash(
        ledger,
        4,
        "format 2 (fields in clear) -> format 3 (personal fields sealed; same digest chain over the stored form)",
        chains,
        &mut steps,
    )?;
    let report = ledger.rebuild()?;
    let mut changed = 0;
    let mut seen = 0;
    for entry in ledger.consent.iter() {
        let (key, bytes) = entry?;
        match old_view.get(key.as_ref()) {
            Some(old) if old.as_slice() == bytes.as_ref() => seen += 1,
            Some(_) => {
                seen += 1;
                changed += 1;
            }
            None => changed += 1,
        }
    }
    changed += old_view.len() - seen;
    steps.push(format!(
        "rebuilt the consent view, the links and the tenant index from {} events under keyed hashes: {changed} consent rows changed (two events at one time: the opt-out now wins)",
        report.events
    ));
    Ok(steps)
}

/// The consent rows as layout 3 keyed them (`tenant \0 contact \0 purpose`), under the keys
/// layout 4 gives them, so the step can say which rows the rebuild changed.
fn old_consent_rows(ledger: &Ledger) -> Result<HashMap<Vec<u8>, Vec<u8>>> {
    let mut out = HashMap::new();
    for entry in ledger.consent.iter() {
        let (key, bytes) = entry?;
        let mut parts = key.split(|b| *b == 0);
        let (Some(tenant), Some(contact), Some(purpose)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(tenant), Some(purpose)) = (
            TenantId::new(&String::from_utf8_lossy(tenant)),
            Purpose::parse(&String::from_utf8_lossy(purpose)),
        ) else {
            continue;
        };
        let contact = Contact::from_stored(String::from_utf8_lossy(contact).into_owned());
        let id = ledger.digest(&tenant, &contact)?;
        out.insert(keys::consent(&tenant, &id, purpose), bytes.to_vec());
    }
    Ok(out)
}

/// Destroys the data keys of every identifier on the suppression list (erased while fields
/// were in clear, which sealing them just gave keys).
fn destroy_suppressed_keys(ledger: &Ledger) -> Result<usize> {
    let mut count = 0;
    for entry in ledger.suppressed.iter() {
        let (key, _) = entry?;
        let cut = key.iter().position(|b| *b == 0).unwrap_or(key.len());
        let (Ok(tenant), Ok(id)) = (
            TenantId::new(&String::from_utf8_lossy(&key[..cut])),
            <[u8; 32]>::try_from(&key[(cut + 1).min(key.len())..]),
        ) else {
            continue;
        };
        for kind in KeyKind::ALL {
            ledger.keys.remove(slot(&tenant, &id, kind))?;
        }
        count += 1;
    }
    Ok(count)
}
