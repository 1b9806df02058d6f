//! `GET /v1/tenants/{tenant}/events`: the long-poll feed that automations without Kafka follow
//! to stop a flow the moment a customer opts out.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::consent_event;
use crate::api::auth::{Access, Caller};
use crate::api::problem::{Path, Problem, Query};
use crate::api::AppState;
use crate::domain::event::ConsentEvent;
use crate::domain::tenant::TenantId;

/// Longest long poll; clients loop.
const MAX_WAIT_SECONDS: u64 = 60;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Return events after this feed position (the `next` of the previous page); default 0.
    pub after: Option<u64>,
    /// Seconds to wait for an event when there is none yet (long poll); default 0, at most 60.
    pub wait: Option<u64>,
    /// Most events per page; default 100, at most 1000.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedItem {
    /// Feed position: ledger-wide append order.
    pub position: u64,
    #[schema(schema_with = consent_event)]
    pub event: ConsentEvent,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    /// This tenant's events after `after`, in append order.
    pub events: Vec<FeedItem>,
    /// The `after` of the next request. It can move past positions that hold other tenants'
    /// events even when `events` is empty.
    pub next: u64,
}

/// Long-poll feed of this tenant's consent events, for automations that do not read Kafka.
///
/// Loop on `GET …/events?after={next}&wait=30`: the request returns as soon as an event is
/// appended (by the consumer, `ingest`, this API or an import), or with no events after
/// `wait` seconds. Positions are stable; subscribers dedupe by `event_id`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/events", tag = "events",
    params(("tenant" = String, Path, description = "Tenant id"), FeedQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of events", body = FeedPage),
        (status = 400, description = "Invalid query", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn feed(
    caller: Caller,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<FeedQuery>,
) -> Result<Json<FeedPage>, Problem> {
    let tenant = caller.allow(&tenant, Access::Read)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT_SECONDS));
    let deadline = tokio::time::Instant::now() + wait;
    let mut commits = state.ledger.subscribe();
    let mut closing = state.closing.subscribe();
    let mut after = q.after.unwrap_or(0);
    // The contract is an int64: a larger value would wrap to the feed's start in the scan.
    if after > i64::MAX as u64 {
        return Err(Problem::bad_request(
            "invalid-query",
            "Invalid query",
            format!(
                "after={after} is over the largest feed position ({})",
                i64::MAX
            ),
        ));
    }
    loop {
        // Marked seen before the scan: a commit that lands during the scan still wakes us.
        commits.borrow_and_update();
        let (ledger, t) = (state.ledger.clone(), tenant.clone());
        let (events, next, at_head) =
            tokio::task::spawn_blocking(move || scan(&ledger, &t, after, limit))
                .await
                .map_err(|e| Problem::internal(&e))??;
        after = next;
        if !events.is_empty() || !at_head || wait.is_zero() || *closing.borrow() {
            return Ok(Json(FeedPage { events, next }));
        }
        tokio::select! {
            changed = commits.changed() => {
                if changed.is_err() {
                    return Ok(Json(FeedPage { events, next }));
                }
            }
            _ = closing.changed() => return Ok(Json(FeedPage { events, next })),
            () = tokio::time::sleep_until(deadline) => return Ok(Json(FeedPage { events, next })),
        }
    }
}

/// This tenant's events after `after`, through its index: (events, position to resume from,
/// whether that is the tenant's newest). Costs in proportion to what it returns, whatever
/// other tenants hold.
fn scan(
    ledger: &crate::ledger::Ledger,
    tenant: &TenantId,
    after: u64,
    limit: usize,
) -> Result<(Vec<FeedItem>, u64, bool), crate::ledger::LedgerError> {
    // Read before the scan: every event of the tenant up to this position is in the index by
    // then (one transaction writes both), so the cursor may move past the others' events up
    // to it without skipping one of the tenant's.
    let head = ledger.feed_head()?;
    let mut out = Vec::new();
    let mut next = after;
    for item in ledger.tenant_events(tenant, after).take(limit + 1) {
        let (position, event) = item?;
        if out.len() == limit {
            return Ok((out, next, false));
        }
        next = position;
        let event = ledger.open_event(event)?;
        out.push(FeedItem { position, event });
    }
    Ok((out, next.max(head), true))
}
