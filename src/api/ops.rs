//! Operations endpoints and the per-request observer. The access log and the metrics name a
//! request by its route template (`/v1/tenants/{tenant}/contacts/{contact}/consent`), never by
//! its path, because the path holds a phone number.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::metrics::{RouteLabels, RouteOnly};

/// Records every request's route, status and latency (streamed bodies: until the headers).
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = res.status().as_u16();
    state
        .metrics
        .http_requests
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    state
        .metrics
        .http_seconds
        .get_or_create(&RouteOnly {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(seconds);
    tracing::info!(
        target: "consent_ledger::api::access",
        method,
        route,
        status,
        ms = (seconds * 1000.0).round() as u64,
        "request"
    );
    res
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the ledger is open and readable, and (in `run`) the consumer is assigned.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic", body = Health),
        (status = 503, description = "Not ready; `detail` says why", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    let reason = match state.ledger.feed_head() {
        Err(e) => Some(format!("the ledger is not readable: {e}")),
        Ok(_) => state.readiness.check().err().map(|e| e.to_string()),
    };
    match reason {
        None => Ok(Json(Health {
            status: "ok".into(),
        })),
        Some(reason) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            reason,
        )),
    }
}

/// Prometheus metrics (OpenMetrics text): requests by route and status, latency histograms,
/// events appended, contacts checked, and consumer lag where a consumer runs.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text", body = String,
        content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut res = state.metrics.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res
}
