//! The query side, shared by the CLI and the HTTP API so both answer the same way: the status
//! of one contact, the campaign audience filter, and the audit export.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::TenantProfile;
use crate::domain::consent::Status;
use crate::domain::contact::{self, Contact};
use crate::domain::event::{ConsentEvent, Purpose};
use crate::domain::policy::may_send;
use crate::ledger::{Ledger, LedgerError};

/// The consent of one contact for one purpose (`status --json`, schemas/consent-status.v1.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusRecord {
    pub tenant: String,
    /// E.164.
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
    /// The event that set the current status: the proof to show.
    pub event_id: Option<Uuid>,
}

pub fn status(
    ledger: &Ledger,
    profile: &TenantProfile,
    tenant: &str,
    contact: &Contact,
    purpose: Purpose,
) -> Result<StatusRecord, LedgerError> {
    let consent = ledger.consent(tenant, contact)?;
    let state = consent.get(purpose);
    let verdict = may_send(&consent, purpose, &profile.policy);
    Ok(StatusRecord {
        tenant: tenant.to_string(),
        contact: contact.to_string(),
        purpose: purpose.as_str().to_string(),
        status: state.status.as_str().to_string(),
        may_send: verdict.is_ok(),
        reason: verdict.err().map(|e| e.as_str().to_string()),
        since: state.since,
        event_id: state.event_id,
    })
}

/// One line of a campaign audience, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    Allowed(Contact),
    Excluded {
        contact: Contact,
        reason: &'static str,
        since: Option<DateTime<Utc>>,
    },
    Invalid {
        input: String,
        reason: String,
    },
}

pub fn check_one(
    ledger: &Ledger,
    profile: &TenantProfile,
    tenant: &str,
    input: &str,
    purpose: Purpose,
) -> Result<Checked, LedgerError> {
    let contact = match contact::normalize(input, profile.region) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Checked::Invalid {
                input: input.to_string(),
                reason: e.to_string(),
            })
        }
    };
    let consent = ledger.consent(tenant, &contact)?;
    Ok(match may_send(&consent, purpose, &profile.policy) {
        Ok(()) => Checked::Allowed(contact),
        Err(e) => {
            let state = consent.get(purpose);
            let since = if state.status == Status::Unknown {
                None
            } else {
                state.since
            }
            .or(consent.marketing.since);
            Checked::Excluded {
                contact,
                reason: e.as_str(),
                since,
            }
        }
    })
}

/// Columns of the CSV audit export, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "event_id",
    "partition",
    "seq",
    "tenant",
    "contact",
    "channel",
    "type",
    "purposes",
    "occurred_at",
    "recorded_at",
    "source_kind",
    "message_id",
    "keyword",
    "rule",
    "text",
    "language",
    "context_message_id",
    "campaign_id",
    "attribution",
    "topic",
    "kafka_partition",
    "offset",
    "line",
    "prev_hash",
    "hash",
];

/// One event as a CSV row (RFC 4180 quoting).
pub fn csv_row(e: &ConsentEvent) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let fields: Vec<String> = vec![
        e.event_id.to_string(),
        e.partition.to_string(),
        e.seq.to_string(),
        e.tenant.clone(),
        e.contact.to_string(),
        e.channel.clone(),
        e.event_type.as_str().to_string(),
        e.purposes
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(";"),
        e.occurred_at.to_rfc3339(),
        e.recorded_at.to_rfc3339(),
        serde_name(&e.source.kind),
        e.source.message_id.clone(),
        opt(&e.source.keyword),
        opt(&e.source.rule),
        opt(&e.source.text),
        opt(&e.source.language),
        opt(&e.source.context_message_id),
        opt(&e.campaign_id),
        serde_name(&e.attribution),
        opt(&e.source.topic),
        num(e.source.kafka_partition.map(i64::from)),
        num(e.source.offset),
        num(e.source.line.map(|l| l as i64)),
        e.prev_hash.clone(),
        e.hash.clone(),
    ];
    fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// The times users and other platforms write (RFC 3339, `YYYY-MM-DD HH:MM[:SS]`, a bare date
/// meaning its midnight), read as UTC when they carry no offset: one reading for `--since`,
/// `?since=` and imported rows.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// The serde name of a unit enum value (`quick_reply`, `reply_context`).
fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_other_platforms_parse_as_utc() {
        let t = |s| parse_time(s).map(|t| t.to_rfc3339());
        let noon = Some("2024-03-01T12:00:00+00:00".to_string());
        assert_eq!(t("2024-03-01T12:00:00Z"), noon);
        assert_eq!(t("2024-03-01T13:00:00+01:00"), noon);
        assert_eq!(t("2024-03-01 12:00:00"), noon);
        assert_eq!(t("2024-03-01 12:00"), noon);
        assert_eq!(
            t("2024-03-01"),
            Some("2024-03-01T00:00:00+00:00".to_string())
        );
        assert_eq!(t("01/03/2024"), None);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("STOP"), "STOP");
        assert_eq!(csv_field("stop, please"), "\"stop, please\"");
        assert_eq!(csv_field("say \"stop\"\n"), "\"say \"\"stop\"\"\n\"");
    }
}
