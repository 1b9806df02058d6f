//! `GET` and `POST /webhooks/whatsapp`: Meta's subscription handshake, and the notifications
//! of the WhatsApp Cloud API (messages, statuses, marketing preferences).

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{not_configured, read_body, signature, split, unavailable, Provider, Webhooks};
use crate::api::problem::Problem;
use crate::api::AppState;

/// The query of Meta's subscription handshake.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Handshake {
    /// Always `subscribe`.
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    pub mode: Option<String>,
    /// The Verify Token entered in Meta's App Dashboard: `webhooks.whatsapp.verify_token`.
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    pub verify_token: Option<String>,
    /// What to answer with.
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    pub challenge: Option<String>,
}

/// What a delivery amounted to; the provider only reads the status.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Records made durable (committed, or acknowledged by the broker).
    pub records: usize,
    /// Records that no retry can fix (not a webhook, an unlisted business number), kept in
    /// the dead-letter output with their reason.
    pub dead_lettered: usize,
}

/// A challenge is echoed back; anything longer than this is not Meta's.
const MAX_CHALLENGE: usize = 1024;

/// Meta's subscription handshake.
///
/// Meta calls this when the callback URL is saved in the App Dashboard; it answers
/// `hub.challenge` when `hub.verify_token` is the configured one.
#[utoipa::path(get, path = "/webhooks/whatsapp", tag = "webhooks",
    params(Handshake),
    responses(
        (status = 200, description = "The challenge, echoed", body = String, content_type = "text/plain"),
        (status = 403, description = "Not a subscription, or another verify token", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "`[webhooks.whatsapp]` is not configured", body = Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "Over `webhooks.rate_limit_per_source`", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn handshake(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, Problem> {
    let (hooks, keys) = configured(&state)?;
    let (parts, _) = request.into_parts();
    hooks.check_rate(Provider::Whatsapp, &parts)?;
    let query: Handshake = handshake_query(parts.uri.query().unwrap_or_default());
    let token_ok = query
        .verify_token
        .as_deref()
        .is_some_and(|t| signature::same(t.as_bytes(), keys.verify_token.as_bytes()));
    match (query.mode.as_deref(), token_ok, query.challenge) {
        (Some("subscribe"), true, Some(challenge)) if challenge.len() <= MAX_CHALLENGE => {
            tracing::info!("WhatsApp webhook subscription verified");
            let mut res = challenge.into_response();
            res.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            Ok(res)
        }
        _ => Err(Problem::forbidden(
            "not a subscription handshake with the configured verify token (webhooks.whatsapp.verify_token)",
        )),
    }
}

/// Receive WhatsApp notifications from Meta.
///
/// `X-Hub-Signature-256` must be `sha256=` and the HMAC-SHA256 of the raw body under one of
/// `webhooks.whatsapp.app_secrets`. The body is split into one record per message, status
/// and preference; the 200 comes once they are durable (committed under `serve`, on the
/// inbound topic under `run`). A signed body that cannot be used is answered 200 and
/// dead-lettered; a 503 asks Meta to retry.
#[utoipa::path(post, path = "/webhooks/whatsapp", tag = "webhooks",
    params(("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the body under the app secret>")),
    request_body(content = String, description = "The webhook as Meta posts it (schemas/whatsapp-webhook.v1.json)",
        content_type = "application/json"),
    responses(
        (status = 200, description = "Durable", body = Accepted),
        (status = 401, description = "Missing or wrong signature", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "`[webhooks.whatsapp]` is not configured", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "Body over `webhooks.max_body_bytes`", body = Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "Over `webhooks.rate_limit_per_source`", body = Problem,
            content_type = "application/problem+json"),
        (status = 503, description = "Not durable (ledger or broker); retry", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn notify(State(state): State<AppState>, request: Request) -> Result<Response, Problem> {
    let (hooks, keys) = configured(&state)?;
    let (parts, body) = request.into_parts();
    hooks.check_rate(Provider::Whatsapp, &parts)?;
    let body = read_body(&parts.headers, body, hooks.max_body).await?;
    let signed = parts
        .headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| signature::meta_valid(&body, v, &keys.app_secrets));
    if !signed {
        return Err(hooks.refused(Provider::Whatsapp, "X-Hub-Signature-256"));
    }
    let records = split::whatsapp_parts(&state.settings, &body);
    match hooks.deliver(Provider::Whatsapp, records).await {
        Ok(d) => Ok((
            StatusCode::OK,
            Json(Accepted {
                records: d.records,
                dead_lettered: d.dead_lettered,
            }),
        )
            .into_response()),
        Err(e) => Err(unavailable(Provider::Whatsapp, &e)),
    }
}

fn configured(state: &AppState) -> Result<(&Webhooks, &crate::config::WhatsappKeys), Problem> {
    let hooks = state.webhooks.as_deref();
    hooks
        .and_then(|h| Some((h, h.keys.whatsapp.as_ref()?)))
        .ok_or_else(|| not_configured("webhooks.whatsapp"))
}

/// The handshake's query; a parameter given twice keeps its first value.
fn handshake_query(query: &str) -> Handshake {
    let mut h = Handshake::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "hub.mode" => &mut h.mode,
            "hub.verify_token" => &mut h.verify_token,
            "hub.challenge" => &mut h.challenge,
            _ => continue,
        };
        slot.get_or_insert_with(|| value.into_owned());
    }
    h
}
