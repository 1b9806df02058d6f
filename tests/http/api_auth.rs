//! Authentication, tenant isolation and the error format: a business only ever sees its own
//! customers, whatever the path tricks, and every failure is an RFC 9457 problem.

use crate::api_util::*;
use serde_json::json;

async fn seeded() -> Server {
    let s = Server::start().await;
    s.ingest(
        [
            inbound("acme", "m1", "+33612345678", "2025-11-24T11:00:00Z", "STOP"),
            inbound(
                "globex",
                "g1",
                "+14155550100",
                "2025-11-24T12:00:00Z",
                "STOP",
            ),
        ]
        .concat(),
    )
    .await;
    s
}

const ACME_CONSENT: &str = "/v1/tenants/acme/contacts/%2B33612345678/consent";

#[tokio::test]
async fn missing_malformed_and_unknown_tokens_are_401_with_a_challenge() {
    let s = seeded().await;
    let res = s.client.get(s.url(ACME_CONSENT)).send().await.unwrap();
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"consent-ledger\""
    );
    let p = problem(res, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("Bearer"), "{p}");
    for auth in [
        "Basic YWNtZTpzZWNyZXQ=",
        "Bearer",
        "Bearer wrong-token",
        ACME,
    ] {
        let res = s
            .client
            .get(s.url(ACME_CONSENT))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert!(res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token"));
        problem(res, 401).await;
    }
    // The scheme is case-insensitive (RFC 7235).
    let res = s
        .client
        .get(s.url(ACME_CONSENT))
        .header("authorization", format!("bearer {ACME}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_tenant_token_never_reaches_another_tenant() {
    let s = seeded().await;
    let globex_paths = [
        "/v1/tenants/globex/contacts/%2B14155550100/consent".to_string(),
        "/v1/tenants/globex/contacts/%2B14155550100/history".to_string(),
        "/v1/tenants/globex/events?after=0".to_string(),
        "/v1/tenants/globex/export".to_string(),
        // A tenant that does not exist answers exactly like one that does.
        "/v1/tenants/initech/export".to_string(),
        // Path tricks: case, encoded slashes and dots, an encoded tenant name.
        "/v1/tenants/ACME/export".to_string(),
        "/v1/tenants/acme%2F..%2Fglobex/export".to_string(),
        "/v1/tenants/%61cme%00/export".to_string(),
        "/v1/tenants/..%2Fglobex/export".to_string(),
    ];
    for path in &globex_paths {
        let res = s.get(path, ACME).send().await.unwrap();
        let p = problem(res, 403).await;
        let text = p.to_string();
        assert!(
            !text.contains("14155550100") && !text.contains("globex"),
            "{path}: {p}"
        );
    }
    for (path, body) in [
        (
            "/v1/tenants/globex/consent/check",
            json!({"contacts": ["+14155550100"]}),
        ),
        (
            "/v1/tenants/globex/consent-events",
            json!({"contact": "+14155550100", "type": "OptedIn"}),
        ),
    ] {
        let res = s
            .post(path, ACME)
            .header("idempotency-key", "k1")
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(res, 403).await;
    }
    let res = s
        .post_body(
            "/v1/tenants/globex/imports",
            ACME,
            "text/csv",
            "contact,status,occurred_at\n+14155550100,opted_in,2025-01-01\n",
        )
        .await;
    problem(res, 403).await;
    // Nothing was written to globex.
    assert_eq!(s.state.ledger.event_count().unwrap(), 2);

    // The percent-decoded name "acme" is acme: an encoded spelling of one's own tenant works.
    let res = s
        .get("/v1/tenants/%61cme/export", ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let export = res.text().await.unwrap();
    assert!(export.contains("+33612345678") && !export.contains("14155550100"));
    s.stop().await;
}

#[tokio::test]
async fn the_feed_of_one_tenant_skips_the_events_of_others() {
    let s = seeded().await;
    let page = s.get_json("/v1/tenants/acme/events?after=0", ACME).await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"]["tenant"], "acme");
    assert_eq!(page["next"], 2, "the cursor moves past globex's event");
    s.stop().await;
}

#[tokio::test]
async fn the_admin_token_reads_every_tenant_but_writes_none() {
    let s = seeded().await;
    let r = s
        .get_json("/v1/tenants/globex/contacts/%2B14155550100/consent", ADMIN)
        .await;
    assert_eq!(r["status"], "opted_out");
    let r = s
        .get_json("/v1/tenants/acme/contacts/%2B33612345678/consent", ADMIN)
        .await;
    assert_eq!(r["status"], "opted_out");
    let res = s
        .post("/v1/tenants/acme/consent/check", ADMIN)
        .json(&json!({"contacts": ["+33612345678"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = s
        .post("/v1/tenants/acme/consent-events", ADMIN)
        .header("idempotency-key", "k1")
        .json(&json!({"contact": "+33612345678", "type": "OptedIn"}))
        .send()
        .await
        .unwrap();
    let p = problem(res, 403).await;
    assert!(p["detail"].as_str().unwrap().contains("read-only"), "{p}");
    // An invalid tenant id is the admin's mistake to hear about.
    let res = s
        .get("/v1/tenants/..%2Fetc/export", ADMIN)
        .send()
        .await
        .unwrap();
    let p = problem(res, 400).await;
    assert_eq!(p["type"], "urn:consent-ledger:problem:invalid-tenant");
    s.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let s = seeded().await;
    let res = s
        .get("/v1/tenants/acme/nothing-here", ACME)
        .send()
        .await
        .unwrap();
    let p = problem(res, 404).await;
    assert!(
        p["detail"].as_str().unwrap().contains("openapi.json"),
        "{p}"
    );
    let res = s
        .client
        .delete(s.url(ACME_CONSENT))
        .bearer_auth(ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET,HEAD");
    let p = problem(res, 405).await;
    assert!(p["detail"].as_str().unwrap().contains("DELETE"), "{p}");
    s.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let s = Server::with_config(&config(1024)).await;
    let contacts: Vec<String> = (0..200)
        .map(|i| format!("+336{:08}", 10_000_000 + i))
        .collect();
    let res = s
        .post("/v1/tenants/acme/consent/check", ACME)
        .json(&json!({"contacts": contacts}))
        .send()
        .await
        .unwrap();
    let p = problem(res, 413).await;
    assert!(p["detail"].as_str().unwrap().contains("1024"), "{p}");
    // Without a declared length the limit still holds while the body streams in.
    let chunks: Vec<Result<String, std::io::Error>> = (0..200)
        .map(|i| {
            Ok(format!(
                "contact,status,occurred_at\n+336{:08},opted_out,2025-01-01\n",
                10_000_000 + i
            ))
        })
        .collect();
    let res = s
        .post("/v1/tenants/acme/imports", ACME)
        .header("content-type", "text/csv")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    problem(res, 413).await;
    let res = s
        .post("/v1/tenants/acme/consent-events", ACME)
        .header("idempotency-key", "big")
        .json(&json!({"contact": "+33612345678", "type": "OptedIn", "proof": {"text": "x".repeat(2000)}}))
        .send()
        .await
        .unwrap();
    problem(res, 413).await;
    s.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics_need_no_token() {
    let s = seeded().await;
    let h = ok_json(s.client.get(s.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(h, json!({"status": "ok"}));
    let r = ok_json(s.client.get(s.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(r, json!({"status": "ok"}));
    s.state
        .readiness()
        .set_not_ready("waiting for partition assignment");
    let res = s.client.get(s.url("/readyz")).send().await.unwrap();
    let p = problem(res, 503).await;
    assert_eq!(p["detail"], "waiting for partition assignment");
    s.state.readiness().set_ready();
    // `run` makes readiness follow its consumer's assignment flag.
    let assigned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    s.state
        .readiness()
        .follow(assigned.clone(), "the consumer has no partitions yet");
    let p = problem(s.client.get(s.url("/readyz")).send().await.unwrap(), 503).await;
    assert_eq!(p["detail"], "the consumer has no partitions yet");
    assert_eq!(p["type"], "urn:consent-ledger:problem:not-ready");
    assigned.store(true, std::sync::atomic::Ordering::Release);
    let r = ok_json(s.client.get(s.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(r, json!({"status": "ok"}));

    s.get(ACME_CONSENT, ACME).send().await.unwrap();
    s.get(ACME_CONSENT, "nope").send().await.unwrap();
    let res = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = res.text().await.unwrap();
    let route = "route=\"/v1/tenants/{tenant}/contacts/{contact}/consent\"";
    assert!(
        text.contains(&format!(
            "consent_ledger_http_requests_total{{method=\"GET\",{route},status=\"200\"}} 1"
        )),
        "{text}"
    );
    assert!(text.contains("status=\"401\""), "{text}");
    assert!(
        text.contains("consent_ledger_http_request_seconds_bucket"),
        "{text}"
    );
    // Metrics carry route templates, never a phone number.
    assert!(!text.contains("33612345678"), "{text}");
    s.stop().await;
}
