//! What a message's content says, before any state is looked at: the keyword rules for text,
//! the payload for buttons, WhatsApp's own preference control, an SMS provider's own opt-out.

use super::Outcome;
use crate::domain::event::SourceKind;
use crate::domain::inbound::{Content, Message, Preference};
use crate::domain::keywords::{Classification, KeywordSet, Rule, Scope};

/// A message's classification, with the kind of source it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub classification: Classification,
    pub kind: SourceKind,
}

pub fn classify(message: &Message, keywords: &KeywordSet) -> Classified {
    let (classification, kind) = match &message.content {
        Content::Text(text) => (keywords.classify(text), SourceKind::Keyword),
        Content::Button { payload, title } => {
            let mut c = keywords.classify_payload(payload);
            if c == Classification::NoChange {
                if let Some(title) = title {
                    c = keywords.classify_payload(title);
                    if c == Classification::NoChange {
                        c = keywords.classify(title);
                    }
                }
            }
            (c, SourceKind::QuickReply)
        }
        Content::Preference(p) => {
            let keyword = "user_preferences".to_string();
            let c = match p {
                Preference::Stop => Classification::OptOut {
                    scope: Scope::Marketing,
                    keyword,
                    rule: Rule::ExactKeyword,
                    language: None,
                },
                Preference::Resume => Classification::OptIn {
                    keyword,
                    rule: Rule::ExactKeyword,
                    language: None,
                },
            };
            (c, SourceKind::WhatsappUserPreferences)
        }
        Content::ProviderOptOut { word, text } => {
            (provider_opt_out(word, text, keywords), SourceKind::Provider)
        }
        Content::Notice { .. } => (Classification::NoChange, SourceKind::Identity),
    };
    Classified {
        classification,
        kind,
    }
}

/// The provider's opt-out stands whatever the text says: the provider stopped delivering to
/// the customer already, and a text the tables do not know must not keep them subscribed
/// here. The text still tells the scope (a STOP ALL revokes every purpose) and the language.
fn provider_opt_out(word: &str, text: &str, keywords: &KeywordSet) -> Classification {
    let (scope, language) = match keywords.classify(text) {
        Classification::OptOut {
            scope, language, ..
        } => (scope, language),
        _ => (Scope::Marketing, None),
    };
    Classification::OptOut {
        scope,
        keyword: word.to_string(),
        rule: Rule::ProviderOptOut,
        language,
    }
}

pub fn outcome_of(c: &Classification) -> Outcome {
    match c {
        Classification::OptOut { .. } => Outcome::OptedOut,
        Classification::OptIn { .. } => Outcome::OptedIn,
        Classification::Help { .. } => Outcome::Help,
        Classification::PossibleOptOut { .. } => Outcome::PossibleOptOut,
        Classification::NoChange => Outcome::NoChange,
    }
}

/// The language a reply should use: what the sender said, else the language of the keyword.
pub fn language_of(message: &Message, c: &Classification) -> Option<String> {
    let matched = match c {
        Classification::OptOut { language, .. }
        | Classification::OptIn { language, .. }
        | Classification::Help { language, .. }
        | Classification::PossibleOptOut { language, .. } => language.clone(),
        Classification::NoChange => None,
    };
    message.language.clone().or(matched)
}

/// The rule's name in `source.rule`.
pub(super) fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::ExactKeyword => "exact_keyword",
        Rule::CourtesyKeyword => "courtesy_keyword",
        Rule::RevocationPhrase => "revocation_phrase",
        Rule::QuickReplyPayload => "quick_reply_payload",
        Rule::KeywordInSentence => "keyword_in_sentence",
        Rule::Typo => "typo",
        Rule::KeywordWithCode => "keyword_with_code",
        Rule::ProviderOptOut => "provider_opt_out",
    }
}

/// What the customer sent, verbatim, as the event's proof.
pub(super) fn source_text(content: &Content) -> Option<String> {
    match content {
        Content::Text(t) | Content::ProviderOptOut { text: t, .. } => Some(t.clone()),
        Content::Button { payload, title } => Some(match title {
            Some(title) => format!("{title} [payload: {payload}]"),
            None => format!("[payload: {payload}]"),
        }),
        Content::Preference(Preference::Stop) => Some("user_preferences: stop".into()),
        Content::Preference(Preference::Resume) => Some("user_preferences: resume".into()),
        Content::Notice { .. } => None,
    }
}
