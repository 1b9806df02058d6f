//! The campaign audience filter over HTTP: which of these contacts may receive a message of
//! this purpose now. Campaigns send whole audiences (a million numbers is ordinary), so the
//! answer is streamed as it is computed from a blocking thread: a JSON request body is held
//! once and walked in place (json_body.rs), an NDJSON body is read line by line (ndjson.rs),
//! and neither answer is built in memory before it is sent (answer.rs).
//!
//! Each contact goes through [`crate::query::Audience`], like the CLI's `check`: this module
//! only reads the request and formats the verdicts. A contact given twice (in any spelling)
//! is answered once; later copies are counted as duplicates.

mod answer;
mod json_body;
mod ndjson;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::io::BufReader;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};

pub use self::ndjson::{Line, Lines};

use self::answer::{Answer, Position};
use self::json_body::Counted;
use super::auth::{Access, Caller};
use super::consent::DEFAULT_PURPOSE;
use super::problem::{Path, Problem, Query};
use super::stream::{self, BodyReader, StreamError};
use super::AppState;
use crate::config::TenantProfile;
use crate::domain::event::Purpose;
use crate::domain::tenant::TenantId;
use crate::metrics::Metrics;
use crate::query::{Audience, Counts, Repeats};

pub const NDJSON: &str = "application/x-ndjson";

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckQuery {
    /// Purpose for NDJSON requests (a JSON body says it in `purpose`); default `marketing`.
    #[param(inline)]
    pub purpose: Option<Purpose>,
}

/// A JSON check request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Default `marketing`.
    pub purpose: Option<Purpose>,
    /// Phone numbers in any spelling the CLI accepts. Numbers given as JSON numbers are read
    /// as their digits; other values are reported as invalid items.
    #[schema(value_type = Vec<String>)]
    pub contacts: Counted,
}

/// The JSON answer. Streamed: `allowed` first, then `excluded`, `invalid` and `counts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    pub purpose: Purpose,
    /// Contacts that may be sent to, E.164, in request order, each once.
    pub allowed: Vec<String>,
    pub excluded: Vec<Excluded>,
    pub invalid: Vec<Invalid>,
    pub counts: Counts,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Excluded {
    /// E.164.
    pub contact: String,
    /// `opted_out`, `no_opt_in`, `revoked_all` or
    /// `marketing_opted_out_and_tenant_blocks_transactional`.
    pub reason: String,
    /// Since when (the customer's message time), when known.
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Invalid {
    /// Position in `contacts` (from 0), or line of the NDJSON body (from 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The item as given.
    pub input: String,
    pub reason: String,
}

/// Written by hand because the counts are the query's ([`crate::query::Counts`]) and OpenAPI
/// derives stay in the HTTP adapter.
impl utoipa::PartialSchema for Counts {
    fn schema() -> RefOr<Schema> {
        let count = |description: Option<&str>| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0))
                .description(description)
        };
        let mut counts = ObjectBuilder::new();
        for (name, description) in [
            ("checked", Some("Items read (blank NDJSON lines excluded).")),
            ("allowed", None),
            ("excluded", None),
            ("invalid", None),
            (
                "duplicates",
                Some("Items that repeat an earlier contact, in any spelling; answered once."),
            ),
        ] {
            counts = counts.property(name, count(description)).required(name);
        }
        counts.into()
    }
}

impl ToSchema for Counts {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Counts")
    }
}

/// One line of an NDJSON answer, in request order; the last line has `outcome: "summary"`
/// and the counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckLine {
    /// `allowed`, `excluded`, `invalid`, `duplicate`, `summary`, or `error` (the body was cut
    /// short: too large or unreadable; `detail` says why).
    pub outcome: String,
    /// Line of the request body (from 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// E.164 (allowed, excluded, duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// The line as given (invalid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
}

/// The campaign audience filter.
///
/// Send `application/json` (`{"purpose": "marketing", "contacts": [...]}`) for a JSON answer,
/// or `application/x-ndjson` (one contact per line: a JSON string, `{"contact": "..."}`, or
/// the bare number; purpose in the query) for an NDJSON answer streamed line by line as the
/// body is read. `Accept` may ask for the other answer format. Invalid contacts are reported
/// per item; the request as a whole still succeeds. At least 1,000,000 contacts per request.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/consent/check", tag = "consent",
    params(("tenant" = String, Path, description = "Tenant id"), CheckQuery),
    request_body(content(
        (CheckRequest = "application/json"),
        (String = "application/x-ndjson", example = "\"+33612345678\"\n{\"contact\":\"06 12 34 56 78\"}\n+14155552671\n"),
    )),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The audience, filtered", content(
            (CheckResponse = "application/json"),
            (CheckLine = "application/x-ndjson"),
        )),
        (status = 400, description = "Malformed body or query", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "Body over `api.max_body_bytes`", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor NDJSON", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn check(
    caller: Caller,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<CheckQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let tenant = caller.allow(&tenant, Access::Read)?;
    let limit = state.settings.api_max_body_bytes();
    let ndjson_in = match media_type(&headers, header::CONTENT_TYPE).as_deref() {
        Some("application/json") | None => false,
        Some(NDJSON) | Some("application/jsonl") | Some("text/plain") => true,
        Some(other) => {
            return Err(Problem::unsupported_media_type(format!(
                "send the contacts as application/json or {NDJSON}, not {other}"
            )))
        }
    };
    let ndjson_out = match media_type(&headers, header::ACCEPT).as_deref() {
        Some(NDJSON) => true,
        Some("application/json") => false,
        _ => ndjson_in,
    };
    let content_type = if ndjson_out {
        NDJSON
    } else {
        "application/json"
    };
    let profile = state.settings.profile(&tenant);
    let mut purpose = q.purpose.unwrap_or(DEFAULT_PURPOSE);
    if ndjson_in {
        stream::check_declared_length(&headers, limit)?;
        let reader = BodyReader::start(body, limit).await;
        return Ok(stream::blocking_response(
            content_type,
            HeaderMap::new(),
            move |w| {
                let mut checker = Checker::new(&state, &profile, &tenant, purpose);
                let mut out = Answer::new(ndjson_out, purpose, w)?;
                let input = BufReader::with_capacity(64 * 1024, reader);
                let read = ndjson::check_lines(&mut checker, input, limit, &mut out);
                checker.report();
                match read? {
                    ndjson::Read::Whole => out.finish(checker.audience.counts()),
                    ndjson::Read::CutShort(detail) => out.error(&detail),
                }
            },
        ));
    }
    let bytes = stream::read_body(&headers, body, limit).await?;
    // First pass: the whole body is valid before the 200 goes out, so a typo still gets a
    // proper 400; it only counts the contacts, nothing is kept.
    let (bytes, envelope) = tokio::task::spawn_blocking(move || {
        let envelope = serde_json::from_slice::<CheckRequest>(&bytes);
        (bytes, envelope)
    })
    .await
    .map_err(|e| Problem::internal(&e))?;
    let envelope = envelope.map_err(|e| {
        Problem::bad_request(
            "invalid-body",
            "Invalid body",
            format!("the body is not a check request ({{\"purpose\", \"contacts\": [...]}}): {e}"),
        )
    })?;
    if let Some(p) = envelope.purpose {
        purpose = p;
    }
    tracing::debug!(contacts = envelope.contacts.0, "checking an audience");
    Ok(stream::blocking_response(
        content_type,
        HeaderMap::new(),
        move |w| {
            let mut checker = Checker::new(&state, &profile, &tenant, purpose);
            let mut out = Answer::new(ndjson_out, purpose, w)?;
            let walked = json_body::walk(&bytes, &mut checker, &mut out);
            checker.report();
            walked?;
            out.finish(checker.audience.counts())
        },
    ))
}

/// The media type of a header, lower-case and without parameters (`; charset=utf-8`).
pub fn media_type(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?;
    let first = v.split(',').next()?;
    Some(first.split(';').next()?.trim().to_ascii_lowercase())
}

/// One request's audience, with what the HTTP answer adds to it: the metrics and the error
/// that stopped a walk of the JSON body.
struct Checker<'a> {
    audience: Audience<'a>,
    metrics: &'a Metrics,
    /// Items already added to the metrics.
    reported: u64,
    /// Why a walk of the JSON body stopped, when it was not the JSON.
    failure: Option<StreamError>,
}

impl<'a> Checker<'a> {
    fn new(
        state: &'a AppState,
        profile: &'a TenantProfile,
        tenant: &'a TenantId,
        purpose: Purpose,
    ) -> Self {
        Checker {
            audience: Audience::new(&state.ledger, profile, tenant, purpose, Repeats::AnswerOnce),
            metrics: &state.metrics,
            reported: 0,
            failure: None,
        }
    }

    fn one(&mut self, input: &str, at: Position, out: &mut Answer<'_>) -> Result<(), StreamError> {
        let verdict = self.audience.check(input)?;
        if self.audience.counts().checked % 10_000 == 0 {
            self.report();
        }
        out.verdict(verdict, &at)
    }

    /// An item that is no contact at all, reported as invalid with `reason`.
    fn not_a_contact(
        &mut self,
        input: &str,
        reason: &str,
        at: Position,
        out: &mut Answer<'_>,
    ) -> Result<(), StreamError> {
        self.audience.not_a_contact();
        out.invalid(input, reason, &at)
    }

    fn report(&mut self) {
        let checked = self.audience.counts().checked;
        self.metrics
            .contacts_checked
            .inc_by(checked - self.reported);
        self.reported = checked;
    }
}
