//! A signed Meta notification, cut into one record per message, status and preference. Each
//! record keeps Meta's envelope (`object`, the entry, the change, the value's `metadata` and
//! `contacts`) around its one item, so whoever reads it, the consumer of the inbound topic or
//! the commit path, reads it as any webhook; and each is keyed by the person it is about, so
//! one person's records stay in one partition and in order.
//!
//! What a retry cannot fix is set apart with its reason, to be dead-lettered: a body that is
//! not a WhatsApp webhook, and items for a business number no tenant lists.

use serde_json::{Map, Value};

use super::Part;
use crate::config::Settings;
use crate::domain::contact;
use crate::domain::inbound::identity::wa_number;
use crate::domain::inbound::{self, DecodeError};
use crate::domain::tenant::TenantId;
use crate::pipeline::Rejection;

/// The arrays of a change's value that hold one item each.
const ITEMS: [&str; 3] = ["messages", "statuses", "user_preferences"];

/// Every record of a Meta notification, and what cannot be used, in body order.
pub fn whatsapp_parts(settings: &Settings, body: &[u8]) -> Vec<Part> {
    let whole = |error: DecodeError| {
        vec![Part::Unusable {
            bytes: body.to_vec(),
            rejection: Rejection { error, path: None },
        }]
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return whole(DecodeError::InvalidJson(e.to_string())),
    };
    if value.get("object").and_then(Value::as_str) != Some("whatsapp_business_account") {
        return whole(DecodeError::Invalid {
            what: "WhatsApp webhook",
            detail: "\"object\" is not \"whatsapp_business_account\"".into(),
        });
    }
    // Items are read as the ledger reads them; a body it would refuse whole is refused here.
    if let Err(error) = inbound::decode(body) {
        return whole(error);
    }
    let mut parts = Vec::new();
    let entries = value["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (e, entry) in entries.iter().enumerate() {
        let changes = entry["changes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (c, change) in changes.iter().enumerate() {
            let base = format!("/entry/{e}/changes/{c}/value");
            let tenant = tenant_of(settings, &change["value"]);
            for list in ITEMS {
                let items = change["value"][list]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for (i, item) in items.iter().enumerate() {
                    let bytes = envelope(entry, change, list, item);
                    parts.push(match &tenant {
                        Ok(tenant) => Part::Record {
                            key: key(settings, tenant, list, item, &change["value"]),
                            bytes,
                        },
                        Err(error) => Part::Unusable {
                            bytes,
                            rejection: Rejection {
                                error: error.clone(),
                                path: Some(format!("{base}/{list}/{i}")),
                            },
                        },
                    });
                }
            }
        }
    }
    parts
}

/// The tenant of a change: its `metadata.phone_number_id` as one tenant lists it.
fn tenant_of(settings: &Settings, value: &Value) -> Result<TenantId, DecodeError> {
    let Some(id) = value.pointer("/metadata/phone_number_id").and_then(text) else {
        return Err(DecodeError::Invalid {
            what: "WhatsApp webhook",
            detail: "missing metadata.phone_number_id".into(),
        });
    };
    settings
        .tenant_of_phone_number_id(&id)
        .cloned()
        .ok_or(DecodeError::UnlistedNumber {
            field: "metadata.phone_number_id",
            value: id,
            list: "phone_number_ids",
        })
}

/// The webhook as Meta sent it, with `item` alone in its `list`.
fn envelope(entry: &Value, change: &Value, list: &str, item: &Value) -> Vec<u8> {
    let mut value = change["value"].as_object().cloned().unwrap_or_default();
    for other in ITEMS {
        value.remove(other);
    }
    value.insert(list.to_string(), Value::Array(vec![item.clone()]));
    let mut one_change = change.as_object().cloned().unwrap_or_default();
    one_change.insert("value".into(), Value::Object(value));
    let mut one_entry = entry.as_object().cloned().unwrap_or_default();
    one_entry.insert(
        "changes".into(),
        Value::Array(vec![Value::Object(one_change)]),
    );
    let mut hook = Map::new();
    hook.insert("object".into(), "whatsapp_business_account".into());
    hook.insert("entry".into(), Value::Array(vec![Value::Object(one_entry)]));
    serde_json::to_vec(&Value::Object(hook)).expect("a JSON value serializes")
}

/// `tenant:BSUID` when the item names the person's business-scoped user ID (the parent ID
/// only when it names no other), else `tenant:E.164`: the rule `ConsentEvent::kafka_key`
/// keys `consent.events` by, so one person's records share a partition whichever identifier
/// each came with.
fn key(settings: &Settings, tenant: &TenantId, list: &str, item: &Value, value: &Value) -> String {
    let field = |names: &[&str]| names.iter().find_map(|n| item.get(*n).and_then(text));
    let (mut user, mut parent, mut number) = match list {
        "messages" => (
            field(&["from_user_id"]),
            field(&["from_parent_user_id"]),
            field(&["from"]),
        ),
        "statuses" => (
            field(&["recipient_user_id"]),
            field(&["recipient_parent_user_id", "parent_recipient_user_id"]),
            field(&["recipient_id"]),
        ),
        _ => (
            field(&["user_id"]),
            field(&["parent_user_id"]),
            field(&["wa_id"]),
        ),
    };
    // A message that names nobody is the single `contacts` profile's (as the decoder reads it).
    if (user.is_none() && number.is_none()) && list == "messages" {
        if let Some([only]) = value["contacts"].as_array().map(Vec::as_slice) {
            user = only.get("user_id").and_then(text);
            parent = parent.or_else(|| only.get("parent_user_id").and_then(text));
            number = only.get("wa_id").and_then(text);
        }
    }
    let person = user.or(parent).or_else(|| {
        number.map(|n| {
            let region = settings.profile(tenant).region;
            contact::normalize(&wa_number(&n), region)
                .map(|c| c.as_str().to_string())
                .unwrap_or(n)
        })
    });
    format!("{tenant}:{}", person.unwrap_or_default())
}

/// A string field, or a number Meta wrote without quotes; empty is absent.
fn text(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings::from_file(
            toml::from_str("[tenants.acme]\nphone_number_ids = [\"106540352242922\"]\n").unwrap(),
        )
        .unwrap()
    }

    fn hook(phone_number_id: &str, value: Value) -> Vec<u8> {
        let mut value = value;
        value["messaging_product"] = json!("whatsapp");
        value["metadata"] =
            json!({"display_phone_number": "15550001234", "phone_number_id": phone_number_id});
        json!({"object": "whatsapp_business_account",
               "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}]})
        .to_string()
        .into_bytes()
    }

    fn records(parts: &[Part]) -> Vec<(String, Value)> {
        parts
            .iter()
            .map(|p| match p {
                Part::Record { key, bytes } => {
                    (key.clone(), serde_json::from_slice(bytes).unwrap())
                }
                Part::Unusable { rejection, .. } => panic!("unusable: {rejection:?}"),
            })
            .collect()
    }

    #[test]
    fn one_record_per_item_each_in_its_envelope_and_keyed_by_its_person() {
        let body = hook(
            "106540352242922",
            json!({
                "contacts": [{"profile": {"name": "A"}, "wa_id": "33612345678", "user_id": "FR.1234"}],
                "messages": [
                    {"from": "33612345678", "from_user_id": "FR.1234", "id": "wamid.1", "timestamp": "1", "type": "text", "text": {"body": "STOP"}},
                    {"from": "33655501234", "id": "wamid.2", "timestamp": "2", "type": "text", "text": {"body": "hi"}}
                ],
                "statuses": [{"id": "wamid.9", "status": "read", "timestamp": "3", "recipient_id": "33655501235"}]
            }),
        );
        let got = records(&whatsapp_parts(&settings(), &body));
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["acme:FR.1234", "acme:+33655501234", "acme:+33655501235"]
        );
        for (_, record) in &got {
            let value = &record["entry"][0]["changes"][0]["value"];
            let items: usize = ITEMS
                .iter()
                .map(|l| value[*l].as_array().map_or(0, Vec::len))
                .sum();
            assert_eq!(items, 1, "{record}");
            assert_eq!(value["metadata"]["phone_number_id"], "106540352242922");
            assert_eq!(value["contacts"][0]["user_id"], "FR.1234");
            assert_eq!(record["entry"][0]["id"], "WABA");
            // Each record is a webhook the ledger reads on its own.
            assert!(inbound::decode(record.to_string().as_bytes()).is_ok());
        }
        assert_eq!(
            got[0].1["entry"][0]["changes"][0]["value"]["messages"][0]["id"],
            "wamid.1"
        );
    }

    #[test]
    fn a_preference_by_user_id_is_keyed_by_it_and_a_parent_only_without_another() {
        let body = hook(
            "106540352242922",
            json!({"user_preferences": [
                {"wa_id": "33612345678", "user_id": "FR.1234", "category": "marketing_messages", "value": "stop", "timestamp": 1},
                {"parent_user_id": "FR.ENT.99", "wa_id": "33612345678", "category": "marketing_messages", "value": "stop", "timestamp": 2}
            ]}),
        );
        let keys: Vec<String> = records(&whatsapp_parts(&settings(), &body))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["acme:FR.1234", "acme:FR.ENT.99"]);
    }

    #[test]
    fn an_unlisted_number_and_a_body_that_is_no_webhook_are_set_apart_with_their_reason() {
        let body = hook(
            "999",
            json!({"messages": [{"from": "33612345678", "id": "wamid.1", "timestamp": "1", "type": "text", "text": {"body": "STOP"}}]}),
        );
        let parts = whatsapp_parts(&settings(), &body);
        let [Part::Unusable { rejection, bytes }] = parts.as_slice() else {
            panic!("{parts:?}")
        };
        assert_eq!(rejection.error.code(), "unknown_tenant");
        assert_eq!(
            rejection.path.as_deref(),
            Some("/entry/0/changes/0/value/messages/0")
        );
        assert!(
            inbound::decode(bytes).is_ok(),
            "the dead letter can be replayed once listed"
        );
        for bad in [
            &b"not json"[..],
            br#"{"object":"page","entry":[]}"#,
            br#"{"object":"whatsapp_business_account"}"#,
        ] {
            let parts = whatsapp_parts(&settings(), bad);
            assert!(
                matches!(
                    parts.as_slice(),
                    [Part::Unusable {
                        rejection: Rejection { path: None, .. },
                        ..
                    }]
                ),
                "{parts:?}"
            );
        }
        // A change without items (an account update) has nothing to hand on.
        let quiet = hook("106540352242922", json!({}));
        assert!(whatsapp_parts(&settings(), &quiet).is_empty());
    }
}
