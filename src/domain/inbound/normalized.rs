//! The normalized records other channels send (SMS gateways, our own adapters): one inbound
//! message, or one message a campaign sent, each already in our own flat format.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::clock::Claimed;

use super::{
    check_content, invalid, Content, DecodeError, LinkClaim, Message, SentCategory, SentMessage,
    TenantRef,
};
use crate::domain::event::LinkSource;

/// The normalized inbound record (schemas/inbound-message.v1.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NormalizedInbound {
    /// Always `inbound`.
    #[serde(rename = "type")]
    pub record_type: String,
    pub tenant: String,
    /// `sms`, `whatsapp`, `rcs`, …
    pub channel: String,
    /// Unique per tenant: redeliveries of the same id are one message.
    pub message_id: String,
    /// The sender: a phone number in any common spelling (E.164 preferred), or a WhatsApp
    /// business-scoped user ID as written (`US.13491208655302741918`).
    pub from: String,
    /// The sender's business-scoped user ID, when `from` is a number and the channel gave
    /// both: the ledger links the two, so a STOP under either stops marketing to both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_id: Option<String>,
    /// RFC 3339 time the customer sent the message. Never trusted beyond the clock bounds: a
    /// time out of range, unreadable or missing is processed at the recording time and kept in
    /// the event's `source.claimed_time`.
    #[serde(default, deserialize_with = "lenient_time")]
    pub received_at: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub button_payload: Option<String>,
    #[serde(default)]
    pub context_message_id: Option<String>,
    #[serde(default)]
    pub campaign_id: Option<String>,
    /// ISO 639-1 language of the conversation (`fr`, `en`), when the sender knows it.
    #[serde(default)]
    pub language: Option<String>,
    /// The SMS provider already matched an opt-out and answered the customer (Twilio's
    /// Advanced Opt-Out: `OptOutType=STOP`): the provider's word, `STOP`. The message is an
    /// opt-out whatever `text` says, recorded with `source.kind = provider`, and the ledger
    /// sends no confirmation of its own, so the customer gets one, not two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_opt_out: Option<String>,
}

/// A message a campaign sent (schemas/sent-message.v1.json), on the same inputs as inbound
/// records: the denominator of every opt-out rate and the target of attribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SentRecord {
    /// Always `sent`.
    #[serde(rename = "type")]
    pub record_type: String,
    pub tenant: String,
    /// The id the channel gave the message (`wamid.…`, SMS id): what a reply's
    /// `context_message_id` and a delivery status point to. Unique per tenant.
    pub message_id: String,
    /// The recipient's phone number in any common spelling; E.164 preferred.
    pub to: String,
    pub campaign_id: String,
    pub category: SentCategory,
    /// RFC 3339 time the message was sent.
    pub sent_at: String,
    /// `whatsapp`, `sms`, …
    #[serde(default)]
    pub channel: Option<String>,
}

pub(super) fn decode_normalized(r: NormalizedInbound) -> Result<Message, DecodeError> {
    if r.message_id.trim().is_empty() {
        return Err(invalid("message_id", "must not be empty".into()));
    }
    let claimed_at = r.received_at.map(Claimed::rfc3339).unwrap_or_default();
    let provider_word = r
        .provider_opt_out
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty());
    let content = match (provider_word, r.button_payload, r.text) {
        (Some(word), payload, text) => Content::ProviderOptOut {
            word,
            text: text.or(payload).unwrap_or_default(),
        },
        (None, Some(payload), title) => Content::Button { payload, title },
        (None, None, Some(text)) => Content::Text(text),
        (None, None, None) => {
            return Err(invalid(
                "inbound record",
                "needs text, button_payload or provider_opt_out".into(),
            ))
        }
    };
    check_content(&content)?;
    let links = r
        .from_user_id
        .filter(|id| !id.trim().is_empty() && id.trim() != r.from.trim())
        .map(|id| LinkClaim {
            contact: r.from.clone(),
            linked: id,
            source: LinkSource::Message,
        })
        .into_iter()
        .collect();
    Ok(Message {
        tenant: TenantRef::Name(r.tenant),
        channel: r.channel,
        message_id: r.message_id,
        from: r.from,
        claimed_at,
        content,
        context_message_id: r.context_message_id,
        campaign_id: r.campaign_id,
        language: r.language,
        links,
        path: None,
    })
}

/// A time of any JSON type, as its text: a producer that writes a number or an object there
/// still gets its STOP processed (at the recording time), with what it wrote kept as proof.
fn lenient_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

pub(super) fn decode_sent(r: SentRecord) -> Result<SentMessage, DecodeError> {
    for (what, v) in [
        ("message_id", &r.message_id),
        ("campaign_id", &r.campaign_id),
        ("tenant", &r.tenant),
    ] {
        if v.trim().is_empty() {
            return Err(invalid(what, "must not be empty".into()));
        }
    }
    let sent_at = DateTime::parse_from_rfc3339(&r.sent_at)
        .map_err(|e| invalid("sent_at", format!("{:?} is not RFC 3339 ({e})", r.sent_at)))?
        .with_timezone(&Utc);
    Ok(SentMessage {
        tenant: TenantRef::Name(r.tenant),
        message_id: r.message_id,
        to: r.to,
        campaign_id: r.campaign_id,
        category: r.category,
        sent_at,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{decode, Item};
    use super::*;

    fn message(json: &str) -> Message {
        match decode(json.as_bytes()).unwrap().pop() {
            Some(Item::Message(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_provider_opt_out_keeps_the_providers_word_and_the_customers_text() {
        let m = message(
            r#"{"type":"inbound","tenant":"acme","channel":"sms","message_id":"SM1","from":"+14155550100","text":"Please no more","provider_opt_out":"STOP"}"#,
        );
        assert_eq!(
            m.content,
            Content::ProviderOptOut {
                word: "STOP".into(),
                text: "Please no more".into()
            }
        );
        // Without a text (an MMS with only a picture), it is still the provider's opt-out.
        let m = message(
            r#"{"type":"inbound","tenant":"acme","channel":"sms","message_id":"SM2","from":"+14155550100","provider_opt_out":"STOP"}"#,
        );
        assert!(matches!(m.content, Content::ProviderOptOut { .. }));
        // An empty word is no claim: the text is classified as usual.
        let m = message(
            r#"{"type":"inbound","tenant":"acme","channel":"sms","message_id":"SM3","from":"+14155550100","text":"hi","provider_opt_out":" "}"#,
        );
        assert_eq!(m.content, Content::Text("hi".into()));
    }
}
