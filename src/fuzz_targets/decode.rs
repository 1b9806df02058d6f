//! The inbound decoder (`domain::inbound::decode`), on any bytes a producer can put on the
//! inbound topic or in an ingested file, then the pure stages the pipeline runs next.
//!
//! Properties: decoding is total (items or a typed reason, never a panic) and the same every
//! time; only bytes that are not JSON are `invalid_json`; every rejected part is located by a
//! JSON pointer whose parent is in the record; no decoded text is over the channel limit; the
//! classification of what was decoded never panics and a button stays a quick reply; no
//! claimed time is effective past now plus the skew or before the earliest time (invariant 7).

use std::sync::OnceLock;

use crate::domain::clock::ClockBounds;
use crate::domain::contact::Contact;
use crate::domain::decide::classify;
use crate::domain::event::SourceKind;
use crate::domain::inbound::{decode, Content, DecodeError, Item, MAX_TEXT_CHARS};
use crate::domain::keywords::KeywordSet;
use chrono::Utc;
use serde_json::Value;

fn keywords() -> &'static KeywordSet {
    static SET: OnceLock<KeywordSet> = OnceLock::new();
    SET.get_or_init(|| KeywordSet::defaults(KeywordSet::builtin_languages()))
}

/// The target's properties on one input: panics where one does not hold.
pub fn check(data: &[u8]) {
    let decoded = decode(data);
    assert_eq!(decoded, decode(data), "decoding is not deterministic");
    let json = serde_json::from_slice::<Value>(data);
    let items = match (decoded, json) {
        (Err(DecodeError::InvalidJson(_)), Err(_)) => return,
        (Err(DecodeError::InvalidJson(e)), Ok(_)) => panic!("JSON read as invalid JSON: {e}"),
        (_, Err(e)) => panic!("bytes that are not JSON decoded without invalid_json: {e}"),
        (Err(e), Ok(_)) => {
            assert!(!e.to_string().is_empty() && !e.code().is_empty());
            return;
        }
        (Ok(items), Ok(record)) => (items, record),
    };
    let (items, record) = items;
    let bounds = ClockBounds::default();
    let now = Utc::now();
    for item in &items {
        match item {
            Item::Rejected { path, error } => {
                let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
                assert!(
                    path.starts_with('/') && record.pointer(parent).is_some(),
                    "rejected part {path:?} is not in the record ({error})"
                );
                assert!(!error.to_string().is_empty() && !error.code().is_empty());
            }
            Item::Message(m) => {
                if let Content::Text(text) | Content::Button { payload: text, .. } = &m.content {
                    let chars = text.chars().count();
                    assert!(
                        chars <= MAX_TEXT_CHARS,
                        "a {chars}-character text was decoded"
                    );
                }
                let c = classify(m, keywords());
                if matches!(m.content, Content::Button { .. }) {
                    assert_eq!(c.kind, SourceKind::QuickReply);
                }
                let effective = bounds.effective(&m.claimed_at, now);
                assert!(
                    effective.at <= now + bounds.max_skew && effective.at >= bounds.earliest,
                    "claimed time {:?} took effect at {}",
                    m.claimed_at.raw,
                    effective.at
                );
            }
            Item::Consent(wire) => {
                // Whatever its fields hold, its checks give an error, never a panic.
                let contact = Contact::from_stored(wire.contact.clone());
                let _ = (**wire).clone().into_record(contact);
            }
            Item::Sent(_) | Item::Status(_) | Item::Erase(_) | Item::Ignored(_) => {}
        }
    }
}
