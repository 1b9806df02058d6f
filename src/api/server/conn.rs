//! One connection from accept to close: hyper serves its requests through the router, then
//! the connection answers what hyper left unanswered (a head sent too slowly: 408; a request
//! hyper refused: its status, as a problem) and closes.
//!
//! Closing lingers when the client may still be sending: the write side is shut first, then
//! what the client sends is read and discarded until it stops (bounded in time). Closing a
//! socket with unread data makes the kernel reset the connection, and a client still sending
//! a body (it did not wait for `100 Continue`) then sees the reset and never reads the 413
//! or 408 it was sent. Apache and nginx close the same way ("lingering close").

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tower::ServiceExt;

use super::body::{Timed, Tracked};
use super::io::{Shared, Waited, Watched};
use super::limits::Limits;
use crate::api::problem::Problem;

/// How long an answer of our own may take to be written to a client that does not read.
const WRITE_LIMIT: Duration = Duration::from_secs(5);
/// A lingering close ends when the client has sent nothing for this long...
const LINGER_QUIET: Duration = Duration::from_secs(2);
/// ...or after this long in all, or at this many bytes, whichever comes first.
const LINGER_MAX: Duration = Duration::from_secs(30);
const LINGER_MAX_BYTES: u64 = 1 << 30;
/// `Retry-After` of a 503 for a connection over the cap, in seconds.
const RETRY_AFTER_SECS: u64 = 1;

/// Serves one connection until it closes, holding its `slot` under `api.max_connections`.
/// Returns the wait that ran out when a timeout closed it (`"head"` or `"idle"`).
pub(super) async fn serve(
    stream: TcpStream,
    app: Router,
    limits: Arc<Limits>,
    mut closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) -> Option<&'static str> {
    let shared = Arc::new(Shared::new());
    let peer = stream.peer_addr().ok();
    let io = TokioIo::new(Watched::new(stream, shared.clone(), &limits));
    let service = Exchange {
        app,
        shared: shared.clone(),
        body_timeout: limits.body_timeout,
        peer,
    };
    let mut conn = http1::Builder::new()
        // The head and idle timers are the socket's (io.rs); hyper's would be a second one.
        .header_read_timeout(None)
        .serve_connection(io, service);
    let mut closing_now = *closing.borrow();
    if closing_now {
        Pin::new(&mut conn).graceful_shutdown();
    }
    let served = loop {
        tokio::select! {
            served = poll_fn(|cx| conn.poll_without_shutdown(cx)) => break served,
            Ok(()) = closing.changed(), if !closing_now => {
                closing_now = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
        }
    };
    let parts = conn.into_parts();
    let unread_input = !parts.read_buf.is_empty();
    let io = parts.io.into_inner();
    let answer = match (&served, io.refused, io.timed_out) {
        (Err(e), Some(status), _) => Some(refused(status, e)),
        (_, _, Some(Waited::Head)) => Some((
            Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
                format!(
                    "the request head did not arrive within {} s (api.header_timeout_secs)",
                    limits.header_timeout.as_secs()
                ),
            ),
            None,
        )),
        _ => None,
    };
    if let Err(e) = &served {
        tracing::debug!(error = %e, "HTTP connection ended on an error");
    }
    let linger = answer.is_some() || unread_input || shared.body_unread();
    let waited = io.timed_out.map(|w| match w {
        Waited::Head => "head",
        Waited::Idle => "idle",
    });
    close(io.into_stream(), answer, linger, closing).await;
    waited
}

/// Answers a connection over `api.max_connections` with a 503 and closes it.
pub(super) async fn shed(
    stream: TcpStream,
    max_connections: usize,
    closing: watch::Receiver<bool>,
) {
    let problem = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "Too many connections",
        format!(
            "the server is serving its maximum of {max_connections} connections \
             (api.max_connections); retry in {RETRY_AFTER_SECS} s"
        ),
    );
    close(
        stream,
        Some((problem, Some(RETRY_AFTER_SECS))),
        true,
        closing,
    )
    .await;
}

/// The problem for a request hyper refused before the router saw it, with hyper's reason.
fn refused(status: u16, e: &hyper::Error) -> (Problem, Option<u64>) {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let problem = match status {
        StatusCode::URI_TOO_LONG => Problem::new(
            status,
            "uri-too-long",
            "URI too long",
            format!("the request target is longer than the server reads ({e})"),
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Problem::new(
            status,
            "header-too-large",
            "Request header too large",
            format!("the request head is larger than the server reads ({e})"),
        ),
        _ => Problem::new(
            status,
            "malformed-request",
            "Malformed request",
            format!("the request is not valid HTTP/1.1 ({e}); nothing was processed"),
        ),
    };
    (problem, None)
}

/// Writes `answer` (a problem and its `Retry-After`) if any, shuts the write side, lingers
/// if asked (not past the server's shutdown), and closes.
async fn close(
    mut stream: TcpStream,
    answer: Option<(Problem, Option<u64>)>,
    linger: bool,
    mut closing: watch::Receiver<bool>,
) {
    if let Some((problem, retry_after)) = answer {
        let bytes = raw_answer(&problem, retry_after);
        if !matches!(
            tokio::time::timeout(WRITE_LIMIT, stream.write_all(&bytes)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
    if stream.shutdown().await.is_err() || !linger {
        return;
    }
    let end = Instant::now() + LINGER_MAX;
    let mut buf = vec![0u8; 64 * 1024];
    let mut discarded = 0u64;
    let drain = async {
        while discarded < LINGER_MAX_BYTES {
            let quiet_until = end.min(Instant::now() + LINGER_QUIET);
            match tokio::time::timeout_at(quiet_until, stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => discarded += n as u64,
                _ => break,
            }
        }
    };
    tokio::select! {
        () = drain => {}
        _ = closing.wait_for(|closing| *closing) => {}
    }
}

/// A whole HTTP/1.1 response carrying `problem`, for answers written outside hyper.
fn raw_answer(problem: &Problem, retry_after: Option<u64>) -> Vec<u8> {
    let body = serde_json::to_vec(problem).expect("plain struct");
    let status = problem.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n{}: {}\r\n{}: {}\r\n{}: close\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("Error"),
        header::CONTENT_TYPE,
        crate::api::problem::PROBLEM_JSON,
        header::CONTENT_LENGTH,
        body.len(),
        header::CONNECTION,
    );
    if let Some(secs) = retry_after {
        head.push_str(&format!("{}: {secs}\r\n", header::RETRY_AFTER));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// The router as hyper calls it, one exchange at a time: the request body gets its deadline
/// and the response body reports its end. The client's address goes along as axum's
/// `ConnectInfo`, for the limits kept per source (the webhooks have no token to count by).
struct Exchange {
    app: Router,
    shared: Arc<Shared>,
    body_timeout: Duration,
    peer: Option<SocketAddr>,
}

type Answering = Pin<Box<dyn Future<Output = Result<Response<Tracked>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Exchange {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = Answering;

    fn call(&self, req: Request<Incoming>) -> Answering {
        let shared = self.shared.clone();
        shared.request_dispatched(!req.body().is_end_stream());
        let deadline = Instant::now() + self.body_timeout;
        let mut req = req.map(|body| Body::new(Timed::new(body, deadline, shared.clone())));
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        let app = self.app.clone();
        Box::pin(async move {
            let res = app.oneshot(req).await?;
            Ok(res.map(|inner| Tracked { inner, shared }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_written_outside_hyper_is_a_complete_problem_response() {
        let problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "T", "d");
        let text = String::from_utf8(raw_answer(&problem, Some(1))).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\ncontent-type: application/problem+json"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("\r\nretry-after: 1"), "{head}");
        let p: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(p["status"], 503);
    }
}
