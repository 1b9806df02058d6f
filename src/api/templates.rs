//! `POST /v1/templates/lint`: the template compliance lint of `consent-ledger lint-template`,
//! for the tools where marketers write templates before submitting them to Meta.
//!
//! Any valid token may call it, tenant or admin: it reads no tenant's data, and a support
//! agent helping a business write its template should not need that business's token.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::problem::{Problem, PROBLEM_JSON};
use super::{stream, AppState};
use crate::template::{self, LintProblem, LintReport};

/// A WhatsApp message template, exactly as Meta's template API takes it.
#[derive(ToSchema)]
#[schema(example = json!({
    "name": "soldes_hiver", "language": "fr", "category": "MARKETING",
    "components": [
        {"type": "BODY", "text": "Les soldes commencent : -30% sur tout le site."},
        {"type": "FOOTER", "text": "Envoyez STOP pour vous désabonner"},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "STOP"}]}
    ]
}))]
#[allow(dead_code)] // describes the request body in the OpenAPI document
pub struct MessageTemplate {
    name: String,
    /// `fr`, `en_US`, `pt_BR`: keywords are those of the part before `_`.
    language: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    category: String,
    /// HEADER, BODY, FOOTER and BUTTONS components.
    #[schema(value_type = Vec<Object>)]
    components: Vec<serde_json::Value>,
}

/// 422: an RFC 9457 problem whose extension members are the lint report.
#[derive(Serialize, ToSchema)]
pub struct NotCompliant {
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    template: String,
    language: String,
    category: String,
    keyword_language: String,
    /// Always false.
    compliant: bool,
    problems: Vec<LintProblem>,
}

/// Lint a WhatsApp message template for opt-out compliance.
///
/// A MARKETING template needs a FOOTER naming an opt-out keyword of its language and a
/// QUICK_REPLY button whose text is an opt-out keyword; UTILITY and AUTHENTICATION ones
/// pass without them. Each problem has a JSON pointer into the template and a suggested fix.
#[utoipa::path(post, path = "/v1/templates/lint", tag = "templates",
    request_body = MessageTemplate,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Compliant", body = LintReport),
        (status = 422, description = "Not compliant: the problems, each with a pointer and a fix",
            body = NotCompliant, content_type = "application/problem+json"),
        (status = 400, description = "Not JSON, or not a template (no name, language or category)",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "Body over `api.max_body_bytes`", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn lint(
    _caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let value: serde_json::Value =
        stream::read_json(&headers, body, state.settings.api_max_body_bytes()).await?;
    let report = template::lint(&value)
        .map_err(|e| Problem::bad_request("invalid-template", "Invalid template", e.to_string()))?;
    if report.compliant {
        return Ok(Json(report).into_response());
    }
    let detail = report
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.pointer, p.message))
        .collect::<Vec<_>>()
        .join("; ");
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    let body = NotCompliant {
        kind: "urn:consent-ledger:problem:template-not-compliant".into(),
        title: "Template not compliant".into(),
        status: status.as_u16(),
        detail,
        template: report.template,
        language: report.language,
        category: report.category,
        keyword_language: report.keyword_language,
        compliant: false,
        problems: report.problems,
    };
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Ok(res)
}
