//! The connection's socket as hyper reads and writes it, watched for two things hyper does
//! not do the way a public server needs:
//!
//! - **Idle and head timeouts.** hyper has one timer from the moment it waits for a request
//!   head, so an idle keep-alive connection and a head sent a byte at a time would get the
//!   same time. Here a connection between requests has `idle_timeout`, and once the first
//!   byte of a head arrived the head has `header_timeout`. A read past either fails, which
//!   ends the connection; [`Watched::timed_out`] says which, so the head one gets its 408.
//! - **hyper's own error answers.** A request hyper cannot parse (a bad request line, a
//!   header with a NUL byte, a bad `Content-Length`, a 65 KB URI) never reaches the router:
//!   hyper answers 400, 414 or 431 itself with an empty body. Such an answer is a response
//!   head written when no request is waiting for one, so it is held back here
//!   ([`Watched::refused`]) and the connection writes a problem in its place.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::limits::Limits;

/// What the connection's exchanges tell its socket; all on one task, so never contended.
#[derive(Debug)]
pub(super) struct Shared {
    /// Requests handed to the router.
    dispatched: AtomicU64,
    /// A request is being answered (set when dispatched, cleared when its response body is
    /// dropped): no idle or head timer runs meanwhile.
    busy: AtomicBool,
    /// When the last response finished, or the connection opened.
    idle_since: Mutex<Instant>,
    /// The current request's body was not read to its end (yet).
    body_unread: AtomicBool,
    /// A read that found the connection busy, to wake when it is idle so its timer starts.
    reader: Mutex<Option<Waker>>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            dispatched: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
            body_unread: AtomicBool::new(false),
            reader: Mutex::new(None),
        }
    }

    pub fn request_dispatched(&self, has_body: bool) {
        self.dispatched.fetch_add(1, Ordering::Relaxed);
        self.busy.store(true, Ordering::Relaxed);
        self.body_unread.store(has_body, Ordering::Relaxed);
    }

    pub fn body_read(&self) {
        self.body_unread.store(false, Ordering::Relaxed);
    }

    pub fn response_done(&self) {
        *self.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.busy.store(false, Ordering::Relaxed);
        if let Some(reader) = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take() {
            reader.wake();
        }
    }

    /// Whether the client may still be sending a body nobody read.
    pub fn body_unread(&self) -> bool {
        self.body_unread.load(Ordering::Relaxed)
    }

    fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waited {
    /// Nothing arrived between requests: close quietly.
    Idle,
    /// A request head was started and not finished: 408.
    Head,
}

pub(super) struct Watched {
    stream: TcpStream,
    shared: Arc<Shared>,
    header_timeout: std::time::Duration,
    idle_timeout: std::time::Duration,
    /// When the head being read started (its first byte), if one is being read.
    head_since: Option<Instant>,
    /// `shared.dispatched` when `head_since` was last reset: a new dispatch ends the head.
    seen_dispatched: u64,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    /// Response heads written (not counting 1xx).
    heads: u64,
    pub timed_out: Option<Waited>,
    /// The status of the answer hyper wrote on its own and that was held back.
    pub refused: Option<u16>,
}

impl Watched {
    pub fn new(stream: TcpStream, shared: Arc<Shared>, limits: &Limits) -> Watched {
        Watched {
            stream,
            shared,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            head_since: None,
            seen_dispatched: 0,
            timer: Box::pin(tokio::time::sleep_until(Instant::now())),
            armed: None,
            heads: 0,
            timed_out: None,
            refused: None,
        }
    }

    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Whether the idle or head wait ran out; arms the timer for the current wait.
    fn wait_ran_out(&mut self, cx: &mut Context<'_>) -> Option<Waited> {
        if self.shared.busy.load(Ordering::Relaxed) {
            *self.shared.reader.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(cx.waker().clone());
            return None;
        }
        let (deadline, waiting) = match self.head_since {
            Some(start) => (start + self.header_timeout, Waited::Head),
            None => (self.shared.idle_since() + self.idle_timeout, Waited::Idle),
        };
        if self.armed != Some(deadline) {
            self.timer.as_mut().reset(deadline);
            self.armed = Some(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready().then_some(waiting)
    }
}

/// The status of a response head at the start of `buf` (`HTTP/1.1 400 `), if `buf` starts
/// with one.
fn response_status(buf: &[u8]) -> Option<u16> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let digits = rest.get(..3)?;
    if rest.get(3) != Some(&b' ') || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let dispatched = this.shared.dispatched.load(Ordering::Relaxed);
        if dispatched != this.seen_dispatched {
            this.seen_dispatched = dispatched;
            this.head_since = None;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let busy = this.shared.busy.load(Ordering::Relaxed);
                if buf.filled().len() > before && !busy && this.head_since.is_none() {
                    this.head_since = Some(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.wait_ran_out(cx) {
                Some(waited) => {
                    this.timed_out = Some(waited);
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent nothing in time",
                    )))
                }
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refused.is_some() {
            // hyper closes after its own error answer; nothing of it goes out.
            return Poll::Ready(Ok(buf.len()));
        }
        let head = response_status(buf).filter(|status| *status >= 200);
        if let Some(status) = head {
            // One final head per request handed to the router: one more is hyper's own.
            if this.heads >= this.shared.dispatched.load(Ordering::Relaxed) {
                this.refused = Some(status);
                return Poll::Ready(Ok(buf.len()));
            }
        }
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        if head.is_some() && matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.heads += 1;
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_head_is_recognized_by_its_status_line_only() {
        assert_eq!(response_status(b"HTTP/1.1 400 Bad Request\r\n"), Some(400));
        assert_eq!(response_status(b"HTTP/1.0 414 URI Too Long\r\n"), Some(414));
        assert_eq!(response_status(b"HTTP/1.1 100 Continue\r\n"), Some(100));
        for not_a_head in [
            &b"HTTP/1.1 40"[..],
            b"HTTP/1.1 4000 x",
            b"HTTP/2 200 OK",
            b"{\"HTTP/1.1 400 \"}",
            b"",
        ] {
            assert_eq!(response_status(not_a_head), None);
        }
    }
}
