//! Black-box tests of the read side of the HTTP API: what a campaign sender sees when it asks
//! about one contact, filters an audience, reads a history or exports the audit log.

use crate::api_util::*;
use consent_ledger::domain::contact;
use consent_ledger::domain::event::Purpose;
use consent_ledger::query;
use serde_json::{json, Value};

/// Camille said STOP, Inès said ARRÊT then START, Ava said STOP ALL (acme); Bob opted in at
/// globex, where marketing needs an opt-in.
async fn seeded() -> Server {
    let s = Server::start().await;
    let lines = [
        inbound("acme", "m1", "+33612345678", "2025-11-24T11:00:00Z", "STOP"),
        inbound("acme", "m2", "0655501234", "2025-11-24T11:05:00Z", "ARRÊT"),
        inbound("acme", "m3", "0655501234", "2025-11-25T09:00:00Z", "START"),
        inbound(
            "acme",
            "m4",
            "+14155552671",
            "2025-11-24T12:00:00Z",
            "STOP ALL",
        ),
        inbound(
            "globex",
            "g1",
            "+14155550100",
            "2025-11-24T12:00:00Z",
            "START",
        ),
    ];
    s.ingest(lines.concat()).await;
    s
}

#[tokio::test]
async fn consent_answers_exactly_like_the_cli_status_record() {
    let s = seeded().await;
    for spelling in [
        "%2B33612345678",
        "0612345678",
        "%2B33%206%2012%2034%2056%2078",
        "33612345678",
        // A literal '+' in a path is a plus, not a space (that is only in query strings).
        "+33612345678",
        "0033612345678",
    ] {
        let got = s
            .get_json(
                &format!("/v1/tenants/acme/contacts/{spelling}/consent"),
                ACME,
            )
            .await;
        let acme = "acme".parse().unwrap();
        let profile = s.settings.profile(&acme);
        let c = contact::normalize("+33612345678", profile.region).unwrap();
        let expected =
            query::status(&s.state.ledger, &profile, &acme, &c, Purpose::Marketing).unwrap();
        assert_eq!(got, serde_json::to_value(&expected).unwrap(), "{spelling}");
        assert_eq!(got["status"], "opted_out");
        assert_eq!(got["may_send"], false);
        assert_eq!(got["reason"], "opted_out");
        assert_eq!(got["since"], "2025-11-24T11:00:00Z");
    }
    let t = s
        .get_json(
            "/v1/tenants/acme/contacts/%2B33612345678/consent?purpose=transactional",
            ACME,
        )
        .await;
    assert_eq!(
        (t["status"].as_str(), t["may_send"].as_bool()),
        (Some("unknown"), Some(true))
    );
    let ava = s
        .get_json(
            "/v1/tenants/acme/contacts/%2B14155552671/consent?purpose=transactional",
            ACME,
        )
        .await;
    assert_eq!(ava["may_send"], false);
    assert_eq!(ava["reason"], "revoked_all");
    // Nobody has told globex anything about this number: its policy needs an opt-in.
    let unknown = s
        .get_json("/v1/tenants/globex/contacts/%2B14155550123/consent", GLOBEX)
        .await;
    assert_eq!(
        (
            unknown["status"].as_str(),
            unknown["may_send"].as_bool(),
            unknown["reason"].as_str()
        ),
        (Some("unknown"), Some(false), Some("no_opt_in"))
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_contacts_and_purposes_are_problems_with_a_detail() {
    let s = seeded().await;
    let res = s
        .get("/v1/tenants/acme/contacts/hello/consent", ACME)
        .send()
        .await
        .unwrap();
    let p = problem(res, 400).await;
    assert_eq!(p["type"], "urn:consent-ledger:problem:invalid-contact");
    assert!(
        p["detail"].as_str().unwrap().contains("not a phone number"),
        "{p}"
    );
    let res = s
        .get(
            "/v1/tenants/acme/contacts/%2B33612345678/consent?purpose=sales",
            ACME,
        )
        .send()
        .await
        .unwrap();
    let p = problem(res, 400).await;
    assert!(p["detail"].as_str().unwrap().contains("sales"), "{p}");
    s.stop().await;
}

#[tokio::test]
async fn history_lists_events_oldest_first_with_their_proof() {
    let s = seeded().await;
    let h = s
        .get_json(
            "/v1/tenants/acme/contacts/06%2055%2050%2012%2034/history",
            ACME,
        )
        .await;
    assert_eq!(h["contact"], "+33655501234");
    let events = h["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["OptedOut", "OptedIn"]);
    for e in events {
        assert_eq!(e["hash"].as_str().unwrap().len(), 64);
        assert_eq!(e["prev_hash"].as_str().unwrap().len(), 64);
        assert!(e["source"]["message_id"].is_string());
        assert!(e["seq"].is_u64());
    }
    assert_eq!(events[0]["source"]["keyword"], "ARRET");
    assert_eq!(events[0]["source"]["text"], "ARRÊT");
    let none = s
        .get_json("/v1/tenants/acme/contacts/%2B33699999999/history", ACME)
        .await;
    assert_eq!(none["events"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn check_filters_an_audience_and_reports_invalid_items_one_by_one() {
    let s = seeded().await;
    let body = json!({"purpose": "marketing", "contacts": [
        "+33612345678", "06 55 50 12 34", "0611223344", "hello", "+14155552671",
        "0033611223344", 33699887766u64, null, "06.12.34.56.78"
    ]});
    let res = s
        .post("/v1/tenants/acme/consent/check", ACME)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/json");
    let r = ok_json(res).await;
    assert_eq!(r["purpose"], "marketing");
    assert_eq!(
        r["allowed"],
        json!(["+33655501234", "+33611223344", "+33699887766"])
    );
    assert_eq!(
        r["excluded"],
        json!([
            {"contact": "+33612345678", "reason": "opted_out", "since": "2025-11-24T11:00:00Z"},
            {"contact": "+14155552671", "reason": "opted_out", "since": "2025-11-24T12:00:00Z"},
        ])
    );
    let invalid = r["invalid"].as_array().unwrap();
    assert_eq!(invalid.len(), 2);
    assert_eq!(
        (invalid[0]["index"].as_u64(), invalid[0]["input"].as_str()),
        (Some(3), Some("hello"))
    );
    assert_eq!(invalid[1]["index"], 7);
    assert!(invalid[1]["reason"].as_str().unwrap().contains("null"));
    assert_eq!(
        r["counts"],
        json!({"checked": 9, "allowed": 3, "excluded": 2, "invalid": 2, "duplicates": 2})
    );

    // Transactional: only Ava (STOP ALL) is excluded.
    let r = ok_json(
        s.post("/v1/tenants/acme/consent/check", ACME)
            .json(
                &json!({"purpose": "transactional", "contacts": ["+33612345678", "+14155552671"]}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r["allowed"], json!(["+33612345678"]));
    assert_eq!(r["excluded"][0]["reason"], "revoked_all");

    // A strict tenant excludes everyone without an opt-in.
    let r = ok_json(
        s.post("/v1/tenants/globex/consent/check", GLOBEX)
            .json(&json!({"contacts": ["+14155550100", "(415) 555-0123"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r["allowed"], json!(["+14155550100"]));
    assert_eq!(
        r["excluded"],
        json!([{"contact": "+14155550123", "reason": "no_opt_in", "since": null}])
    );
    s.stop().await;
}

/// Regression (NDJSON check waited for curl's 100-continue timeout): curl asks
/// `Expect: 100-continue` for any body over 1 MiB and waits up to a second for the
/// `100 Continue`. The NDJSON check sent its streamed 200 before reading the body, so the
/// `100 Continue` never came and every large NDJSON check took a second longer.
#[tokio::test]
async fn check_ndjson_sends_100_continue_before_its_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = seeded().await;
    let body = "\"+33612345678\"\n\"+33611223344\"\n";
    let mut conn = crate::raw::connect(&s).await;
    let head = format!(
        "POST /v1/tenants/acme/consent/check HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {ACME}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut first = Vec::new();
    let interim = tokio::time::timeout(crate::raw::PATIENCE, async {
        while !first.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(conn.read(&mut byte).await.unwrap(), 1, "closed early");
            first.push(byte[0]);
        }
    })
    .await;
    assert!(interim.is_ok(), "no answer to the head alone");
    let first = String::from_utf8_lossy(&first);
    assert!(
        first.starts_with("HTTP/1.1 100 Continue"),
        "the server answers the head before the body with 100 Continue, got {first:?}"
    );
    conn.write_all(body.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(crate::raw::PATIENCE, conn.read_to_end(&mut rest))
        .await
        .expect("the answer ends")
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200 OK"), "{rest}");
    assert!(rest.contains(r#""outcome":"excluded""#), "{rest}");
    assert!(
        rest.contains(r#""outcome":"summary","checked":2"#),
        "{rest}"
    );
    s.stop().await;
}

#[tokio::test]
async fn check_streams_ndjson_in_and_out() {
    let s = seeded().await;
    let lines = "\"+33612345678\"\n{\"contact\": \"06 55 50 12 34\"}\n\n+33611223344\nhello\n{\"contact\":\n0612345678\n";
    // Sent in small pieces, as a client streaming a big file would.
    let chunks: Vec<Result<String, std::io::Error>> = lines
        .as_bytes()
        .chunks(7)
        .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
        .collect();
    let res = s
        .post("/v1/tenants/acme/consent/check?purpose=marketing", ACME)
        .header("content-type", "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    let out: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<(&str, u64)> = out[..out.len() - 1]
        .iter()
        .map(|l| (l["outcome"].as_str().unwrap(), l["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("excluded", 1),
            ("allowed", 2),
            ("allowed", 4),
            ("invalid", 5),
            ("invalid", 6),
            ("duplicate", 7)
        ]
    );
    assert_eq!(out[0]["reason"], "opted_out");
    assert_eq!(out[0]["contact"], "+33612345678");
    assert_eq!(out[3]["input"], "hello");
    assert_eq!(
        out.last().unwrap(),
        &json!({"outcome": "summary", "checked": 6, "allowed": 2, "excluded": 1, "invalid": 2,
                "duplicates": 1})
    );

    // A JSON body may ask for an NDJSON answer, and an NDJSON body for a JSON one.
    let res = s
        .post("/v1/tenants/acme/consent/check", ACME)
        .header("accept", "application/x-ndjson")
        .json(&json!({"contacts": ["+33611223344"]}))
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let r = ok_json(
        s.post("/v1/tenants/acme/consent/check", ACME)
            .header("content-type", "application/x-ndjson")
            .header("accept", "application/json")
            .body("+33611223344\n")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r["allowed"], json!(["+33611223344"]));
    s.stop().await;
}

#[tokio::test]
async fn check_handles_a_large_audience_and_counts_it_in_the_metrics() {
    let s = seeded().await;
    let n = 20_000u64;
    let contacts: Vec<String> = (0..n)
        .map(|i| format!("+336{:08}", 10_000_000 + i))
        .collect();
    let r = ok_json(
        s.post("/v1/tenants/acme/consent/check", ACME)
            .json(&json!({"contacts": contacts}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r["allowed"].as_array().unwrap().len() as u64, n);
    assert_eq!(r["counts"]["checked"], n);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(&format!("consent_ledger_contacts_checked_total {n}")),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn check_rejects_malformed_bodies_as_a_whole() {
    let s = seeded().await;
    for (body, needle) in [
        ("{\"contacts\": [\"+33612345678\"", "EOF"),
        ("{\"purpse\": \"marketing\", \"contacts\": []}", "purpse"),
        ("{\"purpose\": \"marketing\"}", "contacts"),
        ("{\"contacts\": \"+33612345678\"}", "array"),
    ] {
        let res = s
            .post_body(
                "/v1/tenants/acme/consent/check",
                ACME,
                "application/json",
                body,
            )
            .await;
        let p = problem(res, 400).await;
        assert!(
            p["detail"].as_str().unwrap().contains(needle),
            "{body}: {p}"
        );
    }
    let res = s
        .post_body(
            "/v1/tenants/acme/consent/check",
            ACME,
            "application/xml",
            "<contacts/>",
        )
        .await;
    problem(res, 415).await;
    s.stop().await;
}

#[tokio::test]
async fn export_streams_the_tenant_audit_log_only() {
    let s = seeded().await;
    let res = s.get("/v1/tenants/acme/export", ACME).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e["tenant"] == "acme"));
    // The lines are the events opened; the hash they carry is the stored (sealed) form's.
    let stored = s.state.ledger.events().filter_map(Result::ok);
    for (line, event) in text.lines().zip(stored.filter(|e| e.tenant == "acme")) {
        assert_eq!(event.compute_hash(), event.hash);
        let opened = s.state.ledger.open_event(event).unwrap();
        assert_eq!(line.as_bytes(), opened.stored_bytes().as_slice());
        assert!(line.contains("\"contact\":\"+"), "{line}");
    }

    let csv = s
        .get("/v1/tenants/acme/export?format=csv", ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), query::CSV_COLUMNS.join(","));
    assert_eq!(lines.count(), 4);

    let later = s
        .get("/v1/tenants/acme/export?since=2999-01-01", ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(later.text().await.unwrap(), "");
    let res = s
        .get("/v1/tenants/acme/export?since=yesterday", ACME)
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
    let res = s
        .get("/v1/tenants/acme/export?format=xml", ACME)
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
    s.stop().await;
}
