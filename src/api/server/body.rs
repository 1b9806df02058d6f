//! The two bodies of an exchange, as the connection sees them. A request body must arrive
//! whole within `api.body_timeout_secs` of its head: a deadline for the whole body, not
//! between chunks, since a client sending a byte a second never pauses long. A response body
//! marks, when it is dropped, that the connection is idle again (`io.rs` then times it).

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::io::Shared;

/// The error a request body gives once its deadline passed; handlers answer 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time (api.body_timeout_secs)")]
pub struct BodyTimedOut;

/// Whether `e`, or an error it wraps, is [`BodyTimedOut`].
pub fn is_body_timeout(e: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(e) = current {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        // `io::Error::new(kind, inner)` shows `inner` as itself, not as its source.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if is_body_timeout(inner) {
                return true;
            }
        }
        current = e.source();
    }
    false
}

/// A request body with a deadline. It tells the connection when it was read to its end, so
/// that a body left unread is drained before the connection closes.
pub(super) struct Timed {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    shared: Arc<Shared>,
}

impl Timed {
    pub fn new(inner: Incoming, deadline: Instant, shared: Arc<Shared>) -> Timed {
        Timed {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            shared,
        }
    }
}

impl http_body::Body for Timed {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            if frame.is_none() {
                self.shared.body_read();
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that marks the end of its exchange when hyper is done with it.
pub(super) struct Tracked {
    pub inner: Body,
    pub shared: Arc<Shared>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.shared.response_done();
    }
}
