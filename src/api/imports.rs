//! Bulk import of existing opt-outs and opt-ins, so that a business moving from another
//! platform keeps every STOP it already owes its customers. Rows become events like any
//! other (source `import`), deduplicated by their content, so a file can be sent again after
//! a failure: rows already imported count as duplicates. Bad rows are reported with their
//! line and do not stop the others.

use std::io::{BufRead, BufReader, Read};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::auth::{Access, Caller};
use super::check::{media_type, NDJSON};
use super::events::MAX_CLOCK_SKEW;
use super::problem::{Path, Problem};
use super::stream::{self, is_too_large, BodyReader};
use super::AppState;
use crate::config::Settings;
use crate::config::TenantProfile;
use crate::domain::consent::Request;
use crate::domain::contact;
use crate::domain::decide::{ConsentRecord, RecordOrigin};
use crate::ledger::Ledger;
use crate::pipeline::commit::{self, CommitError, Input, Recorded, Respond};
use crate::query::parse_time;

/// Rejected rows listed in the answer; the count goes on beyond.
const MAX_LISTED: usize = 1000;

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ImportReport {
    /// Data rows read (blank lines excluded).
    pub rows: u64,
    /// Rows appended as consent events.
    pub imported: u64,
    /// Rows imported before (same contact, status, scope, occurred_at and source), in this
    /// file or an earlier one.
    pub duplicates: u64,
    pub rejected: u64,
    /// The first 1000 rejected rows.
    pub rejections: Vec<RejectedRow>,
    /// CSV columns that were not read.
    pub ignored_columns: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedRow {
    /// Line in the body, from 1 (the CSV header is line 1).
    pub line: u64,
    pub reason: String,
}

/// One row as given, before validation. Also the NDJSON line format.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ImportRow {
    /// Phone number, any spelling the CLI accepts.
    pub contact: Option<String>,
    /// `opted_out` or `opted_in` (also `OptedOut`, `opt-out`, `unsubscribed`, `subscribed`…).
    pub status: Option<String>,
    /// When the person decided: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC) or `YYYY-MM-DD`.
    pub occurred_at: Option<String>,
    /// Where the record comes from (`mailchimp`, `old-crm`); at most 64 characters.
    pub source: Option<String>,
    /// `marketing` (default) or `all` (opt-outs only).
    pub scope: Option<String>,
}

/// Import existing opt-outs and opt-ins.
///
/// CSV with a header row (`text/csv`; columns `contact`, `status`, `occurred_at`, and
/// optionally `source` and `scope`; other columns are ignored and listed) or NDJSON (one
/// object per line with the same fields). Each valid row appends an event
/// (`source.kind = import`) published like any other; rows are deduplicated on their
/// content, so re-sending a file is safe. Rows are committed in batches as they are read.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/imports", tag = "events",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body(content(
        ("text/csv", example = "contact,status,occurred_at,source\n+33612345678,opted_out,2024-03-01T09:30:00Z,old-crm\n"),
        (ImportRow = "application/x-ndjson"),
    )),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was imported, with rejected rows", body = ImportReport),
        (status = 400, description = "No usable header, or unreadable body", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant, or the admin token", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "Body over `api.max_body_bytes`; rows before the limit were imported",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither CSV nor NDJSON", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn import(
    caller: Caller,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ImportReport>, Problem> {
    caller.allow(&tenant, Access::Write)?;
    let csv = match media_type(&headers, header::CONTENT_TYPE).as_deref() {
        Some("text/csv") => true,
        Some(NDJSON) | Some("application/jsonl") => false,
        other => {
            return Err(Problem::unsupported_media_type(format!(
                "send the rows as text/csv (with a header row) or {NDJSON}, not {}",
                other.unwrap_or("a body without Content-Type")
            )))
        }
    };
    let limit = state.settings.api_max_body_bytes();
    stream::check_declared_length(&headers, limit)?;
    let reader = BufReader::with_capacity(64 * 1024, BodyReader::spawn(body, limit));
    let importer = Importer {
        settings: state.settings.clone(),
        profile: state.settings.profile(&tenant),
        batch: state.settings.batch_size(),
        tenant,
        report: ImportReport::default(),
    };
    let ledger = state.ledger.clone();
    let (importer, outcome) = tokio::task::spawn_blocking(move || {
        let mut importer = importer;
        let outcome = if csv {
            importer.csv(&ledger, reader)
        } else {
            importer.ndjson(&ledger, reader)
        };
        (importer, outcome)
    })
    .await
    .map_err(|e| Problem::internal(&e))?;
    let report = importer.report;
    state.metrics.events_appended.inc_by(report.imported);
    match outcome {
        Ok(()) => Ok(Json(report)),
        Err(Stop::Ledger(e)) => Err(e.into()),
        Err(Stop::Header(detail)) => Err(Problem::bad_request(
            "invalid-header",
            "Invalid CSV header",
            detail,
        )),
        Err(Stop::Body(e)) if is_too_large(&e) => {
            let mut p = Problem::too_large(limit);
            p.detail = format!(
                "{}; {} rows were imported before it (re-sending them is safe: they count as duplicates)",
                p.detail, report.imported
            );
            Err(p)
        }
        Err(Stop::Body(e)) => Err(Problem::bad_request(
            "unreadable-body",
            "Unreadable body",
            format!(
                "the body could not be read to its end ({e}); {} rows were imported before",
                report.imported
            ),
        )),
    }
}

/// Why an import stopped before the end of its body.
enum Stop {
    Ledger(CommitError),
    Header(String),
    Body(std::io::Error),
}

impl From<CommitError> for Stop {
    fn from(e: CommitError) -> Self {
        Stop::Ledger(e)
    }
}

struct Importer {
    settings: std::sync::Arc<Settings>,
    tenant: String,
    profile: std::sync::Arc<TenantProfile>,
    batch: usize,
    report: ImportReport,
}

impl Importer {
    fn csv(&mut self, ledger: &Ledger, input: impl Read) -> Result<(), Stop> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(input);
        let header = match rdr.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                return Err(match csv_stop(e) {
                    Ok(reason) => Stop::Header(reason),
                    Err(stop) => stop,
                })
            }
        };
        let names: Vec<String> = header.iter().map(|h| h.to_ascii_lowercase()).collect();
        let column = |name: &str| names.iter().position(|n| n == name);
        let missing: Vec<&str> = ["contact", "status", "occurred_at"]
            .into_iter()
            .filter(|c| column(c).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Stop::Header(format!(
                "the first line must be a header naming the columns; missing: {} (found: {})",
                missing.join(", "),
                names.join(", ")
            )));
        }
        let known = ["contact", "status", "occurred_at", "source", "scope"];
        self.report.ignored_columns = names
            .iter()
            .filter(|n| !known.contains(&n.as_str()))
            .cloned()
            .collect();
        let idx: Vec<Option<usize>> = known.iter().map(|k| column(k)).collect();
        let mut pending = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match rdr.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    if record.iter().all(str::is_empty) {
                        continue;
                    }
                    let get = |i: usize| {
                        idx[i]
                            .and_then(|c| record.get(c))
                            .filter(|v| !v.is_empty())
                            .map(str::to_string)
                    };
                    let row = ImportRow {
                        contact: get(0),
                        status: get(1),
                        occurred_at: get(2),
                        source: get(3),
                        scope: get(4),
                    };
                    self.row(line, row, &mut pending);
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    match csv_stop(e) {
                        Ok(reason) => {
                            self.report.rows += 1;
                            self.reject(line, format!("unreadable CSV row: {reason}"));
                        }
                        Err(stop) => {
                            self.commit(ledger, &mut pending)?;
                            return Err(stop);
                        }
                    }
                }
            }
            if pending.len() >= self.batch {
                self.commit(ledger, &mut pending)?;
            }
        }
        self.commit(ledger, &mut pending)
    }

    fn ndjson(&mut self, ledger: &Ledger, mut input: impl BufRead) -> Result<(), Stop> {
        let mut pending = Vec::new();
        let mut buf = Vec::new();
        let mut line = 0u64;
        loop {
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    self.commit(ledger, &mut pending)?;
                    return Err(Stop::Body(e));
                }
            }
            line += 1;
            let text = String::from_utf8_lossy(&buf);
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<ImportRow>(&text) {
                Ok(row) => self.row(line, row, &mut pending),
                Err(e) => {
                    self.report.rows += 1;
                    self.reject(line, format!("invalid JSON: {e}"));
                }
            }
            if pending.len() >= self.batch {
                self.commit(ledger, &mut pending)?;
            }
        }
        self.commit(ledger, &mut pending)
    }

    fn row(&mut self, line: u64, row: ImportRow, pending: &mut Vec<ConsentRecord>) {
        self.report.rows += 1;
        match self.validate(line, row) {
            Ok(record) => pending.push(record),
            Err(reason) => self.reject(line, reason),
        }
    }

    fn reject(&mut self, line: u64, reason: String) {
        self.report.rejected += 1;
        if self.report.rejections.len() < MAX_LISTED {
            self.report.rejections.push(RejectedRow { line, reason });
        }
    }

    /// Appends the valid rows read so far, in one durable batch. Rows are parsed before the
    /// batch opens, so a slow upload never holds the ledger's writer lock.
    fn commit(&mut self, ledger: &Ledger, pending: &mut Vec<ConsentRecord>) -> Result<(), Stop> {
        if pending.is_empty() {
            return Ok(());
        }
        let inputs: Vec<Input<'_>> = pending
            .iter()
            .map(|record| Input::Consent {
                tenant: &self.tenant,
                record,
            })
            .collect();
        let committed = commit::commit(ledger, &self.settings, &inputs, &mut Respond, Utc::now())?;
        for r in &committed.recorded {
            match r {
                Recorded::Appended(_) => self.report.imported += 1,
                Recorded::Duplicate { .. } => self.report.duplicates += 1,
            }
        }
        pending.clear();
        Ok(())
    }

    fn validate(&self, line: u64, row: ImportRow) -> Result<ConsentRecord, String> {
        let input = row.contact.ok_or("missing contact")?;
        let contact = contact::normalize(&input, self.profile.region)
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
                return Err(
                    "source must be at most 64 characters, without control characters".into(),
                );
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
}

/// A CSV error is either one bad row (`Ok(reason)`) or the end of the body (`Err`).
fn csv_stop(e: csv::Error) -> Result<String, Stop> {
    if !e.is_io_error() {
        return Ok(e.to_string());
    }
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Err(Stop::Body(io)),
        other => Ok(format!("{other:?}")),
    }
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
