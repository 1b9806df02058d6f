//! A raw HTTP/1.1 client over TCP, for what an HTTP library will not send or hides: a
//! malformed request, a body sent without waiting for the answer, a connection left idle.
//! Every wait is bounded, so a server that never answers fails the test instead of hanging
//! it; no test asserts how long anything took.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::api_util::Server;

/// The longest a test waits for the server to answer or close.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub async fn connect(s: &Server) -> TcpStream {
    TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// An answer as read off the wire.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an RFC 9457 problem with this status; returns it.
    pub fn problem(&self, status: u16) -> Value {
        let text = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "{:?} {text}", self.headers);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{text}"
        );
        let p: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(p["status"], status, "{p}");
        for member in ["type", "title", "detail"] {
            assert!(
                p[member].as_str().is_some_and(|v| !v.is_empty()),
                "{member} missing: {p}"
            );
        }
        p
    }
}

/// Reads one answer (head, then a body of its `Content-Length`, or to the end).
pub async fn read_answer(conn: &mut (impl AsyncRead + Unpin)) -> Answer {
    tokio::time::timeout(PATIENCE, read_answer_now(conn))
        .await
        .expect("the server answers")
}

async fn read_answer_now(conn: &mut (impl AsyncRead + Unpin)) -> Answer {
    let mut bytes = Vec::new();
    let head_end = loop {
        if let Some(i) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.expect("an answer, not a reset");
        assert!(
            n > 0,
            "closed before a whole head: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(bytes[..head_end].to_vec()).unwrap();
    let mut body = bytes[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse::<usize>().unwrap());
    match length {
        Some(length) => {
            while body.len() < length {
                let mut chunk = vec![0u8; length - body.len()];
                let n = conn.read(&mut chunk).await.expect("the whole body");
                assert!(n > 0, "closed inside the body");
                body.extend_from_slice(&chunk[..n]);
            }
        }
        None => {
            conn.read_to_end(&mut body).await.unwrap();
        }
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// Sends `request` on a fresh connection and reads the answer.
pub async fn exchange(s: &Server, request: &[u8]) -> Answer {
    let mut conn = connect(s).await;
    conn.write_all(request).await.unwrap();
    read_answer(&mut conn).await
}

/// Whether the server closed `conn` (rather than leaving it open past [`PATIENCE`]).
pub async fn closed_by_server(conn: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(PATIENCE, conn.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// A GET of `/healthz` that keeps the connection open.
pub const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
