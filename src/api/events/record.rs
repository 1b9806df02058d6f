//! `POST /v1/tenants/{tenant}/consent-events`: a decision taken elsewhere (a web form, a
//! support agent, a CRM) recorded like a STOP, once per `Idempotency-Key`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use super::consent_event;
use crate::api::auth::{Access, Caller};
use crate::api::consent::contact_in_path;
use crate::api::problem::{Path, Problem};
use crate::api::{stream, AppState};
use crate::domain::consent::{event_type_for, purposes_for, ContactConsent, Request};
use crate::domain::decide::{ConsentRecord, RecordOrigin};
use crate::domain::event::ConsentEvent;
use crate::domain::keywords::Scope;
use crate::pipeline::commit::{self, Input, Recorded, Respond};

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum DecisionType {
    OptedOut,
    OptedIn,
}

/// Written by hand here because OpenAPI belongs to the HTTP adapter, not to the domain type:
/// `marketing` (STOP) or `all` (STOP ALL: every purpose, transactional included; opt-outs only).
impl utoipa::PartialSchema for Scope {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("What an opt-out covers."))
            .enum_values(Some([Scope::Marketing, Scope::All].map(Scope::as_str)))
            .into()
    }
}

impl ToSchema for Scope {}

/// The evidence of a decision, kept in the event's `source.text`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// Where the decision was given (the web form, the ticket), http(s).
    pub url: Option<String>,
    /// What the person saw or said: the checkbox wording, the agent's note.
    pub text: Option<String>,
}

/// A consent decision to record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "contact": "+33612345678", "type": "OptedIn", "channel": "web", "source": "web_form",
    "occurred_at": "2025-11-24T10:00:00Z",
    "proof": {"url": "https://shop.example/newsletter", "text": "I agree to receive offers by WhatsApp"}
}))]
pub struct RecordRequest {
    /// Phone number, any spelling the CLI accepts.
    pub contact: String,
    #[serde(rename = "type")]
    pub event_type: DecisionType,
    /// Default `marketing`.
    #[serde(default)]
    pub scope: Scope,
    /// When the person decided; default now. At most `max_clock_skew_seconds` (default 300)
    /// ahead of the server clock and not before `earliest_event_time` (default 2000-01-01).
    pub occurred_at: Option<DateTime<Utc>>,
    /// Where it was given (`web`, `support`, `crm`, …); default `api`. Letters, digits, `._-`.
    pub channel: Option<String>,
    /// What recorded it (`web_form`, `support_agent`, …), kept in `source.rule`.
    pub source: Option<String>,
    pub proof: Option<Proof>,
    /// ISO 639-1 language of the exchange.
    pub language: Option<String>,
    /// The campaign the decision answers, when known.
    pub campaign_id: Option<String>,
}

/// Scale-out: the decision is on the inbound topic, and the instance that owns its partition
/// records it shortly (`?wait=SECONDS` waits for it and answers 201 instead).
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedResponse {
    pub accepted: bool,
    /// The id the event will have: the same for every retry with this key.
    pub event_id: uuid::Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordResponse {
    /// True when this `Idempotency-Key` was recorded before: `event` is the original one and
    /// nothing was appended.
    pub replayed: bool,
    #[schema(schema_with = consent_event)]
    pub event: ConsentEvent,
}

/// Record a consent decision given outside WhatsApp/SMS.
///
/// A web-form opt-in with its proof, a support agent's opt-out, a CRM sync. The event is
/// appended to the ledger and published to subscribers like a STOP; no message is sent to
/// the customer. `Idempotency-Key` is required: a retry with the same key returns the
/// original event (200, `Idempotent-Replayed: true`) instead of appending a second one; the
/// same key with another contact or type is a 409.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/consent-events", tag = "events",
    params(
        ("tenant" = String, Path, description = "Tenant id"),
        ("Idempotency-Key" = String, Header,
            description = "Unique per decision, 1 to 255 visible ASCII characters"),
        ("wait" = Option<u64>, Query,
            description = "Scale-out only: seconds (1 to 60) to wait for the decision to be recorded; 201 once it is, 202 when the wait runs out"),
    ),
    request_body = RecordRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Recorded", body = RecordResponse),
        (status = 200, description = "Already recorded under this key: the original event",
            body = RecordResponse),
        (status = 202, description = "Scale-out: on the inbound topic, to be recorded by the instance that owns its partition",
            body = AcceptedResponse),
        (status = 503, description = "Scale-out: the broker did not take it; nothing was recorded", body = Problem,
            content_type = "application/problem+json"),
        (status = 400, description = "Invalid body, contact or key", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant, or the admin token", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "Key already used for another decision", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "Body over `api.max_body_bytes`", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn record(
    caller: Caller,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let tenant = caller.allow(&tenant, Access::Write)?;
    let key = idempotency_key(&headers)?;
    let wait = wait_param(&uri)?;
    let req: RecordRequest =
        stream::read_json(&headers, body, state.settings.api_max_body_bytes()).await?;
    let contact = contact_in_path(&state, &tenant, &req.contact)?;
    let now = Utc::now();
    let occurred_at = req.occurred_at.unwrap_or(now);
    // Refused rather than corrected: the business can fix its own input, and a corrected
    // time would misdate its proof.
    state
        .settings
        .profile(&tenant)
        .clock
        .check(occurred_at, now)
        .map_err(|e| invalid(format!("occurred_at {e}")))?;
    let request =
        match (req.event_type, req.scope) {
            (DecisionType::OptedOut, scope) => Request::OptOut {
                all: scope == Scope::All,
            },
            (DecisionType::OptedIn, Scope::Marketing) => Request::OptIn,
            (DecisionType::OptedIn, Scope::All) => return Err(invalid(
                "scope \"all\" applies to OptedOut only; an OptedIn restores every revoked purpose",
            )),
        };
    let record = ConsentRecord {
        origin: RecordOrigin::Api,
        key,
        contact: contact.clone(),
        request,
        occurred_at,
        channel: label("channel", req.channel.as_deref())?.unwrap_or_else(|| "api".into()),
        label: label("source", req.source.as_deref())?,
        proof: proof_text(req.proof.unwrap_or_default())?,
        language: language(req.language.as_deref())?,
        campaign_id: bounded("campaign_id", req.campaign_id, 128)?,
        line: None,
    };
    if let Some(forward) = state.forward() {
        return forwarded(&state, &forward, tenant, record, wait).await;
    }
    let (ledger, settings) = (state.ledger.clone(), state.settings.clone());
    let recorded = tokio::task::spawn_blocking(move || {
        let input = Input::Consent {
            tenant: &tenant,
            record: &record,
        };
        let mut committed = commit::commit(&ledger, &settings, &[input], &mut Respond, now)?;
        Ok::<_, crate::pipeline::CommitError>(match committed.recorded.pop() {
            Some(Recorded::Appended(event)) => Some((true, *event)),
            Some(Recorded::Duplicate { event_id }) => ledger
                .history(&tenant, &record.contact)?
                .into_iter()
                .find(|e| e.event_id == event_id && same_decision(e, &record))
                .map(|e| (false, e)),
            None => None,
        })
    })
    .await
    .map_err(|e| Problem::internal(&e))??;
    match recorded {
        Some((true, event)) => {
            state.metrics.events_appended.inc();
            Ok(created(event))
        }
        Some((false, event)) => Ok(replayed(event)),
        None => Err(key_reused()),
    }
}

/// Scale-out: the decision onto the inbound topic (see `api/forward.rs`). A key this view
/// already holds is answered from it at once, as a single instance would.
async fn forwarded(
    state: &AppState,
    forward: &crate::api::forward::Forward,
    tenant: crate::domain::tenant::TenantId,
    record: ConsentRecord,
    wait: Option<std::time::Duration>,
) -> Result<Response, Problem> {
    if let Some(answer) = recorded_in_view(state, &tenant, &record, false).await? {
        return Ok(answer);
    }
    forward
        .one(&tenant, &record)
        .await
        .map_err(|e| e.problem("nothing was recorded"))?;
    if let Some(wait) = wait {
        let answer = crate::api::forward::wait_for(&state.ledger, wait, || {
            recorded_in_view(state, &tenant, &record, true)
        })
        .await?;
        if let Some(answer) = answer {
            return Ok(answer);
        }
    }
    let event_id = record.event_id(&tenant);
    Ok((
        StatusCode::ACCEPTED,
        Json(AcceptedResponse {
            accepted: true,
            event_id,
        }),
    )
        .into_response())
}

/// The answer this instance's view gives for `record`'s key, when it holds it: the event
/// (201 when `fresh`, this request's own; else a 200 replay), or a 409 when the key
/// recorded another decision.
async fn recorded_in_view(
    state: &AppState,
    tenant: &crate::domain::tenant::TenantId,
    record: &ConsentRecord,
    fresh: bool,
) -> Result<Option<Response>, Problem> {
    let (ledger, tenant, record) = (state.ledger.clone(), tenant.clone(), record.clone());
    let found = tokio::task::spawn_blocking(move || {
        if !ledger.is_seen(&tenant, &record.key, record.origin.dedupe_kind())? {
            return Ok::<_, crate::ledger::LedgerError>(None);
        }
        let event_id = record.event_id(&tenant);
        Ok(Some(
            ledger
                .history(&tenant, &record.contact)?
                .into_iter()
                .find(|e| e.event_id == event_id && same_decision(e, &record)),
        ))
    })
    .await
    .map_err(|e| Problem::internal(&e))??;
    Ok(match found {
        None => None,
        Some(Some(event)) if fresh => Some(created(event)),
        Some(Some(event)) => Some(replayed(event)),
        Some(None) => Some(key_reused().into_response()),
    })
}

/// 201 and the event this request recorded.
fn created(event: ConsentEvent) -> Response {
    let body = RecordResponse {
        replayed: false,
        event,
    };
    (StatusCode::CREATED, Json(body)).into_response()
}

/// 200 and the event an earlier request with this key recorded.
fn replayed(event: ConsentEvent) -> Response {
    let mut res = Json(RecordResponse {
        replayed: true,
        event,
    })
    .into_response();
    res.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    res
}

fn key_reused() -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "idempotency-key-reused",
        "Idempotency key reused",
        "this Idempotency-Key was already used for a decision about another contact, of another type or of another scope; use a new key for a new decision",
    )
}

/// `?wait=SECONDS` (1 to 60): scale-out answers 201 once the decision is in this instance's
/// view, or 202 when the wait runs out. A single instance records at once and ignores it.
pub(crate) fn wait_param(uri: &axum::http::Uri) -> Result<Option<std::time::Duration>, Problem> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "wait" {
            continue;
        }
        return match value.parse::<u64>() {
            Ok(0) => Ok(None),
            Ok(secs @ 1..=60) => Ok(Some(std::time::Duration::from_secs(secs))),
            _ => Err(Problem::bad_request(
                "invalid-wait",
                "Invalid wait",
                format!("wait must be a whole number of seconds from 0 to 60 (got {value:?})"),
            )),
        };
    }
    Ok(None)
}

/// Whether `event`, stored under the request's key, records the decision `record` asks for.
/// The event id covers the key and the type only, so a retry that widened a STOP to a
/// STOP ALL would otherwise be answered with the narrower event, and the STOP ALL lost.
fn same_decision(event: &ConsentEvent, record: &ConsentRecord) -> bool {
    event.contact == record.contact
        && event.event_type == event_type_for(record.request)
        && match record.request {
            // An opt-out's purposes follow from its scope alone.
            Request::OptOut { .. } => {
                event.purposes == purposes_for(record.request, &ContactConsent::default())
            }
            // An opt-in's depend on the state it met, and its scope is always marketing.
            Request::OptIn => true,
        }
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::bad_request("invalid-body", "Invalid body", detail)
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Err(Problem::bad_request(
            "idempotency-key-missing",
            "Idempotency-Key required",
            "send an Idempotency-Key header (e.g. a UUID) so that a retry cannot record the decision twice",
        ));
    };
    let key = value.to_str().unwrap_or("");
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::bad_request(
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            "the Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(key.to_string())
}

/// A short machine label: it ends up in exports and dashboards, so keep it plain.
pub fn label(field: &str, value: Option<&str>) -> Result<Option<String>, Problem> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.len() > 64
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(invalid(format!(
            "{field} must be 1 to 64 letters, digits, '.', '_' or '-' (got {v:?})"
        )));
    }
    Ok(Some(v.to_string()))
}

fn bounded(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, Problem> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(invalid(format!("{field} is longer than {max} characters")))
        }
        other => Ok(other.filter(|v| !v.trim().is_empty())),
    }
}

fn language(value: Option<&str>) -> Result<Option<String>, Problem> {
    match value {
        None => Ok(None),
        Some(v) if (2..=8).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphabetic()) => {
            Ok(Some(v.to_ascii_lowercase()))
        }
        Some(v) => Err(invalid(format!(
            "language must be an ISO 639-1 code such as \"fr\" (got {v:?})"
        ))),
    }
}

/// The proof as one text: `TEXT [proof_url: URL]`, the form `source.text` has for buttons.
pub fn proof_text(proof: Proof) -> Result<Option<String>, Problem> {
    let text = bounded("proof.text", proof.text, 4096)?;
    let url = bounded("proof.url", proof.url, 2048)?;
    if let Some(u) = &url {
        if !(u.starts_with("https://") || u.starts_with("http://"))
            || u.contains(char::is_whitespace)
        {
            return Err(invalid("proof.url must be an http(s) URL"));
        }
    }
    Ok(match (text, url) {
        (None, None) => None,
        (Some(t), None) => Some(t),
        (None, Some(u)) => Some(format!("[proof_url: {u}]")),
        (Some(t), Some(u)) => Some(format!("{t} [proof_url: {u}]")),
    })
}
