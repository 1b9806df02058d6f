//! One import row, as given, checked and turned into the consent record it asks for. Its
//! key is a digest of the row's content, so the same row imported again is a duplicate.

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::ImportRow;
use crate::config::TenantProfile;
use crate::domain::clock::OutOfBounds;
use crate::domain::consent::Request;
use crate::domain::decide::{ConsentRecord, RecordOrigin};
use crate::query::{self, parse_time, InvalidContact};

/// Why a row is rejected; the report lists it next to the row's line.
#[derive(Debug, thiserror::Error)]
pub(super) enum RowError {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error(transparent)]
    Contact(#[from] InvalidContact),
    #[error("unknown status {0:?} (expected opted_out or opted_in)")]
    UnknownStatus(String),
    #[error("scope \"all\" applies to opt-outs only")]
    AllScopeOptIn,
    #[error("unknown scope (expected marketing or all)")]
    UnknownScope,
    #[error(
        "invalid occurred_at {0:?} (expected RFC 3339, \"YYYY-MM-DD HH:MM:SS\" or \"YYYY-MM-DD\", UTC)"
    )]
    InvalidTime(String),
    #[error("occurred_at {0:?}: {1}")]
    OutOfBounds(String, OutOfBounds),
    #[error("source must be at most 64 characters, without control characters")]
    InvalidSource,
}

/// The record `row`, at `line` of the body, asks for, or why it is rejected.
pub(super) fn record(
    profile: &TenantProfile,
    line: u64,
    row: ImportRow,
) -> Result<ConsentRecord, RowError> {
    let input = row.contact.ok_or(RowError::Missing("contact"))?;
    let contact = query::contact(profile, &input)?;
    let status = row.status.ok_or(RowError::Missing("status"))?;
    let opt_out = match squash(&status).as_str() {
        "optedout" | "optout" | "out" | "unsubscribed" | "stop" => true,
        "optedin" | "optin" | "in" | "subscribed" | "start" => false,
        _ => return Err(RowError::UnknownStatus(status)),
    };
    let all = match row.scope.as_deref().map(squash).as_deref() {
        None | Some("marketing") => false,
        Some("all") if opt_out => true,
        Some("all") => return Err(RowError::AllScopeOptIn),
        Some(_) => return Err(RowError::UnknownScope),
    };
    let when = row.occurred_at.ok_or(RowError::Missing("occurred_at"))?;
    let Some(occurred_at) = parse_time(&when) else {
        return Err(RowError::InvalidTime(when));
    };
    if let Err(e) = profile.clock.check(occurred_at, Utc::now()) {
        return Err(RowError::OutOfBounds(when, e));
    }
    let source = row
        .source
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    if let Some(s) = &source {
        if s.chars().count() > 64 || s.chars().any(char::is_control) {
            return Err(RowError::InvalidSource);
        }
    }
    let request = if opt_out {
        Request::OptOut { all }
    } else {
        Request::OptIn
    };
    let digest = Sha256::digest(
        format!(
            "{}\n{}\n{}\n{}\n{}",
            contact,
            if opt_out { "opted_out" } else { "opted_in" },
            if all { "all" } else { "marketing" },
            occurred_at.to_rfc3339(),
            source.as_deref().unwrap_or("")
        )
        .as_bytes(),
    );
    Ok(ConsentRecord {
        origin: RecordOrigin::Import,
        key: hex::encode(&digest[..16]),
        contact,
        request,
        occurred_at,
        channel: "import".into(),
        label: source,
        proof: None,
        language: None,
        campaign_id: None,
        line: Some(line),
    })
}

/// Lower-case without separators: `Opted-Out`, `opted_out` and `OptedOut` are one status.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_spellings_are_squashed() {
        assert_eq!(squash("Opted-Out"), "optedout");
        assert_eq!(squash(" opted_in "), "optedin");
    }
}
