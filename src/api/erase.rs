//! `DELETE /v1/tenants/{t}/contacts/{c}`: erasure of a person (RGPD Art. 17), like the CLI's
//! `erase`. The business is the controller, so only its own token may ask; the admin token
//! stays read-only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::{Access, Caller};
use super::consent::contact_in_path;
use super::problem::{Path, Problem, Query};
use super::AppState;
use crate::domain::erasure;
use crate::domain::event::ConsentEvent;
use crate::ledger::Erased;
use crate::pipeline::commit::API_PARTITION;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EraseQuery {
    /// Why the person is erased (one line, at most 500 characters). Kept in clear in the
    /// chain with the token that asked: write no personal data in it.
    pub reason: String,
}

/// Erases the person behind the contact.
///
/// Destroys the keys of every identifier linked to the contact, appends the `Erased` event
/// (who asked, when, why) and puts each identifier on the suppression list, in one durable
/// batch, before answering. The identifiers stay excluded from marketing until an opt-in
/// from that identifier arrives. Erasing again answers the existing `Erased` event.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/contacts/{contact}", tag = "consent",
    params(
        ("tenant" = String, Path, description = "Tenant id"),
        ("contact" = String, Path, description = "Any identifier of the person, URL-encoded (`%2B33612345678`)"),
        EraseQuery,
        ("wait" = Option<u64>, Query,
            description = "Scale-out only: seconds (1 to 60) to wait for the erasure to be written; 200 once it is, 202 when the wait runs out"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The `Erased` event (now, or the earlier one)",
            body = ref("#/components/schemas/ConsentEvent")),
        (status = 202, description = "Scale-out: on the inbound topic, to be written by the instance that owns its partition"),
        (status = 400, description = "Invalid contact, tenant or reason", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant, or the read-only admin token", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "The ledger never saw this contact", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn erase(
    caller: Caller,
    State(state): State<AppState>,
    Path((tenant, input)): Path<(String, String)>,
    Query(q): Query<EraseQuery>,
    uri: axum::http::Uri,
) -> Result<Response, Problem> {
    let tenant = caller.allow(&tenant, Access::Write)?;
    let contact = contact_in_path(&state, &tenant, &input)?;
    let request = erasure::request(&caller.requested_by(), &q.reason)
        .map_err(|e| Problem::bad_request("invalid-reason", "Invalid reason", e.to_string()))?;
    if let Some(forward) = state.forward() {
        return forwarded(&state, &forward, &tenant, &contact, &request, &uri).await;
    }
    let ledger = state.ledger.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        ledger.erase(
            &tenant,
            &contact,
            request,
            API_PARTITION,
            chrono::Utc::now(),
        )
    })
    .await
    .map_err(|e| Problem::internal(&e))?
    .map_err(|e| Problem::internal(&e))?;
    match outcome {
        Erased::Now(event) | Erased::Before(event) => Ok(Json(*event).into_response()),
        Erased::Unknown => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-contact",
            "Unknown contact",
            "the ledger holds nothing about this contact in this tenant",
        )),
    }
}

/// Scale-out: the erasure onto the inbound topic, written by the owner of its partition
/// (`api/forward.rs`). 202 once the broker has it; with `?wait=SECONDS`, 200 and the `Erased`
/// event once this instance's view holds it. A person this view already knows as erased is
/// answered at once.
async fn forwarded(
    state: &AppState,
    forward: &crate::api::forward::Forward,
    tenant: &crate::domain::tenant::TenantId,
    contact: &crate::domain::contact::Contact,
    request: &crate::domain::event::Erasure,
    uri: &axum::http::Uri,
) -> Result<Response, Problem> {
    let wait = crate::api::events::record::wait_param(uri)?;
    if let Some(event) = erased_in_view(state, tenant, contact).await? {
        return Ok(Json(event).into_response());
    }
    forward
        .erase(tenant, contact, request)
        .await
        .map_err(|e| e.problem("nothing was erased"))?;
    if let Some(wait) = wait {
        let erased = crate::api::forward::wait_for(&state.ledger, wait, || {
            erased_in_view(state, tenant, contact)
        })
        .await?;
        if let Some(event) = erased {
            return Ok(Json(event).into_response());
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"accepted": true})),
    )
        .into_response())
}

/// The `Erased` event that suppresses `contact`, when this instance's view holds one.
async fn erased_in_view(
    state: &AppState,
    tenant: &crate::domain::tenant::TenantId,
    contact: &crate::domain::contact::Contact,
) -> Result<Option<ConsentEvent>, Problem> {
    let (ledger, tenant, contact) = (state.ledger.clone(), tenant.clone(), contact.clone());
    tokio::task::spawn_blocking(move || ledger.erased_event_of(&tenant, &contact))
        .await
        .map_err(|e| Problem::internal(&e))?
        .map_err(|e| Problem::internal(&e))
}
