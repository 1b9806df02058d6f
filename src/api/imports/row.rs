//! One import row, as given, checked and turned into the consent record it asks for. Its
//! key is a digest of the row's content, so the same row imported again is a duplicate.

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::ImportRow;
use crate::api::events::record::MAX_CLOCK_SKEW;
use crate::config::TenantProfile;
use crate::domain::consent::Request;
use crate::domain::contact;
use crate::domain::decide::{ConsentRecord, RecordOrigin};
use crate::query::parse_time;

/// The record `row`, at `line` of the body, asks for, or why it is rejected.
pub(super) fn record(
    profile: &TenantProfile,
    line: u64,
    row: ImportRow,
) -> Result<ConsentRecord, String> {
    let input = row.contact.ok_or("missing contact")?;
    let contact = contact::normalize(&input, profile.region)
        .map_err(|e| format!("invalid contact {input:?}: {e}"))?;
    let status = row.status.ok_or("missing status")?;
    let opt_out = match squash(&status).as_str() {
        "optedout" | "optout" | "out" | "unsubscribed" | "stop" => true,
        "optedin" | "optin" | "in" | "subscribed" | "start" => false,
        _ => {
            return Err(format!(
                "unknown status {status:?} (expected opted_out or opted_in)"
            ))
        }
    };
    let all = match row.scope.as_deref().map(squash).as_deref() {
        None | Some("marketing") => false,
        Some("all") if opt_out => true,
        Some("all") => return Err("scope \"all\" applies to opt-outs only".into()),
        Some(_) => return Err("unknown scope (expected marketing or all)".into()),
    };
    let when = row.occurred_at.ok_or("missing occurred_at")?;
    let occurred_at = parse_time(&when).ok_or_else(|| {
        format!("invalid occurred_at {when:?} (expected RFC 3339, \"YYYY-MM-DD HH:MM:SS\" or \"YYYY-MM-DD\", UTC)")
    })?;
    if occurred_at > Utc::now() + MAX_CLOCK_SKEW {
        return Err(format!("occurred_at {when:?} is in the future"));
    }
    let source = row
        .source
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    if let Some(s) = &source {
        if s.chars().count() > 64 || s.chars().any(char::is_control) {
            return Err("source must be at most 64 characters, without control characters".into());
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
