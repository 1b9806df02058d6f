//! Bridges between blocking ledger loops and streaming HTTP bodies. A million-contact check or
//! a full export runs on a blocking thread and writes through [`ChunkWriter`] into a bounded
//! channel that the response body drains, so memory stays at a few chunks whatever the size
//! of the answer, and a client that goes away stops the loop (its next write fails).
//! [`BodyReader`] is the same in the other direction, for request bodies read line by line.

use std::io::{self, Read, Write};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::problem::Problem;
use super::server::is_body_timeout;

/// Bytes per chunk sent to the client.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the producer thread and the connection.
const IN_FLIGHT: usize = 16;

/// A `Write` that sends full chunks to the response body.
pub struct ChunkWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
}

impl ChunkWriter {
    fn send(&mut self, chunk: io::Result<Bytes>) -> io::Result<()> {
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.send(Ok(chunk))
    }
}

/// Why a streamed answer stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A 200 response whose body `produce` writes from a blocking thread. An error after the
/// headers are sent can no longer change the status, so it aborts the body: the client sees
/// a broken transfer rather than an answer that looks complete.
pub fn blocking_response<F>(content_type: &'static str, headers: HeaderMap, produce: F) -> Response
where
    F: FnOnce(&mut ChunkWriter) -> Result<(), StreamError> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter {
            tx,
            buf: BytesMut::with_capacity(CHUNK),
        };
        match produce(&mut w).and_then(|()| w.flush().map_err(StreamError::from)) {
            Ok(()) => {}
            Err(StreamError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                tracing::debug!("client went away during a streamed response");
            }
            Err(e) => {
                tracing::error!(error = %e, "streamed response aborted");
                let _ = w.send(Err(io::Error::other(
                    "the answer was cut short by an error",
                )));
            }
        }
    });
    let mut res = Body::from_stream(ReceiverStream::new(rx)).into_response();
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().extend(headers);
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// The whole request body, refused with 413 past `limit` (before reading it when the client
/// declared its length), or 408 when it does not arrive in time.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Problem> {
    check_declared_length(headers, limit)?;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Problem::too_large(limit)),
        Err(e) if is_body_timeout(&*e) => Err(Problem::body_timeout()),
        Err(e) => Err(Problem::bad_request(
            "unreadable-body",
            "Unreadable body",
            format!("cannot read the request body: {e}"),
        )),
    }
}

/// 413 up front when `Content-Length` is already over the limit.
pub fn check_declared_length(headers: &HeaderMap, limit: usize) -> Result<(), Problem> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(Problem::too_large(limit)),
        _ => Ok(()),
    }
}

/// The kind of [`io::Error`] a [`BodyReader`] returns when the body passes the limit.
pub fn is_too_large(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooLarge>())
}

#[derive(Debug, thiserror::Error)]
#[error("request body over the size limit")]
struct TooLarge;

/// A blocking `Read` over a request body that an async task feeds chunk by chunk.
pub struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl BodyReader {
    /// Starts forwarding `body` once its first bytes have arrived (or it ended); past `limit`
    /// bytes the reader fails with [`is_too_large`]. Reading the body is what makes the
    /// server send `100 Continue` to a client that asked for it (`Expect: 100-continue`,
    /// which curl sends for any body over 1 MiB). A streamed answer started before that
    /// skipped the `100 Continue`, and curl waited a second for it before sending the body.
    pub async fn start(body: Body, limit: usize) -> BodyReader {
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        let mut stream = body.into_data_stream();
        let first = stream.next().await;
        tokio::spawn(async move {
            let mut total = 0usize;
            let mut next = first;
            while let Some(chunk) = next {
                let item = match chunk {
                    Ok(bytes) => {
                        total = total.saturating_add(bytes.len());
                        if total > limit {
                            Err(io::Error::new(io::ErrorKind::InvalidData, TooLarge))
                        } else {
                            Ok(bytes)
                        }
                    }
                    Err(e) => Err(io::Error::other(e)),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
                next = stream.next().await;
            }
        });
        BodyReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A JSON request body of at most `limit` bytes, as `T`.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, Problem> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if declared.as_deref().is_some_and(|t| t != "application/json") {
        return Err(Problem::unsupported_media_type(
            "send the body as application/json",
        ));
    }
    let bytes = read_body(headers, body, limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Problem::bad_request(
            "invalid-body",
            "Invalid body",
            format!("the body is not valid for this endpoint: {e}"),
        )
    })
}
