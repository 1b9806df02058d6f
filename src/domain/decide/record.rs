//! Consent recorded outside the message stream: a web-form opt-in, a support agent's opt-out,
//! a CRM import. Such a decision becomes an event exactly like a STOP does, so subscribers
//! cannot tell the sources apart except by `source.kind`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::consent::{event_type_for, Request};
use crate::domain::contact::Contact;
use crate::domain::event::{ConsentEvent, SourceKind};
use crate::domain::tenant::TenantId;

/// Where a recorded decision came from; decides its dedupe namespace and message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOrigin {
    /// `POST …/consent-events`, deduplicated by the caller's `Idempotency-Key`.
    Api,
    /// A row of `POST …/imports`, deduplicated by a digest of the row's content.
    Import,
}

impl RecordOrigin {
    pub fn kind(self) -> SourceKind {
        match self {
            RecordOrigin::Api => SourceKind::Api,
            RecordOrigin::Import => SourceKind::Import,
        }
    }

    /// The dedupe kind: separate from inbound message ids, so a caller's key can never
    /// collide with a WhatsApp message id.
    pub fn dedupe_kind(self) -> &'static str {
        match self {
            RecordOrigin::Api => "idempotency",
            RecordOrigin::Import => "import",
        }
    }

    /// The `source.message_id` of the event recorded under `key`.
    pub fn message_id(self, key: &str) -> String {
        match self {
            RecordOrigin::Api => format!("api:{key}"),
            RecordOrigin::Import => format!("import:{key}"),
        }
    }
}

/// One consent decision to record.
#[derive(Debug, Clone)]
pub struct ConsentRecord {
    pub origin: RecordOrigin,
    /// The idempotency key or the row digest: the same key never appends twice.
    pub key: String,
    pub contact: Contact,
    pub request: Request,
    /// When the person decided. Invariant 3 makes the latest decision win, so callers must not
    /// pass a time in the future: it would outrank every later STOP.
    pub occurred_at: DateTime<Utc>,
    /// Where the decision was given (`web`, `support`, `crm`, …).
    pub channel: String,
    /// A short label of the source (`web_form`, `support_agent`), kept in `source.rule`.
    pub label: Option<String>,
    /// The proof: what the person saw or said, and where; kept in `source.text`.
    pub proof: Option<String>,
    pub language: Option<String>,
    pub campaign_id: Option<String>,
    /// Line of the import file.
    pub line: Option<u64>,
}

impl ConsentRecord {
    /// The event id this record gets, whether or not it is appended now: what a replayed
    /// request is answered with.
    pub fn event_id(&self, tenant: &TenantId) -> Uuid {
        let message_id = self.origin.message_id(&self.key);
        ConsentEvent::id_for(tenant, &message_id, event_type_for(self.request))
    }
}
