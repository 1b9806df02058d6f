//! `DELETE /v1/tenants/{t}/contacts/{c}`: erasure of a person (RGPD Art. 17), like the CLI's
//! `erase`. The business is the controller, so only its own token may ask; the admin token
//! stays read-only.

use axum::extract::State;
use axum::http::StatusCode;
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
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The `Erased` event (now, or the earlier one)",
            body = ref("#/components/schemas/ConsentEvent")),
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
) -> Result<Json<ConsentEvent>, Problem> {
    let tenant = caller.allow(&tenant, Access::Write)?;
    let contact = contact_in_path(&state, &tenant, &input)?;
    let request = erasure::request(&caller.requested_by(), &q.reason)
        .map_err(|e| Problem::bad_request("invalid-reason", "Invalid reason", e.to_string()))?;
    if state.forward().is_some() {
        // An erasure written here would fork a chain the record topic holds; until it
        // travels through Kafka like the other writes, scale-out refuses it openly.
        return Err(Problem::new(
            StatusCode::NOT_IMPLEMENTED,
            "erasure-not-in-scale-out",
            "Erasure not available in scale-out yet",
            "with [kafka] scale_out = true an erasure is not yet written through Kafka; nothing was erased. Stop the instances and run `consent-ledger erase` on one instance without scale_out, or see the README, \"Scale-out\"",
        ));
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
        Erased::Now(event) | Erased::Before(event) => Ok(Json(*event)),
        Erased::Unknown => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-contact",
            "Unknown contact",
            "the ledger holds nothing about this contact in this tenant",
        )),
    }
}
