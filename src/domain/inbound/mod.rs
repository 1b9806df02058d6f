//! Decoding of inbound records: WhatsApp Cloud API webhooks exactly as Meta posts them, and the
//! normalized message other channels (SMS gateways, our own adapters) send. Decoding is total:
//! any byte string yields either messages or a typed reason, never a panic, because one bad
//! record must not stop the STOPs queued behind it. One webhook may carry several messages; each
//! is decoded on its own so a malformed one does not take its neighbours down with it.
//!
//! Here: the decoded types and [`decode`], which tells the shapes apart. [`whatsapp`] holds
//! Meta's webhook format, `normalized` our own flat inbound and sent records.

mod consent;
pub mod identity;
mod normalized;
mod status;
pub mod whatsapp;

pub use consent::{ConsentWire, EraseWire};
pub use normalized::{NormalizedInbound, SentRecord};
pub use whatsapp::WhatsappWebhook;

use chrono::{DateTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::clock::Claimed;
use super::event::LinkSource;
use super::tenant::UnknownTenant;

/// WhatsApp and SMS both cap a message at this many characters; longer is not a real message.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Why a record (or one message inside it) was rejected; written to the dead-letter output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("unknown record shape: expected a WhatsApp webhook (\"object\":\"whatsapp_business_account\") or a record with \"type\":\"inbound\" or \"type\":\"sent\"")]
    UnknownShape,
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    #[error("invalid timestamp {0:?}: expected unix seconds")]
    InvalidTimestamp(String),
    #[error("text is {0} characters, over the {MAX_TEXT_CHARS} limit")]
    TextTooLong(usize),
    #[error("unknown tenant: {0}")]
    UnknownTenant(UnknownTenant),
    #[error("invalid contact {input:?}: {reason}")]
    InvalidContact { input: String, reason: String },
    /// A webhook for a business number no tenant lists (`phone_number_ids`, `sms_numbers`):
    /// a subscription that reaches the wrong service, or a number not configured yet.
    #[error("{field} {value} is in no tenant's {list}")]
    UnlistedNumber {
        field: &'static str,
        value: String,
        list: &'static str,
    },
}

impl DecodeError {
    /// A short stable code for counters and dead-letter headers.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::NotAnObject => "not_an_object",
            DecodeError::UnknownShape => "unknown_shape",
            DecodeError::Invalid { .. } => "invalid_field",
            DecodeError::InvalidTimestamp(_) => "invalid_timestamp",
            DecodeError::TextTooLong(_) => "text_too_long",
            DecodeError::UnknownTenant(_) => "unknown_tenant",
            DecodeError::InvalidContact { .. } => "invalid_contact",
            DecodeError::UnlistedNumber { .. } => "unknown_tenant",
        }
    }
}

/// Which tenant a message belongs to, before the config resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantRef {
    /// WhatsApp `metadata.phone_number_id`; the config may map it to a tenant name.
    PhoneNumberId(String),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preference {
    Stop,
    Resume,
}

/// What the customer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    /// A quick-reply or interactive button: its machine payload and the title the customer saw.
    Button {
        payload: String,
        title: Option<String>,
    },
    /// WhatsApp's own "stop marketing messages" control (`user_preferences` webhook).
    Preference(Preference),
    /// An opt-out the SMS provider already matched and answered (Twilio's Advanced Opt-Out,
    /// `OptOutType=STOP`): `word` is the provider's, `text` what the customer wrote, which
    /// may be a word the ledger's own tables do not list.
    ProviderOptOut {
        word: String,
        text: String,
    },
    /// No words from the customer, only who they are: a number or BSUID change notice, their
    /// own number shared on request, or any other message that names two of their identifiers.
    /// It matters for its [`LinkClaim`]s alone.
    Notice {
        /// Whether every message of the person names the same pair again (`from` with
        /// `from_user_id`), so that one that cannot be filed (its business number is not a
        /// tenant) is ignored like any other chat; a change notice comes once and is not.
        recurs: bool,
    },
}

/// Two identifiers that one record names for the same person, as written (normalized with the
/// tenant's region when resolved). The record is the proof; nothing is inferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaim {
    /// The identifier the record came under; for a change, the old one.
    pub contact: String,
    pub linked: String,
    pub source: LinkSource,
}

/// One inbound message, decoded but not yet resolved against the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub tenant: TenantRef,
    pub channel: String,
    pub message_id: String,
    /// The sender as given (WhatsApp: digits without '+'); normalized later with the tenant region.
    pub from: String,
    /// The time the message says it was sent: never trusted as is, the commit path bounds it
    /// ([`crate::domain::clock`]), so no timestamp can forge the order or lose the message.
    pub claimed_at: Claimed,
    pub content: Content,
    pub context_message_id: Option<String>,
    pub campaign_id: Option<String>,
    pub language: Option<String>,
    /// The sender's other identifiers this record names, to be linked to the person.
    pub links: Vec<LinkClaim>,
    /// Where the record holds it (a JSON pointer into a webhook), so that a dead letter of it
    /// says which message failed; `None` for a record that is one message.
    pub path: Option<String>,
}

/// One item of a record: a message, something deliberately ignored, or a rejected part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Message(Message),
    /// A message a campaign sent: what opt-outs are attributed to and rates are computed over.
    Sent(SentMessage),
    /// A WhatsApp delivery status of a business-initiated message, kept for delivery counts.
    Status(DeliveryStatus),
    /// A decision the API or an import received, forwarded by scale-out (`consent.rs`).
    Consent(Box<ConsentWire>),
    /// An erasure the API received, forwarded by scale-out.
    Erase(Box<EraseWire>),
    /// Statuses, reactions, media…: valid input that carries no consent meaning.
    Ignored(&'static str),
    Rejected {
        path: String,
        error: DecodeError,
    },
}

/// The category WhatsApp bills a business message under; only marketing sends can be the
/// campaign a window-attributed opt-out answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SentCategory {
    Marketing,
    Utility,
    Authentication,
}

/// A decoded sent record, its recipient not yet normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub tenant: TenantRef,
    pub message_id: String,
    pub to: String,
    pub campaign_id: String,
    pub category: SentCategory,
    pub sent_at: DateTime<Utc>,
}

/// Meta's status of a message the business sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Sent,
    Delivered,
    Read,
    Failed,
}

/// One `statuses` entry that carries a conversation or pricing category, i.e. a billed
/// business-initiated message: the only statuses with analytics value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryStatus {
    pub tenant: TenantRef,
    pub message_id: String,
    pub state: DeliveryState,
    pub at: DateTime<Utc>,
    /// `pricing.category`, else `conversation.origin.type` (`marketing`, `utility`, …).
    pub category: String,
    /// Where the webhook holds it (a JSON pointer), like [`Message::path`].
    pub path: Option<String>,
}

impl Item {
    /// The item, marked with where its record holds it: the pointer a dead letter of an item
    /// rejected after decoding (unknown tenant, unusable sender) names, as the decoder names
    /// the parts it rejects itself.
    pub(super) fn at(self, path: String) -> Item {
        match self {
            Item::Message(mut m) => {
                m.path = Some(path);
                Item::Message(m)
            }
            Item::Status(mut s) => {
                s.path = Some(path);
                Item::Status(s)
            }
            other => other,
        }
    }
}

/// Decodes one record (one line of a file, one Kafka message value).
pub fn decode(bytes: &[u8]) -> Result<Vec<Item>, DecodeError> {
    // Most records are WhatsApp webhooks that decode: read straight into the webhook's
    // types, without building the whole record as a `Value` first. Anything else (another
    // shape, a defect) takes the general path, which gives every error its exact words.
    // serde skips the members it does not read without checking them, so the direct path
    // takes only records that are UTF-8 throughout and have no `\u` escape (that could be
    // half a character): nearly all of Meta's. The others may not be JSON at all.
    let checked = std::str::from_utf8(bytes).is_ok() && !bytes.windows(2).any(|w| w == b"\\u");
    if let Some(hook) = checked
        .then(|| serde_json::from_slice::<WhatsappWebhook>(bytes).ok())
        .flatten()
    {
        if hook.object == "whatsapp_business_account" {
            return Ok(whatsapp::decode_webhook(hook));
        }
    }
    decode_value(bytes)
}

/// The general path of [`decode`]: the record as a `Value`, then by its shape.
fn decode_value(bytes: &[u8]) -> Result<Vec<Item>, DecodeError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let object = value.as_object().ok_or(DecodeError::NotAnObject)?;
    if object.get("object").and_then(|v| v.as_str()) == Some("whatsapp_business_account") {
        let hook: WhatsappWebhook = serde_json::from_value(value)
            .map_err(|e| invalid("WhatsApp webhook", e.to_string()))?;
        return Ok(whatsapp::decode_webhook(hook));
    }
    match object.get("type").and_then(|v| v.as_str()) {
        Some("inbound") => {
            let record: NormalizedInbound = serde_json::from_value(value)
                .map_err(|e| invalid("inbound record", e.to_string()))?;
            Ok(vec![Item::Message(normalized::decode_normalized(record)?)])
        }
        Some("consent") => {
            let record: ConsentWire = serde_json::from_value(value)
                .map_err(|e| invalid("consent record", e.to_string()))?;
            Ok(vec![Item::Consent(Box::new(record))])
        }
        Some("erase") => {
            let record: EraseWire = serde_json::from_value(value)
                .map_err(|e| invalid("erase record", e.to_string()))?;
            Ok(vec![Item::Erase(Box::new(record))])
        }
        Some("sent") => {
            let record: SentRecord =
                serde_json::from_value(value).map_err(|e| invalid("sent record", e.to_string()))?;
            Ok(vec![Item::Sent(normalized::decode_sent(record)?)])
        }
        _ => Err(DecodeError::UnknownShape),
    }
}

pub(super) fn invalid(what: &'static str, detail: String) -> DecodeError {
    DecodeError::Invalid { what, detail }
}

/// A record of a known shape whose content cannot be used, for the pipeline's own checks.
pub fn invalid_record(what: &'static str, detail: String) -> DecodeError {
    invalid(what, detail)
}

pub(super) fn check_content(content: &Content) -> Result<(), DecodeError> {
    let text = match content {
        Content::Text(t) | Content::ProviderOptOut { text: t, .. } => t.as_str(),
        Content::Button { payload, .. } => payload.as_str(),
        Content::Preference(_) | Content::Notice { .. } => return Ok(()),
    };
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(DecodeError::TextTooLong(chars));
    }
    Ok(())
}

/// WhatsApp timestamps are unix seconds in a string. Anything before 2000 or after 2200 is a
/// unit mistake (milliseconds) or garbage. Only delivery statuses (analytics) are read with
/// this; a customer's message time is a [`Claimed`], corrected rather than rejected.
pub fn unix_seconds(s: &str) -> Result<DateTime<Utc>, DecodeError> {
    let secs: i64 = s
        .trim()
        .parse()
        .map_err(|_| DecodeError::InvalidTimestamp(s.to_string()))?;
    if !(946_684_800..=7_258_118_400).contains(&secs) {
        return Err(DecodeError::InvalidTimestamp(s.to_string()));
    }
    Utc.timestamp_opt(secs, 0)
        .single()
        .ok_or_else(|| DecodeError::InvalidTimestamp(s.to_string()))
}

#[cfg(test)]
mod tests;
