//! Decoding of inbound records: WhatsApp Cloud API webhooks exactly as Meta posts them, and the
//! normalized message other channels (SMS gateways, our own adapters) send. Decoding is total:
//! any byte string yields either messages or a typed reason, never a panic, because one bad
//! record must not stop the STOPs queued behind it. One webhook may carry several messages; each
//! is decoded on its own so a malformed one does not take its neighbours down with it.

use chrono::{DateTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

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
    UnknownTenant(String),
    #[error("invalid contact {input:?}: {reason}")]
    InvalidContact { input: String, reason: String },
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
}

/// One inbound message, decoded but not yet resolved against the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub tenant: TenantRef,
    pub channel: String,
    pub message_id: String,
    /// The sender as given (WhatsApp: digits without '+'); normalized later with the tenant region.
    pub from: String,
    pub occurred_at: DateTime<Utc>,
    pub content: Content,
    pub context_message_id: Option<String>,
    pub campaign_id: Option<String>,
    pub language: Option<String>,
}

/// One item of a record: a message, something deliberately ignored, or a rejected part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Message(Message),
    /// A message a campaign sent: what opt-outs are attributed to and rates are computed over.
    Sent(SentMessage),
    /// A WhatsApp delivery status of a business-initiated message, kept for delivery counts.
    Status(DeliveryStatus),
    /// Statuses, reactions, media…: valid input that carries no consent meaning.
    Ignored(&'static str),
    Rejected {
        path: String,
        error: DecodeError,
    },
}

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
    /// The sender's phone number in any common spelling; E.164 preferred.
    pub from: String,
    /// RFC 3339 time the customer sent the message.
    pub received_at: String,
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
}

/// A value that failed to decode is kept with its error instead of failing the whole webhook.
#[derive(Debug, Clone)]
pub enum Lenient<T> {
    Ok(T),
    Err(String),
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(match serde_json::from_value(value) {
            Ok(v) => Lenient::Ok(v),
            Err(e) => Lenient::Err(e.to_string()),
        })
    }
}

impl<T: JsonSchema> JsonSchema for Lenient<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// A WhatsApp Cloud API webhook (the subset of Meta's format that consent needs).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct WhatsappWebhook {
    /// Always `whatsapp_business_account`.
    pub object: String,
    pub entry: Vec<WaEntry>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaEntry {
    /// The WhatsApp Business Account id.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub changes: Vec<WaChange>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaChange {
    /// `messages` or `user_preferences` (others are ignored).
    #[serde(default)]
    pub field: Option<String>,
    pub value: WaValue,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaValue {
    #[serde(default)]
    pub messaging_product: Option<String>,
    pub metadata: Option<WaMetadata>,
    #[serde(default)]
    pub messages: Vec<Lenient<WaMessage>>,
    /// Delivery statuses of messages the business sent: no consent meaning, but those with a
    /// pricing or conversation category count as deliveries of a campaign.
    #[serde(default)]
    pub statuses: Vec<serde_json::Value>,
    #[serde(default)]
    pub user_preferences: Vec<Lenient<WaUserPreference>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaMetadata {
    #[serde(default)]
    pub display_phone_number: Option<String>,
    /// The business number that received the message: the tenant, unless the config maps it.
    pub phone_number_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaMessage {
    /// The customer's number, digits without '+'.
    pub from: String,
    /// `wamid.…`
    pub id: String,
    /// Unix seconds, as a string.
    pub timestamp: String,
    #[serde(rename = "type")]
    pub message_type: String,
    #[serde(default)]
    pub text: Option<WaText>,
    #[serde(default)]
    pub button: Option<WaButton>,
    #[serde(default)]
    pub interactive: Option<WaInteractive>,
    /// The business message this one answers; for a template quick reply, the campaign message.
    #[serde(default)]
    pub context: Option<WaContext>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaText {
    pub body: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaButton {
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaInteractive {
    #[serde(rename = "type", default)]
    pub interactive_type: Option<String>,
    #[serde(default)]
    pub button_reply: Option<WaReply>,
    #[serde(default)]
    pub list_reply: Option<WaReply>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaReply {
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaContext {
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaUserPreference {
    pub wa_id: String,
    /// `marketing_messages`; other categories are ignored.
    pub category: String,
    /// `stop` or `resume`.
    pub value: String,
    /// Unix seconds (Meta sends a number here; a string is accepted too).
    pub timestamp: serde_json::Value,
    #[serde(default)]
    pub detail: Option<String>,
}

/// Decodes one record (one line of a file, one Kafka message value).
pub fn decode(bytes: &[u8]) -> Result<Vec<Item>, DecodeError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let object = value.as_object().ok_or(DecodeError::NotAnObject)?;
    if object.get("object").and_then(|v| v.as_str()) == Some("whatsapp_business_account") {
        let hook: WhatsappWebhook = serde_json::from_value(value)
            .map_err(|e| invalid("WhatsApp webhook", e.to_string()))?;
        return Ok(decode_webhook(hook));
    }
    match object.get("type").and_then(|v| v.as_str()) {
        Some("inbound") => {
            let record: NormalizedInbound = serde_json::from_value(value)
                .map_err(|e| invalid("inbound record", e.to_string()))?;
            Ok(vec![Item::Message(decode_normalized(record)?)])
        }
        Some("sent") => {
            let record: SentRecord =
                serde_json::from_value(value).map_err(|e| invalid("sent record", e.to_string()))?;
            Ok(vec![Item::Sent(decode_sent(record)?)])
        }
        _ => Err(DecodeError::UnknownShape),
    }
}

fn invalid(what: &'static str, detail: String) -> DecodeError {
    DecodeError::Invalid { what, detail }
}

fn decode_normalized(r: NormalizedInbound) -> Result<Message, DecodeError> {
    if r.message_id.trim().is_empty() {
        return Err(invalid("message_id", "must not be empty".into()));
    }
    let occurred_at = DateTime::parse_from_rfc3339(&r.received_at)
        .map_err(|e| {
            invalid(
                "received_at",
                format!("{:?} is not RFC 3339 ({e})", r.received_at),
            )
        })?
        .with_timezone(&Utc);
    let content = match (r.button_payload, r.text) {
        (Some(payload), title) => Content::Button { payload, title },
        (None, Some(text)) => Content::Text(text),
        (None, None) => {
            return Err(invalid(
                "inbound record",
                "needs text or button_payload".into(),
            ))
        }
    };
    check_content(&content)?;
    Ok(Message {
        tenant: TenantRef::Name(r.tenant),
        channel: r.channel,
        message_id: r.message_id,
        from: r.from,
        occurred_at,
        content,
        context_message_id: r.context_message_id,
        campaign_id: r.campaign_id,
        language: r.language,
    })
}

fn decode_sent(r: SentRecord) -> Result<SentMessage, DecodeError> {
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

/// A status with a billing category is a business-initiated message Meta counted; one without
/// (a reply inside a customer-service window) says nothing about a campaign and is ignored.
fn wa_status(tenant: &TenantRef, status: &serde_json::Value) -> Result<Item, DecodeError> {
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    let category = text(status.pointer("/pricing/category"))
        .or_else(|| text(status.pointer("/conversation/origin/type")));
    let Some(category) = category else {
        return Ok(Item::Ignored("status"));
    };
    let state = match status.get("status").and_then(|v| v.as_str()) {
        Some("sent") => DeliveryState::Sent,
        Some("delivered") => DeliveryState::Delivered,
        Some("read") => DeliveryState::Read,
        Some("failed") => DeliveryState::Failed,
        _ => return Ok(Item::Ignored("status")),
    };
    let message_id = text(status.get("id"))
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| invalid("WhatsApp status", "missing id".into()))?;
    let at = match status.get("timestamp") {
        Some(serde_json::Value::String(s)) => unix_seconds(s)?,
        Some(serde_json::Value::Number(n)) => unix_seconds(&n.to_string())?,
        other => {
            return Err(DecodeError::InvalidTimestamp(
                other.map(|v| v.to_string()).unwrap_or_default(),
            ))
        }
    };
    Ok(Item::Status(DeliveryStatus {
        tenant: tenant.clone(),
        message_id,
        state,
        at,
        category,
    }))
}

fn decode_webhook(hook: WhatsappWebhook) -> Vec<Item> {
    let mut items = Vec::new();
    for (e, entry) in hook.entry.into_iter().enumerate() {
        for (c, change) in entry.changes.into_iter().enumerate() {
            let base = format!("/entry/{e}/changes/{c}/value");
            let value = change.value;
            let Some(metadata) = value.metadata else {
                if !value.messages.is_empty() || !value.user_preferences.is_empty() {
                    items.push(Item::Rejected {
                        path: format!("{base}/metadata"),
                        error: invalid(
                            "WhatsApp webhook",
                            "missing metadata.phone_number_id".into(),
                        ),
                    });
                }
                continue;
            };
            let tenant = TenantRef::PhoneNumberId(metadata.phone_number_id);
            for (i, message) in value.messages.into_iter().enumerate() {
                let path = format!("{base}/messages/{i}");
                items.push(match message {
                    Lenient::Ok(m) => wa_message(&tenant, m)
                        .unwrap_or_else(|error| Item::Rejected { path, error }),
                    Lenient::Err(detail) => Item::Rejected {
                        path,
                        error: invalid("WhatsApp message", detail),
                    },
                });
            }
            for (i, status) in value.statuses.iter().enumerate() {
                let path = format!("{base}/statuses/{i}");
                items.push(
                    wa_status(&tenant, status)
                        .unwrap_or_else(|error| Item::Rejected { path, error }),
                );
            }
            for (i, pref) in value.user_preferences.into_iter().enumerate() {
                let path = format!("{base}/user_preferences/{i}");
                items.push(match pref {
                    Lenient::Ok(p) => user_preference(&tenant, p)
                        .unwrap_or_else(|error| Item::Rejected { path, error }),
                    Lenient::Err(detail) => Item::Rejected {
                        path,
                        error: invalid("WhatsApp user preference", detail),
                    },
                });
            }
        }
    }
    items
}

fn wa_message(tenant: &TenantRef, m: WaMessage) -> Result<Item, DecodeError> {
    let content = match m.message_type.as_str() {
        "text" => Content::Text(
            m.text
                .ok_or_else(|| invalid("WhatsApp text message", "missing text.body".into()))?
                .body,
        ),
        "button" => {
            let b = m
                .button
                .ok_or_else(|| invalid("WhatsApp button message", "missing button".into()))?;
            let payload = b.payload.or_else(|| b.text.clone()).ok_or_else(|| {
                invalid(
                    "WhatsApp button message",
                    "button has neither payload nor text".into(),
                )
            })?;
            Content::Button {
                payload,
                title: b.text,
            }
        }
        "interactive" => {
            let i = m.interactive.ok_or_else(|| {
                invalid("WhatsApp interactive message", "missing interactive".into())
            })?;
            match i.button_reply.or(i.list_reply) {
                Some(reply) => Content::Button {
                    payload: reply.id,
                    title: reply.title,
                },
                None => return Ok(Item::Ignored("interactive without a reply")),
            }
        }
        _ => return Ok(Item::Ignored("message type without consent meaning")),
    };
    check_content(&content)?;
    Ok(Item::Message(Message {
        tenant: tenant.clone(),
        channel: "whatsapp".into(),
        message_id: m.id,
        from: wa_sender(&m.from),
        occurred_at: unix_seconds(&m.timestamp)?,
        content,
        context_message_id: m.context.and_then(|c| c.id),
        campaign_id: None,
        language: None,
    }))
}

fn user_preference(tenant: &TenantRef, p: WaUserPreference) -> Result<Item, DecodeError> {
    if p.category != "marketing_messages" {
        return Ok(Item::Ignored("user preference of another category"));
    }
    let preference = match p.value.as_str() {
        "stop" => Preference::Stop,
        "resume" => Preference::Resume,
        other => {
            return Err(invalid(
                "user_preferences value",
                format!("{other:?} (expected stop or resume)"),
            ))
        }
    };
    let timestamp = match &p.timestamp {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => return Err(DecodeError::InvalidTimestamp(other.to_string())),
    };
    let occurred_at = unix_seconds(&timestamp)?;
    // Meta gives this change no message id; derive one from what identifies it, so the same
    // webhook delivered twice is still one event.
    let digest = Sha256::digest(format!("{}\n{}\n{}", p.wa_id, timestamp, p.value).as_bytes());
    let message_id = format!("user_preferences.{}", &hex::encode(digest)[..32]);
    Ok(Item::Message(Message {
        tenant: tenant.clone(),
        channel: "whatsapp".into(),
        message_id,
        from: wa_sender(&p.wa_id),
        occurred_at,
        content: Content::Preference(preference),
        context_message_id: None,
        campaign_id: None,
        language: None,
    }))
}

/// WhatsApp senders (`from`, `wa_id`) are always international numbers written without the
/// '+'. Marking them international here keeps a tenant's region from reading them as national
/// numbers (a German tenant would turn French `33612345678` into `+4933612345678`).
fn wa_sender(digits: &str) -> String {
    if digits.starts_with('+') {
        digits.to_string()
    } else {
        format!("+{digits}")
    }
}

fn check_content(content: &Content) -> Result<(), DecodeError> {
    let text = match content {
        Content::Text(t) => t.as_str(),
        Content::Button { payload, .. } => payload.as_str(),
        Content::Preference(_) => return Ok(()),
    };
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(DecodeError::TextTooLong(chars));
    }
    Ok(())
}

/// WhatsApp timestamps are unix seconds in a string. Anything before 2000 or after 2200 is a
/// unit mistake (milliseconds) or garbage, and would corrupt event-time ordering.
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
