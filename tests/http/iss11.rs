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
    assert_eq!(s.state.ledger.event_count(), 0, "nothing imported");
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
    assert_eq!(s.state.ledger.event_count(), 2);
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
    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
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
