//! Regression tests of issue 11's connection-level failures (items 6, 7 and 12) and the
//! rate limit per token, each named after the bug it fixed. They talk raw TCP (raw.rs)
//! where an HTTP client would hide what the server did; timeouts are a second in the
//! config, and each test waits for the outcome, never for a time.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::api_util::*;
use crate::iss11::config_with;
use crate::raw::{closed_by_server, connect, exchange, read_answer, HEALTHZ};

/// Waits until the metric `name` (a full series, labels included) reaches `at_least`, as the
/// connection tasks count after they close; fails if it never does.
async fn metric_reaches(s: &Server, name: &str, at_least: u64) {
    let mut last = String::new();
    for _ in 0..300 {
        last = s.metrics().await;
        let value = last
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok());
        if value.is_some_and(|v| v >= at_least as f64) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never reached {at_least}:\n{last}");
}

/// Issue 11, item 6: 20,000 idle connections were held for 45 s; nothing closed them.
#[tokio::test]
async fn iss11_item6_an_idle_connection_is_closed_after_the_idle_timeout() {
    let s = Server::with_config(&config_with("", "idle_timeout_secs = 1")).await;
    // A connection that never sends anything...
    let mut silent = connect(&s).await;
    assert!(closed_by_server(&mut silent).await);
    // ...and one that sent a request and kept the connection alive.
    let mut kept = connect(&s).await;
    kept.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_answer(&mut kept).await.status, 200);
    assert!(closed_by_server(&mut kept).await);
    metric_reaches(
        &s,
        "consent_ledger_http_connections_timed_out_total{wait=\"idle\"}",
        2,
    )
    .await;
    s.stop().await;
}

/// Issue 11, item 6: a request head sent slowly was waited for without end.
#[tokio::test]
async fn iss11_item6_a_head_not_finished_in_time_gets_a_408_problem() {
    let s = Server::with_config(&config_with("", "header_timeout_secs = 1")).await;
    let mut conn = connect(&s).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let answer = read_answer(&mut conn).await;
    let p = answer.problem(408);
    assert_eq!(p["type"], "urn:consent-ledger:problem:request-timeout");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("header_timeout_secs"),
        "{p}"
    );
    assert!(closed_by_server(&mut conn).await);
    metric_reaches(
        &s,
        "consent_ledger_http_connections_timed_out_total{wait=\"head\"}",
        1,
    )
    .await;
    s.stop().await;
}

/// Issue 11, items 6 and 3: a body sent a byte at a time was held open for ever; and the
/// rows that had arrived were imported although the import never completed.
#[tokio::test]
async fn iss11_item6_a_slow_body_gets_a_408_problem_and_imports_nothing() {
    let s = Server::with_config(&config_with("batch_size = 1", "body_timeout_secs = 1")).await;
    let rows: String = (0..5)
        .map(|i| format!("+3361234{i:04},opted_out,2025-01-01\n"))
        .collect();
    let body_start = format!("contact,status,occurred_at\n{rows}");
    let head = format!(
        "POST /v1/tenants/acme/imports HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {ACME}\r\n\
         Content-Type: text/csv\r\nContent-Length: 1000\r\n\r\n{body_start}"
    );
    let conn = connect(&s).await;
    let (mut reader, mut writer) = conn.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    // The rest of the body, a byte every 100 ms, until the answer comes (or 100 s).
    let trickle = tokio::spawn(async move {
        for _ in 0..1000 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b"x").await.is_err() {
                break;
            }
        }
    });
    let answer = read_answer(&mut reader).await;
    trickle.abort();
    let p = answer.problem(408);
    assert!(
        p["detail"].as_str().unwrap().contains("body_timeout_secs"),
        "{p}"
    );
    assert_eq!(s.state.ledger.event_count().unwrap(), 0, "nothing imported");
    s.stop().await;
}

/// Issue 11, item 6: connections were accepted until the process ran out of file
/// descriptors. Past `max_connections`, a connection gets a 503 problem with Retry-After.
#[tokio::test]
async fn iss11_item6_a_connection_over_the_cap_gets_503_with_retry_after() {
    let s = Server::with_config(&config_with("", "max_connections = 1")).await;
    let mut first = connect(&s).await;
    first.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_answer(&mut first).await.status, 200);
    let answer = exchange(&s, HEALTHZ).await;
    let p = answer.problem(503);
    assert_eq!(p["type"], "urn:consent-ledger:problem:overloaded");
    let retry: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    // Once the first connection is gone, its place is free again.
    drop(first);
    let mut served = false;
    for _ in 0..300 {
        if exchange(&s, HEALTHZ).await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the freed connection slot is reused");
    metric_reaches(&s, "consent_ledger_http_connections_shed_total", 1).await;
    s.stop().await;
}

/// Issue 11, item 7: a 413 sent before the body was read reset the connection of a client
/// that sends its whole body without waiting for `100 Continue`: its write failed with a
/// broken pipe and it never read the 413. Declared and chunked bodies alike.
#[tokio::test]
async fn iss11_item7_a_client_sending_a_whole_body_over_the_limit_reads_the_413() {
    let s = Server::with_config(&config(1024)).await;
    // Far more than the socket buffers hold, so the client is still writing when the
    // server answers.
    let size = 32 << 20;
    let head = |framing: &str| {
        format!(
            "POST /v1/tenants/acme/imports HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {ACME}\r\n\
             Content-Type: text/csv\r\n{framing}\r\n\r\n"
        )
        .into_bytes()
    };
    let mut declared = head(&format!("Content-Length: {size}"));
    declared.resize(declared.len() + size, b'a');
    let mut chunked = head("Transfer-Encoding: chunked");
    chunked.extend_from_slice(format!("{size:x}\r\n").as_bytes());
    chunked.resize(chunked.len() + size, b'a');
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    for request in [declared, chunked] {
        let mut conn = connect(&s).await;
        conn.write_all(&request)
            .await
            .expect("the whole body is sent, not cut by a reset");
        let p = read_answer(&mut conn).await.problem(413);
        assert!(p["detail"].as_str().unwrap().contains("1024"), "{p}");
    }
    assert_eq!(s.state.ledger.event_count().unwrap(), 0);
    s.stop().await;
}

/// Issue 11, item 12: what hyper refuses before the router sees it (414, a bad
/// Content-Length, a NUL in a header, a malformed request line) was answered with an
/// empty body. Every error is a problem, as the README promises.
#[tokio::test]
async fn iss11_item12_protocol_errors_are_problems_not_empty_bodies() {
    let s = Server::start().await;
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: test\r\n\r\n", "a".repeat(70_000));
    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
        "b".repeat(600_000)
    );
    let cases: [(&[u8], u16); 8] = [
        (long_target.as_bytes(), 414),
        (huge_header.as_bytes(), 431),
        (
            b"POST /v1/tenants/acme/imports HTTP/1.1\r\nHost: test\r\nContent-Length: abc\r\n\r\n",
            400,
        ),
        (
            b"POST /v1/tenants/acme/imports HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            400,
        ),
        (b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-A: a\0b\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /healthz HTTP/9.9\r\nHost: test\r\n\r\n", 400),
    ];
    for (request, status) in cases {
        let answer = exchange(&s, request).await;
        let shown = String::from_utf8_lossy(&request[..request.len().min(60)]).to_string();
        assert_eq!(answer.status, status, "{shown:?}: {answer:?}");
        let p = answer.problem(status);
        assert!(
            p["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:consent-ledger:problem:"),
            "{shown:?}: {p}"
        );
    }
    // The same on a connection that already served a request.
    let mut conn = connect(&s).await;
    conn.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_answer(&mut conn).await.status, 200);
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-A: a\0b\r\n\r\n")
        .await
        .unwrap();
    read_answer(&mut conn).await.problem(400);
    assert!(closed_by_server(&mut conn).await);
    s.stop().await;
}

/// Issue 11, defences: no limit per token let one client take the whole server. Past
/// `rate_limit_per_token` a token gets 429 with Retry-After; other tokens go on.
#[tokio::test]
async fn iss11_rate_limit_per_token_answers_429_with_retry_after() {
    let s = Server::with_config(&config_with("", "rate_limit_per_token = \"2/h\"")).await;
    let path = "/v1/tenants/acme/contacts/+33612345678/consent";
    for _ in 0..2 {
        assert_eq!(s.get(path, ACME).send().await.unwrap().status(), 200);
    }
    let res = s.get(path, ACME).send().await.unwrap();
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let p = problem(res, 429).await;
    assert_eq!(p["type"], "urn:consent-ledger:problem:rate-limited");
    assert!(p["detail"].as_str().unwrap().contains("2/h"), "{p}");
    // Another token has its own allowance, and an unknown token is still a 401.
    let globex = "/v1/tenants/globex/contacts/+14155552671/consent";
    assert_eq!(s.get(globex, GLOBEX).send().await.unwrap().status(), 200);
    problem(s.get(path, "not-a-token").send().await.unwrap(), 401).await;
    s.stop().await;
}
