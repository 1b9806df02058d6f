//! One contact: its consent for a purpose (what a sender asks before one message) and its
//! history (what a business shows a customer or a regulator). Both answer exactly as the CLI's
//! `status --json` and `history --json` do, through the same query code.

use std::borrow::Cow;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Access, Caller};
use super::openapi::schema_ref;
use super::problem::{Path, Problem, Query};
use super::AppState;
use crate::domain::contact::Contact;
use crate::domain::event::{ConsentEvent, Purpose};
use crate::domain::tenant::TenantId;
use crate::query::{self, StatusRecord};

/// The purpose when a request names none.
pub const DEFAULT_PURPOSE: Purpose = Purpose::Marketing;

/// Written by hand here because OpenAPI belongs to the HTTP adapter, not to the domain type;
/// named `PurposeParam` as the published document always called it.
impl utoipa::PartialSchema for Purpose {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("`marketing` or `transactional`."))
            .enum_values(Some(Purpose::ALL.map(Purpose::as_str)))
            .into()
    }
}

impl ToSchema for Purpose {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("PurposeParam")
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PurposeQuery {
    /// The purpose of the message about to be sent (default `marketing`).
    #[param(inline)]
    pub purpose: Option<Purpose>,
}

/// A contact from a path segment, normalized with the tenant's region like the CLI does.
pub fn contact_in_path(
    state: &AppState,
    tenant: &TenantId,
    input: &str,
) -> Result<Contact, Problem> {
    let profile = state.settings.profile(tenant);
    query::contact(&profile, input)
        .map_err(|e| Problem::bad_request("invalid-contact", "Invalid contact", e.to_string()))
}

/// The consent of one contact for one purpose, and whether a message may be sent now.
///
/// `may_send` applies the tenant's policy (`marketing_requires_opt_in`,
/// `transactional_after_optout`); `reason` says why not. The contact may be written in any
/// spelling the CLI accepts, URL-encoded (`%2B33612345678`).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/contacts/{contact}/consent", tag = "consent",
    params(
        ("tenant" = String, Path, description = "Tenant id"),
        ("contact" = String, Path, description = "Phone number, URL-encoded (`%2B33612345678`)"),
        PurposeQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The consent record (schemas/consent-status.v1.json)",
            body = ref("#/components/schemas/StatusRecord")),
        (status = 400, description = "Invalid contact, tenant or purpose", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn get_consent(
    caller: Caller,
    State(state): State<AppState>,
    Path((tenant, input)): Path<(String, String)>,
    Query(q): Query<PurposeQuery>,
) -> Result<Json<StatusRecord>, Problem> {
    let tenant = caller.allow(&tenant, Access::Read)?;
    let contact = contact_in_path(&state, &tenant, &input)?;
    let profile = state.settings.profile(&tenant);
    let purpose = q.purpose.unwrap_or(DEFAULT_PURPOSE);
    Ok(Json(query::status(
        &state.ledger,
        &profile,
        &tenant,
        &contact,
        purpose,
    )?))
}

/// Every consent event of one contact.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    #[schema(value_type = String)]
    pub tenant: TenantId,
    /// E.164, or a WhatsApp user ID as written.
    pub contact: String,
    /// Oldest first in event time (ties by append order), each with its proof: source message,
    /// position in the hash chain, `prev_hash` and `hash`.
    #[schema(schema_with = consent_events)]
    pub events: Vec<ConsentEvent>,
    /// The person's other identifiers (a number and its WhatsApp user ID, an old number and
    /// the new one): their events are part of `events`, and consent follows the person.
    #[schema(value_type = Vec<String>)]
    pub linked: Vec<Contact>,
}

fn consent_events() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::Array::new(schema_ref("ConsentEvent"))
}

/// The history of one contact, with the proof of every decision.
///
/// What a business shows a customer who asks (RGPD Art. 15) or a regulator who asks when and
/// how consent was withdrawn: each event keeps its source message and its place in the hash
/// chain (`partition`, `seq`, `prev_hash`, `hash`), which `consent-ledger verify` checks.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/contacts/{contact}/history", tag = "consent",
    params(
        ("tenant" = String, Path, description = "Tenant id"),
        ("contact" = String, Path, description = "Phone number, URL-encoded (`%2B33612345678`)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The events, oldest first", body = History),
        (status = 400, description = "Invalid contact or tenant", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn get_history(
    caller: Caller,
    State(state): State<AppState>,
    Path((tenant, input)): Path<(String, String)>,
) -> Result<Json<History>, Problem> {
    let tenant = caller.allow(&tenant, Access::Read)?;
    let contact = contact_in_path(&state, &tenant, &input)?;
    let history = query::history(&state.ledger, &tenant, &contact)?;
    Ok(Json(History {
        tenant,
        contact: contact.to_string(),
        events: history.events,
        linked: history.linked,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessExportQuery {
    /// `json` (default: the verifiable form), `html` or `text` (to send to the person).
    pub format: Option<String>,
}

/// The access export of one person (RGPD Art. 15), with proofs.
///
/// Every event about the person behind the contact (each of their identifiers, and the links
/// between them), each tied by its hash chain to a head signed with the ledger's Ed25519 key.
/// The JSON form is checked offline by `consent-ledger verify-export` or
/// `scripts/verify_export.py`; html and text are what a support agent sends to the person.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/contacts/{contact}/export", tag = "consent",
    params(
        ("tenant" = String, Path, description = "Tenant id"),
        ("contact" = String, Path, description = "Any identifier of the person, URL-encoded (`%2B33612345678`)"),
        AccessExportQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The proof file (schemas/access-export.v1.json), or its html or text form",
            body = ref("#/components/schemas/ProofFile")),
        (status = 400, description = "Invalid contact, tenant or format", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No event about this contact", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn get_access_export(
    caller: Caller,
    State(state): State<AppState>,
    Path((tenant, input)): Path<(String, String)>,
    Query(q): Query<AccessExportQuery>,
) -> Result<axum::response::Response, Problem> {
    use crate::proof::{export, render};
    use axum::response::IntoResponse;
    let tenant = caller.allow(&tenant, Access::Read)?;
    let contact = contact_in_path(&state, &tenant, &input)?;
    let form = render::Form::parse(q.format.as_deref().unwrap_or("json"))
        .map_err(|detail| Problem::bad_request("invalid-query", "Invalid query", detail))?;
    let ledger = state.ledger.clone();
    let (t, c) = (tenant.clone(), contact.clone());
    let built =
        tokio::task::spawn_blocking(move || export::build(&ledger, &t, &c, chrono::Utc::now()))
            .await
            .map_err(|e| Problem::internal(&e))?;
    let file = match built {
        Ok(file) => file,
        Err(export::ExportError::Unknown(_)) => {
            return Err(Problem::new(
                axum::http::StatusCode::NOT_FOUND,
                "unknown-contact",
                "Unknown contact",
                "no event about this contact in this tenant",
            ))
        }
        Err(e) => return Err(Problem::internal(&e)),
    };
    Ok((
        [(axum::http::header::CONTENT_TYPE, form.content_type())],
        form.bytes(&file),
    )
        .into_response())
}
