//! What a sender asks before one message: the consent of one contact for one purpose, and
//! whether the tenant's policy lets the message go.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::TenantProfile;
use crate::domain::contact::Contact;
use crate::domain::event::Purpose;
use crate::domain::policy::may_send;
use crate::domain::tenant::TenantId;
use crate::ledger::{Ledger, LedgerError};

/// The consent of one contact for one purpose (`status --json`, schemas/consent-status.v1.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusRecord {
    pub tenant: TenantId,
    /// E.164, or a WhatsApp user ID as written.
    pub contact: String,
    /// `marketing` or `transactional`.
    pub purpose: String,
    /// `opted_out`, `opted_in` or `unknown`.
    pub status: String,
    /// Whether a message of this purpose may be sent now, under the tenant's policy.
    pub may_send: bool,
    /// Why not, when `may_send` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the current status began (the customer's message time).
    pub since: Option<DateTime<Utc>>,
    /// The event that set the current status: the proof to show. For an identifier retired
    /// by a number or user-ID change, the change event itself until an opt-in from it.
    pub event_id: Option<Uuid>,
    /// The person's other identifiers (a number and its WhatsApp user ID, an old number and
    /// the new one): consent follows the person, so this answer holds for all of them.
    #[serde(default)]
    pub linked: Vec<String>,
    /// When a number or user-ID change retired this identifier: it stays suppressed for
    /// marketing until an opt-in arrives from it, since a number can be given to somebody else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
}

pub fn status(
    ledger: &Ledger,
    profile: &TenantProfile,
    tenant: &TenantId,
    contact: &Contact,
    purpose: Purpose,
) -> Result<StatusRecord, LedgerError> {
    let person = ledger.person(tenant, contact)?;
    let consent = &person.consent;
    let state = consent.get(purpose);
    let verdict = may_send(consent, purpose, &profile.policy);
    Ok(StatusRecord {
        tenant: tenant.clone(),
        contact: contact.to_string(),
        purpose: purpose.as_str().to_string(),
        status: state.status.as_str().to_string(),
        may_send: verdict.is_ok(),
        reason: verdict.err().map(|e| e.as_str().to_string()),
        since: state.since,
        event_id: state.event_id,
        linked: person.linked.all.iter().map(|c| c.to_string()).collect(),
        retired_at: person.retired_at,
    })
}
