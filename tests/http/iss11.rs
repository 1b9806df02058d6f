//! Regression tests of issue 11's HTTP failures, each named after the bug it fixed.

use crate::api_events::post_csv;
use crate::api_util::*;
use serde_json::json;

/// Issue 11, item 8: a position over int64 wrapped and answered the feed from its start.
#[tokio::test]
async fn events_after_over_int64_is_a_400_not_the_feed_from_the_start() {
    let s = with_message("STOP").await;
    for after in ["18446744073709551615", "9223372036854775808"] {
        let res = s
            .get(&format!("/v1/tenants/acme/events?after={after}"), ACME)
            .send()
            .await
            .unwrap();
        let p = problem(res, 400).await;
        assert_eq!(p["type"], "urn:consent-ledger:problem:invalid-query");
    }
    // The largest int64 is a position like any other: nothing after it yet.
    let page = s
        .get_json("/v1/tenants/acme/events?after=9223372036854775807", ACME)
        .await;
    assert_eq!(page["events"], json!([]));
    s.stop().await;
}

/// Issue 11, item 9: a byte order mark made the first contact of an NDJSON check "invalid".
#[tokio::test]
async fn check_ndjson_with_a_utf8_bom_reads_the_first_contact() {
    let s = Server::start().await;
    for (content_type, body) in [
        (
            "application/x-ndjson",
            "\u{feff}\"+33612345678\"\n+33611223344\n",
        ),
        (
            "application/x-ndjson",
            "\u{feff}{\"contact\":\"+33612345678\"}\n",
        ),
        ("text/plain", "\u{feff}+33612345678\n"),
    ] {
        let res = s
            .post("/v1/tenants/acme/consent/check?purpose=marketing", ACME)
            .header("content-type", content_type)
            .header("accept", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_ne!(first["outcome"], "invalid", "{body:?}: {text}");
        assert_eq!(first["contact"], "+33612345678", "{body:?}: {text}");
        assert_eq!(first["line"], 1);
        let summary: serde_json::Value =
            serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(summary["invalid"], 0, "{text}");
    }
    s.stop().await;
}

/// Issue 11, item 10: a CSV import with two `contact` columns silently used the first.
#[tokio::test]
async fn import_csv_with_a_duplicate_contact_column_is_rejected() {
    let s = Server::start().await;
    let csv =
        "contact,status,occurred_at,Contact\n+33612345678,opted_out,2024-03-01,+33611111111\n";
    let p = problem(post_csv(&s, csv).await, 400).await;
    assert_eq!(p["type"], "urn:consent-ledger:problem:invalid-header");
    assert!(
        p["detail"].as_str().unwrap().contains("contact"),
        "the column is named: {p}"
    );
    assert_eq!(s.state.ledger.event_count().unwrap(), 0, "nothing imported");
    s.stop().await;
}

/// Issue 11, item 1: the same key with `"scope":"all"` after a marketing-only opt-out answered
/// `200 Idempotent-Replayed` with the narrower event, and the STOP ALL was lost.
#[tokio::test]
async fn a_reused_idempotency_key_with_another_scope_is_a_409_not_a_replay() {
    let s = Server::start().await;
    let post = |body| record(&s, "k1", body);
    let stop = json!({"contact": "+33612340030", "type": "OptedOut"});
    let stop_all = json!({"contact": "+33612340030", "type": "OptedOut", "scope": "all"});
    assert_eq!(post(stop.clone()).await.unwrap().status(), 201);
    let p = problem(post(stop_all).await.unwrap(), 409).await;
    assert_eq!(
        p["type"],
        "urn:consent-ledger:problem:idempotency-key-reused"
    );
    assert!(p["detail"].as_str().unwrap().contains("scope"), "{p}");
    // The same decision is still a replay.
    let res = post(stop).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["idempotent-replayed"], "true");

    // And the other way round: a STOP ALL's key reused for a marketing-only STOP.
    let post_k2 = |body| record(&s, "k2", body);
    let all = json!({"contact": "+33612340031", "type": "OptedOut", "scope": "all"});
    assert_eq!(post_k2(all.clone()).await.unwrap().status(), 201);
    let narrower = json!({"contact": "+33612340031", "type": "OptedOut"});
    problem(post_k2(narrower).await.unwrap(), 409).await;
    assert_eq!(post_k2(all).await.unwrap().status(), 200);
    assert_eq!(s.state.ledger.event_count().unwrap(), 2);
    s.stop().await;
}

/// Issue 11, item 2: CSV export cells starting with `=`, `+`, `-`, `@`, tab or CR were
/// written as is, so a spreadsheet ran them as formulas (CWE-1236).
#[tokio::test]
async fn csv_export_neutralizes_formula_injection() {
    let s = with_message("=STOP").await;
    let body = json!({"contact": "+33611111111", "type": "OptedIn",
                      "proof": {"text": "@SUM(1+1)*cmd|' /C calc'!A0"}});
    let res = record(&s, "k1", body).await.unwrap();
    assert_eq!(res.status(), 201);
    let csv = export(&s, "csv").await;
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[0].contains(",'+33612345678,"), "{csv}");
    assert!(rows[0].contains(",'=STOP,"), "{csv}");
    assert!(rows[1].contains(",'@SUM(1+1)*cmd|' /C calc'!A0,"), "{csv}");
    for row in rows {
        for cell in row.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in {row}"
            );
        }
    }
    // The JSON lines are the stored bytes, unchanged.
    let jsonl = export(&s, "jsonl").await;
    assert!(jsonl.contains("\"contact\":\"+33612345678\""), "{jsonl}");
    s.stop().await;
}

/// `POST …/consent-events` with this `Idempotency-Key`.
fn record(
    s: &Server,
    key: &str,
    body: serde_json::Value,
) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> {
    s.post("/v1/tenants/acme/consent-events", ACME)
        .header("idempotency-key", key)
        .json(&body)
        .send()
}

/// acme's audit export in this format.
async fn export(s: &Server, format: &str) -> String {
    let url = format!("/v1/tenants/acme/export?format={format}");
    s.get(&url, ACME)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A server whose ledger holds acme's +33612345678 sending `text`.
async fn with_message(text: &str) -> Server {
    let s = Server::start().await;
    let at = "2025-11-24T11:00:00Z";
    s.ingest(inbound("acme", "m1", "+33612345678", at, text))
        .await;
    s
}

/// The `consent_ledger_ledger_keys_read_total` counter, as a scrape shows it.
async fn keys_read(s: &Server) -> u64 {
    s.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("consent_ledger_ledger_keys_read_total "))
        .expect("the metric is exposed")
        .trim()
        .parse()
        .unwrap()
}

/// Issue 11, item 5: an empty tenant's export, campaigns, campaign page and feed each scanned
/// the whole ledger (76,000 events of another tenant: up to a CPU-second per request, and a
/// timing that told one tenant another's volume). They now read the tenant's own index.
#[tokio::test]
async fn per_tenant_reads_cost_in_proportion_to_the_tenants_own_data() {
    let s = Server::start().await;
    let at = chrono::Utc::now().to_rfc3339();
    let lines: Vec<String> = (0..3000)
        .map(|i| {
            inbound(
                "acme",
                &format!("m{i}"),
                &format!("+336123{i:05}"),
                &at,
                "STOP",
            )
        })
        .collect();
    s.ingest(lines.join("\n") + "\n").await;
    for path in [
        "/v1/tenants/globex/export",
        "/v1/tenants/globex/campaigns",
        "/v1/tenants/globex/campaigns.html",
        "/v1/tenants/globex/events",
    ] {
        let before = keys_read(&s).await;
        let res = s.get(path, GLOBEX).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        res.bytes().await.unwrap();
        let read = keys_read(&s).await - before;
        assert!(
            read < 20,
            "{path} read {read} ledger keys for an empty tenant"
        );
    }
    // The counter does count: acme's own export reads each of its events.
    let before = keys_read(&s).await;
    s.get("/v1/tenants/acme/export", ACME)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(keys_read(&s).await - before >= 3000);
    // The feed pages through acme's events with its cursor, never another tenant's.
    let page = s.get_json("/v1/tenants/acme/events?limit=1000", ACME).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1000);
    let next = page["next"].as_u64().unwrap();
    let rest = s
        .get_json(
            &format!("/v1/tenants/acme/events?after={next}&limit=1000"),
            ACME,
        )
        .await;
    assert_eq!(rest["events"][0]["position"], next + 1);
    s.stop().await;
}

/// Issue 11, item 4: an NDJSON check cut short by the size limit wrote its `error` line and
/// then a `summary`, so a client reading the last line took it as complete.
#[tokio::test]
async fn iss11_item4_a_truncated_ndjson_check_ends_with_the_error_line() {
    let s = Server::with_config(&config(1024)).await;
    let lines = (0..200).map(|i| Ok::<_, std::io::Error>(format!("+3361234{i:04}\n")));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(lines));
    let res = s
        .post_body(
            "/v1/tenants/acme/consent/check?purpose=marketing",
            ACME,
            "application/x-ndjson",
            body,
        )
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let outcomes: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["outcome"].to_string())
        .collect();
    assert!(
        outcomes.len() > 1,
        "lines before the limit are answered: {text}"
    );
    assert_eq!(outcomes.last().unwrap(), "\"error\"", "{text}");
    assert!(!outcomes.contains(&"\"summary\"".to_string()), "{text}");
    s.stop().await;
}

/// Issue 11, item 3: a chunked import over `max_body_bytes` answered 413 but had imported
/// the rows before the limit (30,834 of 40,000). Now nothing is committed before the whole
/// body has arrived: CSV and NDJSON alike, with one row per batch so any early commit shows.
#[tokio::test]
async fn iss11_item3_an_import_over_the_limit_imports_nothing() {
    let s = Server::with_config(&config_with("batch_size = 1", "")).await;
    let csv = std::iter::once("contact,status,occurred_at\n".to_string())
        .chain((0..200).map(|i| format!("+3361234{i:04},opted_out,2025-01-01\n")));
    let ndjson = (0..200).map(|i| {
        format!(
            "{}\n",
            json!({"contact": format!("+3361234{i:04}"), "status": "opted_out", "occurred_at": "2025-01-01"})
        )
    });
    let bodies: [(&str, Vec<String>); 2] = [
        ("text/csv", csv.collect()),
        ("application/x-ndjson", ndjson.collect()),
    ];
    for (content_type, lines) in bodies {
        // Streamed without a Content-Length, so the limit is met while reading.
        let chunks = lines.into_iter().map(Ok::<_, std::io::Error>);
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let res = s
            .post_body("/v1/tenants/acme/imports", ACME, content_type, body)
            .await;
        let p = problem(res, 413).await;
        assert!(p["detail"].as_str().unwrap().contains("1024"), "{p}");
        assert_eq!(
            s.state.ledger.event_count().unwrap(),
            0,
            "{content_type}: nothing imported"
        );
    }
    s.stop().await;
}

/// Issue 11, item 11: `occurred_at` in year 0 or -1 was accepted by consent-events. It is a
/// 400 naming the bound it breaks, as an import row is rejected naming it.
#[tokio::test]
async fn iss11_item11_occurred_at_in_year_0_or_minus_1_is_a_400_naming_the_bound() {
    let s = Server::start().await;
    for (key, at) in [
        ("y0", "0000-01-01T00:00:00Z"),
        ("y-1", "-0001-12-31T23:59:59Z"),
        ("y-1-offset", "-0001-06-15T12:00:00+02:00"),
    ] {
        let body = json!({"contact": "+33612345678", "type": "OptedOut", "occurred_at": at});
        let p = problem(record(&s, key, body).await.unwrap(), 400).await;
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("earliest_event_time"),
            "{at}: {p}"
        );
    }
    let csv = "contact,status,occurred_at\n+33612345678,opted_out,0000-01-01\n";
    let r = ok_json(post_csv(&s, csv).await).await;
    assert_eq!(r["imported"], 0, "{r}");
    assert!(
        r["rejections"].to_string().contains("earliest_event_time"),
        "{r}"
    );
    assert_eq!(s.state.ledger.event_count().unwrap(), 0);
    s.stop().await;
}

/// The test config with a 1024-byte body limit, these lines added to `[api]`, and `top`
/// before every table.
pub(crate) fn config_with(top: &str, api: &str) -> String {
    format!(
        "{top}\n{}",
        config(1024).replacen("[api]\n", &format!("[api]\n{api}\n"), 1)
    )
}
