//! The audit log of one tenant, streamed: every event with its proof fields, as JSON lines
//! (personal fields opened, `[erased]` where a key was destroyed) or CSV (the CLI's `export --format csv` columns),
//! written by [`query::export`] like the CLI's `export`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::IntoParams;

use super::auth::{Access, Caller};
use super::check::NDJSON;
use super::problem::{Path, Problem, Query};
use super::stream::{blocking_response, StreamError};
use super::AppState;
use crate::query::{self, ExportError, ExportFormat};

/// Written by hand because the format is the query's and OpenAPI derives stay in the HTTP
/// adapter.
impl utoipa::PartialSchema for ExportFormat {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ExportFormat::ALL.map(ExportFormat::as_str)))
            .into()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `jsonl` (default) or `csv`.
    #[param(inline)]
    pub format: Option<ExportFormat>,
    /// Only events recorded at or after this time (RFC 3339, or `YYYY-MM-DD` in UTC): an
    /// incremental export takes the time of the previous one.
    pub since: Option<String>,
}

/// The tenant's audit log, streamed.
///
/// Every event in log order (partition, then chain order) with its proof fields. JSON lines
/// show each event with its personal fields opened; the hashes cover the stored, sealed form
/// (`consent-ledger verify` checks them; an access export carries both forms).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/export", tag = "consent",
    params(("tenant" = String, Path, description = "Tenant id"), ExportQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The events", content(
            (String = "application/x-ndjson"),
            (String = "text/csv"),
        )),
        (status = 400, description = "Invalid format or since", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn export(
    caller: Caller,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, Problem> {
    let tenant = caller.allow(&tenant, Access::Read)?;
    let since: Option<DateTime<Utc>> = Problem::since_param(q.since.as_deref())?;
    let format = q.format.unwrap_or_default();
    let content_type = match format {
        ExportFormat::Jsonl => NDJSON,
        ExportFormat::Csv => "text/csv; charset=utf-8",
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{tenant}-consent-events.{}\"",
        format.as_str()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    let ledger = state.ledger.clone();
    Ok(blocking_response(content_type, headers, move |w| {
        query::export(&ledger, Some(&tenant), since, format, w).map_err(|e| match e {
            ExportError::Ledger(e) => StreamError::Ledger(e),
            ExportError::Io(e) => StreamError::Io(e),
        })
    }))
}
