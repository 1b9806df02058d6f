//! Errors as RFC 9457 problem details (`application/problem+json`), so that every client,
//! whatever endpoint it called and whatever went wrong (a bad token, a typo in a query, a
//! route that does not exist), parses one error shape and can show its `detail` to a person.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:consent-ledger:problem:invalid-contact",
    "title": "Invalid contact",
    "status": 400,
    "detail": "invalid contact \"hello\": not a phone number"
}))]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:consent-ledger:problem:…`), or `about:blank`
    /// when the status code says it all. Stable: clients may branch on it.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for a person to read.
    pub detail: String,
    #[serde(skip)]
    #[schema(ignore)]
    challenge: Option<&'static str>,
    /// Seconds to send in `Retry-After` (429, 503).
    #[serde(skip)]
    #[schema(ignore)]
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:consent-ledger:problem:{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            challenge: None,
            retry_after: None,
        }
    }

    /// A problem the status code fully describes.
    pub fn plain(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            kind: "about:blank".to_string(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            challenge: None,
            retry_after: None,
        }
    }

    pub fn bad_request(slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, slug, title, detail)
    }

    /// Reads a `?since=` parameter (empty means none), or says why it is not a time.
    pub fn since_param(
        since: Option<&str>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, Problem> {
        match since {
            None | Some("") => Ok(None),
            Some(s) => crate::query::parse_time(s).map(Some).ok_or_else(|| {
                Problem::bad_request(
                    "invalid-query",
                    "Invalid query",
                    format!("since={s:?} is not a time (RFC 3339 or YYYY-MM-DD)"),
                )
            }),
        }
    }

    /// 401, with the `WWW-Authenticate` challenge RFC 6750 asks for.
    pub fn unauthorized(detail: impl Into<String>, invalid_token: bool) -> Self {
        let mut p = Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        );
        p.challenge = Some(if invalid_token {
            "Bearer realm=\"consent-ledger\", error=\"invalid_token\""
        } else {
            "Bearer realm=\"consent-ledger\""
        });
        p
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn too_large(limit: usize) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!(
                "the request body is over the {limit}-byte limit (api.max_body_bytes in the config); \
                 split it, or stream a check as NDJSON"
            ),
        )
    }

    /// 408 for a body that did not arrive whole within `api.body_timeout_secs`.
    pub fn body_timeout() -> Self {
        Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "Request timeout",
            "the request body did not arrive whole in time (api.body_timeout_secs); \
             nothing of it was processed",
        )
    }

    /// 429 for a token over `api.rate_limit_per_token` (`rate` as written there).
    pub fn too_many_requests(rate: &str, retry_after: u64) -> Self {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!(
                "this token is over its {rate} requests (api.rate_limit_per_token); \
                 retry in {retry_after} s"
            ),
        );
        p.retry_after = Some(retry_after);
        p
    }

    /// The same problem, sent with `Retry-After: secs` (a 429 or 503 the client should retry).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The `Retry-After` this problem is sent with, in seconds.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    /// A failure that is ours, not the caller's. The cause goes to the log, not to the
    /// client: storage errors can name files and keys.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "request failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the ledger could not answer; the cause is in the server log",
        )
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<crate::ledger::LedgerError> for Problem {
    fn from(e: crate::ledger::LedgerError) -> Self {
        Problem::internal(&e)
    }
}

impl From<crate::pipeline::CommitError> for Problem {
    fn from(e: crate::pipeline::CommitError) -> Self {
        Problem::internal(&e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).expect("plain struct");
        let mut res = (self.status(), body).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// Unknown paths.
pub async fn not_found() -> Problem {
    Problem::plain(
        StatusCode::NOT_FOUND,
        "no such endpoint; the API is described at /openapi.json",
    )
}

/// Safety net for errors produced outside our handlers (axum's 405, a rejection we did not
/// wrap): their plain-text body becomes the `detail` of a problem, other headers (`Allow`)
/// are kept.
pub async fn problems_everywhere(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let res = next.run(req).await;
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(res.status().is_client_error() || res.status().is_server_error()) || is_problem {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = match http_body_util::Limited::new(body, 4096).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes())
            .trim()
            .to_string(),
        Err(_) => String::new(),
    };
    let detail = match (text.is_empty(), parts.status) {
        (false, _) => text,
        (true, StatusCode::METHOD_NOT_ALLOWED) => {
            format!("this endpoint does not accept {method}; the Allow header lists what it does")
        }
        (true, status) => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let problem = Problem::plain(parts.status, detail);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&problem).expect("plain struct");
    Response::from_parts(parts, Body::from(body))
}

/// `axum::extract::Path` with problem+json rejections.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| Problem::bad_request("invalid-path", "Invalid path", e.body_text()))
    }
}

/// `axum::extract::Query` with problem+json rejections.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| Problem::bad_request("invalid-query", "Invalid query", e.body_text()))
    }
}
