//! WhatsApp Cloud API webhooks exactly as Meta posts them: messages, button replies, the
//! `user_preferences` marketing opt-out, and billed delivery statuses. Each message of a
//! webhook is decoded on its own, so a malformed one does not take its neighbours down.

use crate::domain::clock::Claimed;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

use super::identity::{
    change_links, contact_request_links, message_links, wa_number, Sender, WaProfile,
    WaSharedContact, WaSystem,
};
use super::status::wa_status;
use super::{check_content, invalid, Content, DecodeError, Item, Message, Preference, TenantRef};

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
    /// The senders' profiles: `wa_id` and, since 2026, `user_id` (and `parent_user_id`).
    #[serde(default)]
    pub contacts: Vec<Lenient<WaProfile>>,
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
    /// The customer's number, digits without '+'. Meta leaves it out of `system` messages and,
    /// for users with a username, of every message (they carry `from_user_id` instead).
    #[serde(default)]
    pub from: Option<String>,
    /// The customer's business-scoped user ID (`US.1349…`), on every message since 2026;
    /// the only sender field of users with a username.
    #[serde(default)]
    pub from_user_id: Option<String>,
    /// The parent BSUID shared by the businesses of one portfolio, where enabled.
    #[serde(default)]
    pub from_parent_user_id: Option<String>,
    /// `wamid.…`
    pub id: String,
    /// Unix seconds, as a string (sometimes a number). Never trusted beyond the clock bounds,
    /// never a reason to reject the message.
    #[serde(default)]
    pub timestamp: serde_json::Value,
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
    /// A number or BSUID change notice (`type: system`).
    #[serde(default)]
    pub system: Option<Lenient<WaSystem>>,
    /// The cards of a `contacts` message.
    #[serde(default)]
    pub contacts: Option<Lenient<Vec<WaSharedContact>>>,
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
    /// The customer's number; Meta may leave it out and send only `user_id`.
    #[serde(default)]
    pub wa_id: Option<String>,
    /// The customer's business-scoped user ID.
    #[serde(default)]
    pub user_id: Option<String>,
    /// `marketing_messages`; other categories are ignored.
    pub category: String,
    /// `stop` or `resume`.
    pub value: String,
    /// Unix seconds (Meta sends a number here; a string is accepted too).
    #[serde(default)]
    pub timestamp: serde_json::Value,
    #[serde(default)]
    pub detail: Option<String>,
}

pub(super) fn decode_webhook(hook: WhatsappWebhook) -> Vec<Item> {
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
            let profiles: Vec<WaProfile> = value
                .contacts
                .into_iter()
                .filter_map(|p| match p {
                    Lenient::Ok(p) => Some(p),
                    Lenient::Err(_) => None,
                })
                .collect();
            for (i, message) in value.messages.into_iter().enumerate() {
                let path = format!("{base}/messages/{i}");
                items.push(match message {
                    Lenient::Ok(m) => {
                        match wa_message(&tenant, named_by_contacts(m, &profiles), &profiles) {
                            Ok(item) => item.at(path),
                            Err(error) => Item::Rejected { path, error },
                        }
                    }
                    Lenient::Err(detail) => Item::Rejected {
                        path,
                        error: invalid("WhatsApp message", detail),
                    },
                });
            }
            for (i, status) in value.statuses.iter().enumerate() {
                let path = format!("{base}/statuses/{i}");
                items.push(match wa_status(&tenant, status) {
                    Ok(item) => item.at(path),
                    Err(error) => Item::Rejected { path, error },
                });
            }
            for (i, pref) in value.user_preferences.into_iter().enumerate() {
                let path = format!("{base}/user_preferences/{i}");
                items.push(match pref {
                    Lenient::Ok(p) => match user_preference(&tenant, p) {
                        Ok(item) => item.at(path),
                        Err(error) => Item::Rejected { path, error },
                    },
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

fn wa_message(
    tenant: &TenantRef,
    m: WaMessage,
    profiles: &[WaProfile],
) -> Result<Item, DecodeError> {
    let who = Sender::new(
        m.from.as_deref(),
        m.from_user_id.as_deref(),
        m.from_parent_user_id.as_deref(),
    );
    let mut links = message_links(who, profiles);
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
            // Meta sends an interactive message without its object, with an `errors` array,
            // when it could not render the reply: nothing the customer chose reaches us.
            let Some(i) = m.interactive else {
                return Ok(Item::Ignored("interactive message without its content"));
            };
            match i.button_reply.or(i.list_reply) {
                Some(reply) => Content::Button {
                    payload: reply.id,
                    title: reply.title,
                },
                None => return Ok(Item::Ignored("interactive without a reply")),
            }
        }
        "system" => {
            let Some(Lenient::Ok(system)) = &m.system else {
                return Ok(Item::Ignored("system message without its content"));
            };
            links = change_links(who, system);
            Content::Notice { recurs: false }
        }
        "contacts" => {
            links.extend(match &m.contacts {
                Some(Lenient::Ok(cards)) => contact_request_links(who, cards),
                _ => Vec::new(),
            });
            Content::Notice {
                recurs: !matches!(&m.contacts, Some(Lenient::Ok(cards)) if cards.iter().any(|c| c.origin.as_deref() == Some("contact_request"))),
            }
        }
        _ if links.is_empty() => return Ok(Item::Ignored("message type without consent meaning")),
        _ => Content::Notice { recurs: true },
    };
    if matches!(content, Content::Notice { .. }) && links.is_empty() {
        return Ok(Item::Ignored("message without consent or identity meaning"));
    }
    check_content(&content)?;
    // A notice may come with no sender field at all: it is filed under the first identifier
    // it names, which is the one it came under.
    let from = match sender(who) {
        Ok(from) => from,
        Err(e) => links.first().map(|l| l.contact.clone()).ok_or(e)?,
    };
    Ok(Item::Message(Message {
        tenant: tenant.clone(),
        channel: "whatsapp".into(),
        message_id: m.id,
        from,
        claimed_at: claimed(&m.timestamp),
        content,
        context_message_id: m.context.and_then(|c| c.id),
        campaign_id: None,
        language: None,
        links,
        path: None,
    }))
}

/// Meta names a message's sender in `from` or `from_user_id`; some SDKs' fixtures leave both
/// out and name the user only in the webhook's `contacts`. A single profile can only be the
/// sender's; with several, nothing is guessed.
fn named_by_contacts(mut m: WaMessage, profiles: &[WaProfile]) -> WaMessage {
    // A change notice names the person in `system`, and Meta sends it without `contacts`.
    if m.message_type == "system" {
        return m;
    }
    if let (None, None, [only]) = (&m.from, &m.from_user_id, profiles) {
        m.from = only.wa_id.clone();
        m.from_user_id = only.user_id.clone();
    }
    m
}

fn user_preference(tenant: &TenantRef, p: WaUserPreference) -> Result<Item, DecodeError> {
    if p.category != "marketing_messages" {
        return Ok(Item::Ignored("user preference of another category"));
    }
    let preference = match p.value.as_str() {
        "stop" => Preference::Stop,
        "resume" => Preference::Resume,
        // Meta adds values over time (`signup` appeared in 2025): one without a consent
        // meaning we know is valid input, not a broken record.
        _ => {
            return Ok(Item::Ignored(
                "user preference value without consent meaning",
            ))
        }
    };
    let claimed_at = claimed(&p.timestamp);
    // Meta gives this change no message id; derive one from what identifies it, so the same
    // webhook delivered twice is still one event.
    let timestamp = claimed_at.raw.as_deref().unwrap_or_default();
    let who = Sender::new(p.wa_id.as_deref(), p.user_id.as_deref(), None);
    let from = sender(who)?;
    // The number when there is one, as always, so that ids derived before user IDs existed
    // stay the same.
    let id_source = p
        .wa_id
        .as_deref()
        .or(p.user_id.as_deref())
        .unwrap_or_default();
    let digest = Sha256::digest(format!("{}\n{}\n{}", id_source, timestamp, p.value).as_bytes());
    let message_id = format!("user_preferences.{}", &hex::encode(digest)[..32]);
    Ok(Item::Message(Message {
        tenant: tenant.clone(),
        channel: "whatsapp".into(),
        message_id,
        from,
        claimed_at,
        content: Content::Preference(preference),
        context_message_id: None,
        campaign_id: None,
        language: None,
        links: message_links(who, &[]),
        path: None,
    }))
}

/// A message's `timestamp` as claimed, whatever its JSON type (`null`: none was given).
fn claimed(timestamp: &serde_json::Value) -> Claimed {
    match timestamp {
        serde_json::Value::Null => Claimed::default(),
        serde_json::Value::String(s) => Claimed::unix_seconds(s.as_str()),
        other => Claimed::unix_seconds(other.to_string()),
    }
}

/// The sender of a message: the number when Meta sends one (international digits without the
/// '+', marked international here so that a tenant's region does not read them as national),
/// else the business-scoped user ID (users with a username send no number). Either alone is
/// enough to honour a STOP.
fn sender(who: Sender<'_>) -> Result<String, DecodeError> {
    match (who.number, who.user_id) {
        (Some(n), _) => Ok(wa_number(n)),
        (None, Some(id)) => Ok(id.to_string()),
        (None, None) => Err(invalid(
            "WhatsApp message",
            "neither from nor from_user_id: no sender to attribute it to".into(),
        )),
    }
}
