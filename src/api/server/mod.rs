//! The HTTP server under the router: it accepts connections and drives each one itself
//! (hyper's HTTP/1.1 connection, not `axum::serve`) because the defences against hostile
//! or broken clients live at the connection, where axum cannot see:
//!
//! - a cap on connections served at once, below the process's open-file limit; past it a
//!   new connection gets a 503 problem with `Retry-After` instead of taking the last file
//!   descriptors the ledger and Kafka need (`limits.rs`);
//! - timeouts for an idle connection, a request head sent slowly, and a body sent slowly
//!   (`io.rs` for the first two, `body.rs` for the body, which the handler answers with 408);
//! - a lingering close, so that a client still sending a body the server refused (413, 408)
//!   reads the answer instead of a connection reset, and problem+json for the requests hyper
//!   refuses before any handler sees them (`conn.rs`).

mod body;
mod conn;
mod io;
mod limits;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use self::body::is_body_timeout;
use self::limits::Limits;
use super::{router, AppState};
use crate::metrics::WaitLabels;

/// How long requests in flight may take to finish after shutdown is requested; then the
/// remaining connections are dropped, so a client that stopped reading a streamed export
/// cannot hold the process past an orchestrator's kill deadline (Kubernetes waits 30 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Connections being turned away with a 503 at once. Each holds a file descriptor for a
/// moment; past this many, a connection over the cap is closed without an answer.
const SHEDDING_AT_ONCE: usize = 32;

/// Serves the API on `listener` until `shutdown` resolves, then finishes the requests in
/// flight (long polls return at once; at most [`SHUTDOWN_GRACE`]) and returns. Fails at
/// once when `api.max_connections` is above the process's open-file limit.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = Arc::new(Limits::new(&state.settings.file.api)?);
    tracing::debug!(
        max_connections = limits.max_connections,
        "HTTP connection limits"
    );
    let closing = state.closing.clone();
    let metrics = state.metrics.clone();
    let app = router(state);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let shedding = Arc::new(Semaphore::new(SHEDDING_AT_ONCE));
    let mut connections = JoinSet::new();
    let mut at_cap = false;
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "an HTTP connection task panicked");
                    }
                }
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                if at_cap {
                    at_cap = false;
                    tracing::info!("HTTP connections back under api.max_connections");
                }
                let (app, limits, closing) = (app.clone(), limits.clone(), closing.subscribe());
                let metrics = metrics.clone();
                connections.spawn(async move {
                    metrics.http_connections_open.inc();
                    if let Some(wait) = conn::serve(stream, app, limits, closing, slot).await {
                        metrics
                            .http_connections_timed_out
                            .get_or_create(&WaitLabels { wait: wait.into() })
                            .inc();
                    }
                    metrics.http_connections_open.dec();
                });
            }
            Err(_) => {
                metrics.http_connections_shed.inc();
                if !at_cap {
                    at_cap = true;
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "HTTP connections at api.max_connections; new ones get 503"
                    );
                }
                if let Ok(turn) = shedding.clone().try_acquire_owned() {
                    let (max, closing) = (limits.max_connections, closing.subscribe());
                    connections.spawn(async move {
                        conn::shed(stream, max, closing).await;
                        drop(turn);
                    });
                }
            }
        }
    }
    drop(listener);
    closing.send_replace(true);
    let finished = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, finished)
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = SHUTDOWN_GRACE.as_secs(),
            "requests still running after the shutdown grace period; dropping them"
        );
        connections.abort_all();
    }
    Ok(())
}

/// An accept error is about one connection (reset before we took it) or about the process
/// (out of file descriptors): for the latter, wait a little so the loop does not spin while
/// connections close and free some.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "cannot accept an HTTP connection; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
