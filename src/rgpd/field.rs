//! Sealed fields: how a personal field (an identifier, a message text, a message id) is kept in a stored
//! event. `enc1:<kind>:<ref>:<data>`: the key kind (`i` identity, `t` text, `n` the notice
//! key of an `Erased` event), the keyed hash
//! of the identifier whose data key seals it (hex, 64 digits: which key to ask for, and the
//! by-contact index key, without the identifier), and base64 of a random 12-byte nonce and
//! the AES-256-GCM ciphertext. The nonce, kind and reference are bound into the tag together
//! with the event id and the field's name, so a sealed field copied to another event or
//! field does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::{DataKey, KeyKind};
use crate::domain::contact::Contact;
use crate::domain::event::ConsentEvent;

/// What a reader sees of a field whose key was destroyed (erasure, retention).
pub const ERASED: &str = "[erased]";

const PREFIX: &str = "enc1:";
const AAD_LABEL: &[u8] = b"consent-ledger field v1\0";
const NONCE_BYTES: usize = 12;

/// A sealed field, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub kind: KeyKind,
    /// The keyed hash of the identifier whose key seals the field.
    pub key_ref: [u8; 32],
    data: Vec<u8>,
}

impl Sealed {
    /// Parses a stored field; `None` for anything that is not a sealed field.
    pub fn parse(stored: &str) -> Option<Sealed> {
        let rest = stored.strip_prefix(PREFIX)?;
        let mut parts = rest.splitn(3, ':');
        let kind = match parts.next()?.as_bytes() {
            [tag] => KeyKind::from_tag(*tag)?,
            _ => return None,
        };
        let key_ref: [u8; 32] = hex::decode(parts.next()?).ok()?.try_into().ok()?;
        let data = B64.decode(parts.next()?).ok()?;
        (data.len() > NONCE_BYTES).then_some(Sealed {
            kind,
            key_ref,
            data,
        })
    }

    /// The field's plaintext; `None` when `key` is not the key that sealed it or the field
    /// was altered.
    pub fn open(&self, key: &DataKey, context: &[u8]) -> Option<String> {
        let (nonce, sealed) = self.data.split_at(NONCE_BYTES);
        let aad = aad(self.kind, &self.key_ref, context);
        let plain = cipher(key)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

/// Seals `plaintext` under `key` (of `kind`, belonging to the identifier whose keyed hash is
/// `key_ref`), bound to `context` (the event id and the field's name).
pub fn seal(
    key: &DataKey,
    kind: KeyKind,
    key_ref: &[u8; 32],
    context: &[u8],
    plaintext: &str,
) -> String {
    let nonce: [u8; NONCE_BYTES] = super::random();
    let aad = aad(kind, key_ref, context);
    let sealed = cipher(key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: &aad,
            },
        )
        .expect("AES-GCM encrypts any field");
    format!(
        "{PREFIX}{}:{}:{}",
        kind.tag() as char,
        hex::encode(key_ref),
        B64.encode([&nonce[..], &sealed].concat())
    )
}

/// The context a field of an event is bound to: the event id and the field's name.
pub fn context(event_id: &uuid::Uuid, field: &str) -> Vec<u8> {
    [event_id.as_bytes().as_slice(), b"\0", field.as_bytes()].concat()
}

fn aad(kind: KeyKind, key_ref: &[u8; 32], context: &[u8]) -> Vec<u8> {
    [AAD_LABEL, &[kind.tag()], key_ref.as_slice(), context].concat()
}

fn cipher(key: &DataKey) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key.bytes()).expect("a 32-byte key")
}

/// The name a proof file gives the key of a sealed field of the event `event_id`:
/// `i:<ref>` or `t:<ref>` for an identifier's keys, `n:<event id>` for a notice key.
pub fn key_name(sealed: &Sealed, event_id: &uuid::Uuid) -> String {
    match sealed.kind {
        KeyKind::Notice => format!("n:{event_id}"),
        kind => format!("{}:{}", kind.tag() as char, hex::encode(sealed.key_ref)),
    }
}

/// `stored` with every sealed field opened by one of the keys `keys` finds for it, [`ERASED`]
/// where none opens it (or there is none). The one definition of an event's readable form:
/// the ledger's readers and the access export's verifier both use it.
pub fn open_event<E>(
    stored: &ConsentEvent,
    mut keys: impl FnMut(&Sealed) -> Result<Vec<DataKey>, E>,
) -> Result<ConsentEvent, E> {
    let mut e = stored.clone();
    let id = e.event_id;
    let mut open = |name: &str, value: &str| -> Result<String, E> {
        let Some(sealed) = Sealed::parse(value) else {
            return Ok(value.to_string());
        };
        let context = context(&id, name);
        Ok(keys(&sealed)?
            .iter()
            .find_map(|k| sealed.open(k, &context))
            .unwrap_or_else(|| ERASED.to_string()))
    };
    e.contact = Contact::from_stored(open("contact", e.contact.as_str())?);
    if let Some(c) = &e.linked_contact {
        e.linked_contact = Some(Contact::from_stored(open("linked_contact", c.as_str())?));
    }
    for (i, c) in e.linked.iter_mut().enumerate() {
        *c = Contact::from_stored(open(&format!("linked/{i}"), c.as_str())?);
    }
    if let Some(t) = &e.source.text {
        e.source.text = Some(open("source.text", t)?);
    }
    e.source.message_id = open("source.message_id", &e.source.message_id)?;
    if let Some(m) = &e.source.context_message_id {
        e.source.context_message_id = Some(open("source.context_message_id", m)?);
    }
    Ok(e)
}

/// Every sealed field of `stored`, with the field's name.
pub fn sealed_fields(stored: &ConsentEvent) -> Vec<(String, Sealed)> {
    let mut out = Vec::new();
    let mut add = |name: String, value: &str| {
        if let Some(s) = Sealed::parse(value) {
            out.push((name, s));
        }
    };
    add("contact".into(), stored.contact.as_str());
    if let Some(c) = &stored.linked_contact {
        add("linked_contact".into(), c.as_str());
    }
    for (i, c) in stored.linked.iter().enumerate() {
        add(format!("linked/{i}"), c.as_str());
    }
    if let Some(t) = &stored.source.text {
        add("source.text".into(), t);
    }
    add("source.message_id".into(), &stored.source.message_id);
    if let Some(m) = &stored.source.context_message_id {
        add("source.context_message_id".into(), m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_field_opens_with_its_key_and_context_only() {
        let key = DataKey::generate();
        let r = [3u8; 32];
        let ctx = context(&uuid::Uuid::from_u128(7), "contact");
        let stored = seal(&key, KeyKind::Identity, &r, &ctx, "+33612345678");
        assert!(!stored.contains("3361234"));
        let sealed = Sealed::parse(&stored).unwrap();
        assert_eq!(sealed.key_ref, r);
        assert_eq!(sealed.kind, KeyKind::Identity);
        assert_eq!(sealed.open(&key, &ctx).as_deref(), Some("+33612345678"));
        assert_eq!(sealed.open(&DataKey::generate(), &ctx), None);
        let other = context(&uuid::Uuid::from_u128(8), "contact");
        assert_eq!(sealed.open(&key, &other), None, "moved to another event");
        assert_ne!(
            stored,
            seal(&key, KeyKind::Identity, &r, &ctx, "+33612345678")
        );
    }

    #[test]
    fn anything_else_is_not_a_sealed_field() {
        for s in [
            "+33612345678",
            "enc1:x:00:AAAA",
            "enc1:i:zz:AAAA",
            "[erased]",
            "",
        ] {
            assert!(Sealed::parse(s).is_none(), "{s}");
        }
        let key = DataKey::generate();
        let stored = seal(&key, KeyKind::Text, &[1; 32], b"c", "STOP");
        let mut altered = stored.clone();
        altered.replace_range(5..6, "i");
        let parsed = Sealed::parse(&altered).unwrap();
        assert_eq!(
            parsed.open(&key, b"c"),
            None,
            "the kind is bound into the tag"
        );
    }
}
