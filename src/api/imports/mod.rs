//! Bulk import of existing opt-outs and opt-ins, so that a business moving from another
//! platform keeps every STOP it already owes its customers. Rows become events like any
//! other (source `import`), deduplicated by their content, so a file can be sent again after
//! a failure: rows already imported count as duplicates. Bad rows are reported with their
//! line and do not stop the others.
//!
//! All or nothing: the body is read whole (within `api.max_body_bytes` and
//! `api.body_timeout_secs`) before the first row is committed, so a body cut short, too
//! large or too slow imports nothing, and the client's error answer is the whole story.
//!
//! `mod.rs`: the handler and its answer; `rows.rs`: the CSV and NDJSON bodies read row by
//! row; `row.rs`: one row checked and turned into a consent record; `read.rs`: the rows
//! committed in batches.

mod read;
mod row;
mod rows;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use self::read::Importer;
use super::auth::{Access, Caller};
use super::check::{media_type, NDJSON};
use super::problem::{Path, Problem};
use super::stream;
use super::AppState;
use crate::config::TenantProfile;
use crate::domain::decide::ConsentRecord;
use crate::pipeline::commit::CommitError;

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
    /// Scale-out: valid rows put on the inbound topic (all in one transaction), recorded
    /// shortly by the instances that own their partitions; `imported` and `duplicates` stay
    /// 0 since this instance does not write them. Absent on a single instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<u64>,
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
/// content, so re-sending a file is safe. Nothing is committed before the whole body has
/// arrived: a 408, 413 or any other refusal means nothing was imported.
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
        (status = 408, description = "Body not received whole within `api.body_timeout_secs`; nothing was imported",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over `api.max_body_bytes`; nothing was imported",
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
) -> Result<axum::response::Response, Problem> {
    let tenant = caller.allow(&tenant, Access::Write)?;
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
    let body = stream::read_body(&headers, body, state.settings.api_max_body_bytes()).await?;
    let importer = Importer {
        forward: state.forward(),
        forwarded: Vec::new(),
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
            importer.csv(&ledger, &body[..])
        } else {
            importer.ndjson(&ledger, &body[..])
        };
        (importer, outcome)
    })
    .await
    .map_err(|e| Problem::internal(&e))?;
    let report = importer.report;
    state.metrics.events_appended.inc_by(report.imported);
    match outcome {
        Ok(()) if report.accepted.is_some() => {
            Ok((axum::http::StatusCode::ACCEPTED, Json(report)).into_response())
        }
        Ok(()) => Ok(Json(report).into_response()),
        Err(Stop::Forward(e)) => Err(Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "broker-unavailable",
            "Broker unavailable",
            format!("{e}; no row was imported, send the file again"),
        )
        .with_retry_after(1)),
        Err(Stop::Ledger(e)) => {
            // The body was whole, so only storage can fail here, between two batches.
            let mut p = Problem::from(e);
            p.detail = format!(
                "{}; {} rows were committed before the failure (sending the file again is \
                 safe: they count as duplicates)",
                p.detail, report.imported
            );
            Err(p)
        }
        Err(Stop::Header(detail)) => Err(Problem::bad_request(
            "invalid-header",
            "Invalid CSV header",
            detail,
        )),
    }
}

/// A row's line and its record, or the reason it is rejected.
#[doc(hidden)]
pub type Checked = (u64, Result<ConsentRecord, String>);

/// Every row of a body (CSV when `csv`, else NDJSON) with its line, checked and turned into
/// the record it asks for or the reason it is rejected, exactly as an import would, but
/// nothing committed. An unusable CSV header is the error. For the fuzz target
/// `import_rows`, which holds every body to "each row is a record or a reason".
#[doc(hidden)]
pub fn check_rows(
    profile: &TenantProfile,
    csv: bool,
    input: &[u8],
) -> Result<Vec<Checked>, String> {
    let checked = |(line, row): rows::Row| {
        let record = row.and_then(|r| row::record(profile, line, r).map_err(|e| e.to_string()));
        (line, record)
    };
    Ok(if csv {
        rows::csv(input)?.0.map(checked).collect()
    } else {
        rows::ndjson(input).map(checked).collect()
    })
}

/// Why an import stopped before the end of its body.
enum Stop {
    Ledger(CommitError),
    Header(String),
    /// Scale-out: the broker did not take the rows; none of them is on the topic.
    Forward(crate::api::forward::ForwardError),
}

impl From<CommitError> for Stop {
    fn from(e: CommitError) -> Self {
        Stop::Ledger(e)
    }
}
