//! Replies the ledger sends back to the customer: one confirmation per opt-out (customers who
//! get no answer press "block" instead, which costs the business its WhatsApp quality rating),
//! a confirmation of opt-in, and the help text. Texts come from the tenant's config, with
//! built-in defaults per language from the language files' `[replies]`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::contact::Contact;
use super::language;
use super::tenant::TenantId;

/// Longest reply text the config may set.
pub const MAX_REPLY_CHARS: usize = 1024;

/// Why a configured reply text cannot be sent; names the text's field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("{0} is over {MAX_REPLY_CHARS} characters")]
    TooLong(&'static str),
}

/// The texts of one language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Messages {
    pub opt_out_confirmation: String,
    pub opt_in_confirmation: String,
    pub help: String,
}

impl Messages {
    pub fn validate(&self) -> Result<(), TextError> {
        for (name, text) in [
            ("opt_out_confirmation", &self.opt_out_confirmation),
            ("opt_in_confirmation", &self.opt_in_confirmation),
            ("help", &self.help),
        ] {
            if text.trim().is_empty() {
                return Err(TextError::Empty(name));
            }
            if text.chars().count() > MAX_REPLY_CHARS {
                return Err(TextError::TooLong(name));
            }
        }
        Ok(())
    }

    pub fn text(&self, kind: ReplyKind) -> &str {
        match kind {
            ReplyKind::OptOutConfirmation => &self.opt_out_confirmation,
            ReplyKind::OptInConfirmation => &self.opt_in_confirmation,
            ReplyKind::Help => &self.help,
            ReplyKind::Erased => "",
        }
    }
}

/// The texts of one language as written in the config: any of them may be left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessageTexts {
    pub opt_out_confirmation: Option<String>,
    pub opt_in_confirmation: Option<String>,
    pub help: Option<String>,
}

impl MessageTexts {
    pub fn over(&self, base: Messages) -> Messages {
        Messages {
            opt_out_confirmation: self
                .opt_out_confirmation
                .clone()
                .unwrap_or(base.opt_out_confirmation),
            opt_in_confirmation: self
                .opt_in_confirmation
                .clone()
                .unwrap_or(base.opt_in_confirmation),
            help: self.help.clone().unwrap_or(base.help),
        }
    }
}

/// Built-in texts, one entry per language file. The French opt-out text is the one the product
/// promises in its docs.
pub fn default_messages() -> BTreeMap<String, Messages> {
    language::builtins()
        .iter()
        .map(|l| (l.code.to_string(), l.replies.clone()))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    OptOutConfirmation,
    OptInConfirmation,
    Help,
    /// Not a message: the person `to` was erased (RGPD Art. 17). Never send it; drop what
    /// is queued for `to` and any copy of their data. `text` is empty.
    Erased,
}

impl ReplyKind {
    fn as_str(self) -> &'static str {
        match self {
            ReplyKind::OptOutConfirmation => "opt_out_confirmation",
            ReplyKind::OptInConfirmation => "opt_in_confirmation",
            ReplyKind::Help => "help",
            ReplyKind::Erased => "erased",
        }
    }
}

/// A message for the customer, written to `outbox.jsonl` / the `outbound.messages` topic for the
/// business's sender to deliver (schemas/outbound-message.v1.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OutboundMessage {
    /// UUID v5 of (tenant, inbound message id, kind): the sender dedupes on it.
    pub message_id: Uuid,
    pub tenant: TenantId,
    pub channel: String,
    /// E.164 recipient.
    pub to: Contact,
    pub kind: ReplyKind,
    /// ISO 639-1 language of `text`.
    pub language: String,
    pub text: String,
    /// The inbound message this answers (WhatsApp: send it as `context.message_id`).
    pub in_reply_to: String,
    /// The consent event this confirms, for confirmations.
    pub event_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl OutboundMessage {
    pub fn id_for(tenant: &TenantId, in_reply_to: &str, kind: ReplyKind) -> Uuid {
        let name = format!("{tenant}\n{in_reply_to}\nreply:{}", kind.as_str());
        Uuid::new_v5(&super::event::EVENT_NAMESPACE, name.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_texts_are_valid_and_french_is_the_promised_one() {
        let all = default_messages();
        for m in all.values() {
            m.validate().unwrap();
        }
        assert_eq!(
            all["fr"].opt_out_confirmation,
            "C'est noté, vous avez bien été désinscrit de notre liste de diffusion. Vous ne recevrez plus de messages marketing de notre part."
        );
    }

    #[test]
    fn config_texts_override_only_what_they_name() {
        let texts = MessageTexts {
            help: Some("Aide: 01 23 45 67 89".into()),
            ..Default::default()
        };
        let merged = texts.over(default_messages()["fr"].clone());
        assert_eq!(merged.help, "Aide: 01 23 45 67 89");
        assert!(merged.opt_out_confirmation.starts_with("C'est noté"));
    }

    #[test]
    fn reply_ids_are_stable_per_message_and_kind() {
        let acme = TenantId::new("acme").unwrap();
        let a = OutboundMessage::id_for(&acme, "wamid.1", ReplyKind::Help);
        assert_eq!(
            a,
            OutboundMessage::id_for(&acme, "wamid.1", ReplyKind::Help)
        );
        assert_ne!(
            a,
            OutboundMessage::id_for(&acme, "wamid.1", ReplyKind::OptOutConfirmation)
        );
    }
}
