//! Campaign reception: per campaign, how many were sent and how many left because of it, with
//! the anomaly flags that tell a marketer which campaign was intrusive; as JSON, and as the
//! HTML report `stats --html` writes, for a person to open in a browser.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::{Access, Caller};
use super::problem::{Path, Problem, Query};
use super::AppState;
use crate::domain::analytics::{CampaignStats, TenantStats};
use crate::domain::tenant::TenantId;
use crate::{query, report};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Count only sends, opt-outs and replies at or after this time (RFC 3339, or
    /// `YYYY-MM-DD` in UTC).
    pub since: Option<String>,
}

fn since_of(q: &StatsQuery) -> Result<Option<DateTime<Utc>>, Problem> {
    Problem::since_param(q.since.as_deref())
}

/// Reads the whole tenant's analytics off the async workers: it scans the log.
async fn compute(
    state: &AppState,
    tenant: TenantId,
    since: Option<DateTime<Utc>>,
) -> Result<TenantStats, Problem> {
    let (ledger, settings) = (state.ledger.clone(), state.settings.clone());
    tokio::task::spawn_blocking(move || {
        let profile = settings.profile(&tenant);
        query::stats(&ledger, &profile, &tenant, since)
    })
    .await
    .map_err(|e| Problem::internal(&e))?
    .map_err(Problem::from)
}

/// Opt-out statistics of every campaign of the tenant, with anomaly flags.
///
/// Per campaign: sends, deliveries (when WhatsApp statuses were seen), distinct contacts who
/// opted out because of it (attribution: explicit, reply context, or the last marketing send
/// within the attribution window), the rate, help requests, possible opt-outs, first and
/// last send, and a per-day series. `anomaly.reasons` says why a campaign is flagged or not.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/campaigns", tag = "campaigns",
    params(("tenant" = String, Path, description = "Tenant id"), StatsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every campaign, by id",
            body = ref("#/components/schemas/TenantStats")),
        (status = 400, description = "Invalid since or tenant", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<StatsQuery>,
) -> Result<Json<TenantStats>, Problem> {
    let tenant = caller.allow(&tenant, Access::Read)?;
    let since = since_of(&q)?;
    Ok(Json(compute(&state, tenant, since).await?))
}

/// One campaign's statistics.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/campaigns/{campaign}", tag = "campaigns",
    params(
        ("tenant" = String, Path, description = "Tenant id"),
        ("campaign" = String, Path, description = "Campaign id, URL-encoded"),
        StatsQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The campaign",
            body = ref("#/components/schemas/CampaignStats")),
        (status = 400, description = "Invalid since or tenant", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No send, opt-out or reply of this campaign", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn one(
    caller: Caller,
    State(state): State<AppState>,
    Path((tenant, campaign)): Path<(String, String)>,
    Query(q): Query<StatsQuery>,
) -> Result<Json<CampaignStats>, Problem> {
    let tenant = caller.allow(&tenant, Access::Read)?;
    let since = since_of(&q)?;
    let stats = compute(&state, tenant, since).await?;
    stats
        .campaigns
        .into_iter()
        .find(|c| c.campaign_id == campaign)
        .map(Json)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-campaign",
                "Unknown campaign",
                format!("no send, opt-out or reply is recorded for campaign {campaign:?}"),
            )
        })
}

/// The HTML report: opt-out rate per campaign (anomalies in red), sends and opt-outs per day,
/// and the table. Self-contained (inline CSS and SVG, no script).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/campaigns.html", tag = "campaigns",
    params(("tenant" = String, Path, description = "Tenant id"), StatsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The report page", body = String, content_type = "text/html"),
        (status = 400, description = "Invalid since or tenant", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn html(
    caller: Caller,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<StatsQuery>,
) -> Result<Response, Problem> {
    let tenant = caller.allow(&tenant, Access::Read)?;
    let since = since_of(&q)?;
    let stats = compute(&state, tenant, since).await?;
    let mut res = report::html(&stats).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(res)
}
