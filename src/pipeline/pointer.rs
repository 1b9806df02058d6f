//! Where each decoded item of a record sits in it, as a JSON pointer, for the dead letter of
//! an item rejected after decoding (an unknown tenant, a sender that is not a contact). The
//! decoder names the parts it rejects itself; these are the others, and without a pointer a
//! dead letter would not say which message of a webhook failed.
//!
//! A WhatsApp webhook is walked in the decoder's order: for each entry and change, one item
//! per message, status and user preference, or a single one for a change without metadata
//! that carries messages. A record of any other shape is one item, the whole record, which
//! needs no pointer. When the walk does not find as many items as were decoded, it names none
//! rather than a wrong one; a test keeps the walk and the decoder in step.

use serde_json::Value;

/// One pointer (or `None`) per item of the `decoded` items of `bytes`, in order.
pub(super) fn item_paths(bytes: &[u8], decoded: usize) -> Vec<Option<String>> {
    let paths = webhook_paths(bytes).unwrap_or_default();
    if paths.len() == decoded {
        paths.into_iter().map(Some).collect()
    } else {
        vec![None; decoded]
    }
}

fn webhook_paths(bytes: &[u8]) -> Option<Vec<String>> {
    let hook: Value = serde_json::from_slice(bytes).ok()?;
    if hook.get("object")?.as_str()? != "whatsapp_business_account" {
        return None;
    }
    let len = |v: &Value, field: &str| v.get(field).and_then(Value::as_array).map_or(0, Vec::len);
    let mut paths = Vec::new();
    for (e, entry) in hook.get("entry")?.as_array()?.iter().enumerate() {
        let changes = entry.get("changes").and_then(Value::as_array);
        for (c, change) in changes.into_iter().flatten().enumerate() {
            let base = format!("/entry/{e}/changes/{c}/value");
            let value = change.get("value")?;
            if value.get("metadata").map_or(true, Value::is_null) {
                if len(value, "messages") + len(value, "user_preferences") > 0 {
                    paths.push(format!("{base}/metadata"));
                }
                continue;
            }
            for field in ["messages", "statuses", "user_preferences"] {
                paths.extend((0..len(value, field)).map(|i| format!("{base}/{field}/{i}")));
            }
        }
    }
    Some(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inbound::{decode, Item};

    /// Two changes, the second without metadata, with messages, statuses and preferences.
    const HOOK: &str = r#"{"object":"whatsapp_business_account","entry":[
        {"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
            "metadata":{"phone_number_id":"106540352242922"},
            "messages":[
                {"from":"33612345671","id":"wamid.1","timestamp":"1763978400","type":"text","text":{"body":"STOP"}},
                {"from":"33612345672","id":"wamid.2","timestamp":"1763978400","type":"text"}],
            "statuses":[{"id":"wamid.s","status":"read","timestamp":"1763978400","recipient_id":"33612345673"}],
            "user_preferences":[{"wa_id":"33612345674","category":"marketing_messages","value":"stop","timestamp":1763978400}]}}]},
        {"id":"2","changes":[{"field":"messages","value":{"messages":[
                {"from":"33612345675","id":"wamid.3","timestamp":"1763978400","type":"text","text":{"body":"STOP"}}]}}]}]}"#;

    #[test]
    fn each_item_gets_the_pointer_the_decoder_gives_its_rejected_ones() {
        let items = decode(HOOK.as_bytes()).unwrap();
        let paths = item_paths(HOOK.as_bytes(), items.len());
        assert_eq!(
            paths,
            [
                "/entry/0/changes/0/value/messages/0",
                "/entry/0/changes/0/value/messages/1",
                "/entry/0/changes/0/value/statuses/0",
                "/entry/0/changes/0/value/user_preferences/0",
                "/entry/1/changes/0/value/metadata",
            ]
            .map(|p| Some(p.to_string()))
        );
        // Where the decoder rejected an item itself, it named the same place.
        for (item, path) in items.iter().zip(&paths) {
            if let Item::Rejected { path: own, .. } = item {
                assert_eq!(Some(own), path.as_ref());
            }
        }
        assert!(matches!(items[1], Item::Rejected { .. }));
        assert!(matches!(items[4], Item::Rejected { .. }));
    }

    #[test]
    fn other_records_and_a_count_that_does_not_match_name_nothing() {
        let normalized = br#"{"type":"inbound","tenant":"shop","channel":"sms","message_id":"m","from":"12","received_at":"2026-01-01T00:00:00Z","text":"STOP"}"#;
        assert_eq!(item_paths(normalized, 1), [None]);
        assert_eq!(item_paths(HOOK.as_bytes(), 3), [None, None, None]);
        assert_eq!(item_paths(b"{not json", 1), [None]);
    }
}
