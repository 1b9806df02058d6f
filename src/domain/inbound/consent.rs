//! A consent decision on the inbound topic. With scale-out, a decision the HTTP API or an
//! import receives is not written by the instance that received it: it goes onto the inbound
//! topic like a message, and the instance that owns its partition writes it on that chain,
//! so each chain keeps one writer. The record carries the decision as the API validated it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{invalid, DecodeError};
use crate::domain::consent::Request;
use crate::domain::contact::Contact;
use crate::domain::decide::{ConsentRecord, RecordOrigin};
use crate::domain::tenant::TenantId;

/// `{"type":"consent", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentWire {
    /// `consent`.
    #[serde(rename = "type")]
    pub kind: String,
    pub tenant: String,
    /// `api` or `import`.
    pub origin: String,
    /// The `Idempotency-Key`, or the import row's digest.
    pub key: String,
    /// As the API normalized it (E.164 or a WhatsApp user ID).
    pub contact: String,
    /// `opt_out`, `opt_out_all` or `opt_in`.
    pub decision: String,
    pub occurred_at: DateTime<Utc>,
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

/// `{"type":"erase", …}`: an erasure the API received (scale-out), written by the owner of
/// its partition like any decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseWire {
    /// `erase`.
    #[serde(rename = "type")]
    pub kind: String,
    pub tenant: String,
    pub contact: String,
    pub requested_by: String,
    pub reason: String,
    /// Makes the `Erased` event's id, so that a redelivery cannot make a second one.
    pub request_id: uuid::Uuid,
}

/// Bounds the API enforces, enforced again here: the topic is not the API.
const MAX_PROOF_CHARS: usize = 4096 + 2048 + 16;
const MAX_FIELD_CHARS: usize = 255;

impl ConsentWire {
    pub fn of(tenant: &TenantId, r: &ConsentRecord) -> ConsentWire {
        ConsentWire {
            kind: "consent".into(),
            tenant: tenant.to_string(),
            origin: match r.origin {
                RecordOrigin::Api => "api",
                RecordOrigin::Import => "import",
            }
            .into(),
            key: r.key.clone(),
            contact: r.contact.as_str().to_string(),
            decision: match r.request {
                Request::OptOut { all: false } => "opt_out",
                Request::OptOut { all: true } => "opt_out_all",
                Request::OptIn => "opt_in",
            }
            .into(),
            occurred_at: r.occurred_at,
            channel: r.channel.clone(),
            source: r.label.clone(),
            proof: r.proof.clone(),
            language: r.language.clone(),
            campaign_id: r.campaign_id.clone(),
            line: r.line,
        }
    }

    /// The decision, for `contact` (the wire's contact, normalized again by the caller
    /// under the tenant's rules).
    pub fn into_record(self, contact: Contact) -> Result<ConsentRecord, DecodeError> {
        let bad = |detail: &str| invalid("consent record", detail.to_string());
        let origin = match self.origin.as_str() {
            "api" => RecordOrigin::Api,
            "import" => RecordOrigin::Import,
            _ => return Err(bad("origin must be \"api\" or \"import\"")),
        };
        let request = match self.decision.as_str() {
            "opt_out" => Request::OptOut { all: false },
            "opt_out_all" => Request::OptOut { all: true },
            "opt_in" => Request::OptIn,
            _ => return Err(bad("decision must be opt_out, opt_out_all or opt_in")),
        };
        if self.key.is_empty()
            || self.key.len() > MAX_FIELD_CHARS
            || !self.key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(bad("key must be 1 to 255 visible ASCII characters"));
        }
        let too_long =
            |v: &Option<String>, max: usize| v.as_ref().is_some_and(|v| v.chars().count() > max);
        if self.channel.is_empty()
            || self.channel.chars().count() > MAX_FIELD_CHARS
            || too_long(&self.source, MAX_FIELD_CHARS)
            || too_long(&self.language, MAX_FIELD_CHARS)
            || too_long(&self.campaign_id, MAX_FIELD_CHARS)
            || too_long(&self.proof, MAX_PROOF_CHARS)
        {
            return Err(bad("a field is empty or too long"));
        }
        Ok(ConsentRecord {
            origin,
            key: self.key,
            contact,
            request,
            occurred_at: self.occurred_at,
            channel: self.channel,
            label: self.source,
            proof: self.proof,
            language: self.language,
            campaign_id: self.campaign_id,
            line: self.line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ConsentRecord {
        ConsentRecord {
            origin: RecordOrigin::Api,
            key: "k-1".into(),
            contact: Contact::from_stored("+33612345678".into()),
            request: Request::OptOut { all: true },
            occurred_at: "2026-12-01T10:00:00Z".parse().unwrap(),
            channel: "web".into(),
            label: Some("web_form".into()),
            proof: Some("I want no more offers".into()),
            language: Some("fr".into()),
            campaign_id: None,
            line: None,
        }
    }

    #[test]
    fn a_decision_survives_the_topic() {
        let tenant = TenantId::new("acme").unwrap();
        let wire = ConsentWire::of(&tenant, &record());
        let json = serde_json::to_string(&wire).unwrap();
        let back: ConsentWire = serde_json::from_str(&json).unwrap();
        assert_eq!(back, wire);
        let r = back.into_record(record().contact).unwrap();
        assert_eq!(r.request, Request::OptOut { all: true });
        assert_eq!(r.event_id(&tenant), record().event_id(&tenant));
    }

    #[test]
    fn unknown_decisions_and_bad_keys_are_refused() {
        let tenant = TenantId::new("acme").unwrap();
        let mut wire = ConsentWire::of(&tenant, &record());
        wire.decision = "maybe".into();
        assert!(wire.clone().into_record(record().contact).is_err());
        wire.decision = "opt_in".into();
        wire.key = "has space".into();
        assert!(wire.into_record(record().contact).is_err());
    }
}
