//! Black-box tests of the write side and the feed: recording consent given elsewhere,
//! importing a previous platform's opt-outs, and automations following events as they land.

use std::time::{Duration, Instant};

use crate::api_util::*;
use serde_json::{json, Value};

const EVENTS: &str = "/v1/tenants/acme/consent-events";

fn opt_in() -> Value {
    json!({
        "contact": "06 12 34 56 78", "type": "OptedIn", "channel": "web", "source": "web_form",
        "occurred_at": "2025-11-24T10:00:00Z", "language": "fr", "campaign_id": "newsletter",
        "proof": {"url": "https://shop.example/newsletter", "text": "J'accepte de recevoir les offres par WhatsApp"}
    })
}

#[tokio::test]
async fn recording_is_idempotent_per_key() {
    let s = Server::start().await;
    let res = s
        .post(EVENTS, ACME)
        .header("idempotency-key", "form-4711")
        .json(&opt_in())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let first = ok_json(res).await;
    assert_eq!(first["replayed"], false);
    let e = &first["event"];
    assert_eq!(e["type"], "OptedIn");
    assert_eq!(e["contact"], "+33612345678");
    assert_eq!(e["channel"], "web");
    assert_eq!(e["purposes"], json!(["marketing"]));
    assert_eq!(e["occurred_at"], "2025-11-24T10:00:00Z");
    assert_eq!(e["campaign_id"], "newsletter");
    assert_eq!(e["attribution"], "explicit");
    assert_eq!(e["source"]["kind"], "api");
    assert_eq!(e["source"]["message_id"], "api:form-4711");
    assert_eq!(e["source"]["rule"], "web_form");
    assert_eq!(
        e["source"]["text"],
        "J'accepte de recevoir les offres par WhatsApp [proof_url: https://shop.example/newsletter]"
    );
    assert_eq!(e["hash"].as_str().unwrap().len(), 64);

    // The retry of a client that lost the answer gets the same event, and nothing is appended.
    let res = s
        .post(EVENTS, ACME)
        .header("idempotency-key", "form-4711")
        .json(&opt_in())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    let again = ok_json(res).await;
    assert_eq!(again["replayed"], true);
    assert_eq!(again["event"], first["event"]);
    assert_eq!(s.state.ledger.event_count().unwrap(), 1);

    // The same key for another decision is a client bug worth hearing about.
    let res = s
        .post(EVENTS, ACME)
        .header("idempotency-key", "form-4711")
        .json(&json!({"contact": "+33611111111", "type": "OptedOut"}))
        .send()
        .await
        .unwrap();
    let p = problem(res, 409).await;
    assert_eq!(
        p["type"],
        "urn:consent-ledger:problem:idempotency-key-reused"
    );

    // The decision counts: the contact is opted in, and it was published like a STOP.
    let status = s
        .get_json("/v1/tenants/acme/contacts/%2B33612345678/consent", ACME)
        .await;
    assert_eq!(status["status"], "opted_in");
    assert_eq!(status["event_id"], first["event"]["event_id"]);
    // The log is the outbox: exactly one entry waits for the relays.
    assert_eq!(
        s.state
            .ledger
            .backlog(consent_ledger::ledger::Sink::File)
            .unwrap(),
        1
    );
    s.stop().await;
}

#[tokio::test]
async fn a_support_agent_opt_out_of_everything_blocks_transactional_too() {
    let s = Server::start().await;
    let res = s
        .post(EVENTS, ACME)
        .header("idempotency-key", "ticket-99")
        .json(
            &json!({"contact": "+33612345678", "type": "OptedOut", "scope": "all",
                      "channel": "support", "source": "support_agent",
                      "proof": {"text": "Customer asked by phone to stop all messages"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let e = ok_json(res).await;
    assert_eq!(
        e["event"]["purposes"],
        json!(["marketing", "transactional"])
    );
    let t = s
        .get_json(
            "/v1/tenants/acme/contacts/%2B33612345678/consent?purpose=transactional",
            ACME,
        )
        .await;
    assert_eq!(
        (t["may_send"].as_bool(), t["reason"].as_str()),
        (Some(false), Some("revoked_all"))
    );
    s.stop().await;
}

#[tokio::test]
async fn invalid_recordings_are_rejected_with_a_reason() {
    let s = Server::start().await;
    let future = (chrono::Utc::now() + chrono::TimeDelta::days(1)).to_rfc3339();
    let cases = [
        (
            None,
            json!({"contact": "+33612345678", "type": "OptedOut"}),
            "Idempotency-Key",
        ),
        (
            Some("k"),
            json!({"contact": "hello", "type": "OptedOut"}),
            "not a phone number",
        ),
        (
            Some("k"),
            json!({"contact": "+33612345678", "type": "Maybe"}),
            "Maybe",
        ),
        (
            Some("k"),
            json!({"contact": "+33612345678", "type": "OptedOut", "colour": "red"}),
            "colour",
        ),
        (
            Some("k"),
            json!({"contact": "+33612345678", "type": "OptedOut", "occurred_at": future}),
            "future",
        ),
        (
            Some("k"),
            json!({"contact": "+33612345678", "type": "OptedIn", "scope": "all"}),
            "OptedOut only",
        ),
        (
            Some("k"),
            json!({"contact": "+33612345678", "type": "OptedOut", "channel": "web form"}),
            "channel",
        ),
        (
            Some("k"),
            json!({"contact": "+33612345678", "type": "OptedOut", "proof": {"url": "javascript:alert(1)"}}),
            "http",
        ),
        (
            Some("a key with spaces"),
            json!({"contact": "+33612345678", "type": "OptedOut"}),
            "visible ASCII",
        ),
    ];
    for (key, body, needle) in cases {
        let mut req = s.post(EVENTS, ACME).json(&body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let p = problem(req.send().await.unwrap(), 400).await;
        assert!(
            p["detail"].as_str().unwrap().contains(needle),
            "{body}: {p}"
        );
    }
    let res = s
        .post(EVENTS, ACME)
        .header("idempotency-key", "k")
        .header("content-type", "text/plain")
        .body("STOP")
        .send()
        .await
        .unwrap();
    problem(res, 415).await;
    assert_eq!(s.state.ledger.event_count().unwrap(), 0);
    s.stop().await;
}

#[tokio::test]
async fn import_reports_imported_duplicate_and_rejected_rows_by_line() {
    let s = Server::start().await;
    let csv = "\
Contact,Status,Occurred_At,Source,Email
+33612345678,opted_out,2024-03-01T09:30:00Z,old-crm,camille@example.com
06 55 50 12 34,Opted-Out,2024-03-02 10:00:00,old-crm,
hello,opted_out,2024-03-01,old-crm,
+33611223344,maybe,2024-03-01,old-crm,
+33611223344,opted_in,03/01/2024,old-crm,
+33611223344,opted_in,2999-01-01,old-crm,
\"+33 6 99 88 77 66\",unsubscribed,2024-03-05,\"Mailchimp, list A\",
+33612345678,opted_out,2024-03-01T10:30:00+01:00,old-crm,
,,,,
+33644433322,opted_in,2024-03-06
";
    let r = import_csv(&s, csv).await;
    assert_eq!(r["imported"], 4, "{r}");
    assert_eq!(
        r["duplicates"], 1,
        "same row as line 2, another spelling of its time: {r}"
    );
    assert_eq!(r["rejected"], 4, "{r}");
    assert_eq!(r["ignored_columns"], json!(["email"]));
    let lines: Vec<u64> = r["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [4, 5, 6, 7]);
    let reasons = r["rejections"].to_string();
    for needle in [
        "not a phone number",
        "unknown status",
        "invalid occurred_at",
        "future",
    ] {
        assert!(reasons.contains(needle), "{needle}: {reasons}");
    }

    let e = &s
        .get_json("/v1/tenants/acme/contacts/%2B33699887766/history", ACME)
        .await["events"][0];
    assert_eq!(e["source"]["kind"], "import");
    assert_eq!(e["source"]["rule"], "Mailchimp, list A");
    assert_eq!(e["source"]["line"], 8);
    assert_eq!(e["occurred_at"], "2024-03-05T00:00:00Z");
    let c = s
        .get_json("/v1/tenants/acme/contacts/0655501234/consent", ACME)
        .await;
    assert_eq!(c["status"], "opted_out");

    // Sending the file again after a timeout imports nothing twice.
    let again = ok_json(
        s.post_body("/v1/tenants/acme/imports", ACME, "text/csv", csv)
            .await,
    )
    .await;
    assert_eq!(
        (again["imported"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(5))
    );

    // NDJSON, same fields.
    let ndjson = "{\"contact\":\"+33600000001\",\"status\":\"opted_out\",\"occurred_at\":\"2024-01-01\",\"scope\":\"all\"}\n\
                  not json\n\
                  {\"contact\":\"+33600000002\",\"status\":\"opted_in\"}\n";
    let r = ok_json(
        s.post_body(
            "/v1/tenants/acme/imports",
            ACME,
            "application/x-ndjson",
            ndjson,
        )
        .await,
    )
    .await;
    assert_eq!(
        (r["imported"].as_u64(), r["rejected"].as_u64()),
        (Some(1), Some(2)),
        "{r}"
    );
    assert_eq!(
        r["rejections"][1],
        json!({"line": 3, "reason": "missing occurred_at"})
    );
    assert!(s.state.ledger.verify().unwrap().ok());
    s.stop().await;
}

#[tokio::test]
async fn import_without_the_required_columns_is_refused_whole() {
    let s = Server::start().await;
    let res = s
        .post_body(
            "/v1/tenants/acme/imports",
            ACME,
            "text/csv",
            "phone,state\n+33612345678,opted_out\n",
        )
        .await;
    let p = problem(res, 400).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("contact, status, occurred_at"),
        "{p}"
    );
    let res = s
        .post("/v1/tenants/acme/imports", ACME)
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    problem(res, 415).await;
    s.stop().await;
}

#[tokio::test]
async fn the_long_poll_wakes_up_when_ingest_appends_an_event() {
    let s = Server::start().await;
    let head = s.get_json("/v1/tenants/acme/events", ACME).await;
    assert_eq!(head, json!({"events": [], "next": 0}));

    let poll = {
        let req = s.get("/v1/tenants/acme/events?after=0&wait=10", ACME);
        tokio::spawn(async move {
            let started = Instant::now();
            let page = ok_json(req.send().await.unwrap()).await;
            (page, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poll.is_finished(),
        "nothing to return yet: the request must wait"
    );
    let appended = Instant::now();
    s.ingest(inbound(
        "acme",
        "m1",
        "+33612345678",
        "2025-11-24T11:00:00Z",
        "STOP",
    ))
    .await;
    let (page, waited) = poll.await.unwrap();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(
        appended.elapsed() < Duration::from_secs(3),
        "woke up late: {:?}",
        appended.elapsed()
    );
    assert_eq!(page["next"], 1);
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["position"], 1);
    assert_eq!(events[0]["event"]["type"], "OptedOut");

    // The same for an event recorded over HTTP, from the returned cursor.
    let poll = {
        let req = s.get("/v1/tenants/acme/events?after=1&wait=10", ACME);
        tokio::spawn(async move { ok_json(req.send().await.unwrap()).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.post(EVENTS, ACME)
        .header("idempotency-key", "k2")
        .json(&opt_in())
        .send()
        .await
        .unwrap();
    let page = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page["events"][0]["event"]["type"], "OptedIn");
    assert_eq!(page["next"], 2);
    s.stop().await;
}

#[tokio::test]
async fn a_long_poll_times_out_empty_and_shutdown_does_not_wait_for_it() {
    let s = Server::start().await;
    let started = Instant::now();
    let page = s
        .get_json("/v1/tenants/acme/events?after=0&wait=1", ACME)
        .await;
    assert_eq!(page, json!({"events": [], "next": 0}));
    assert!(started.elapsed() >= Duration::from_secs(1));

    let req = s.get("/v1/tenants/acme/events?after=0&wait=60", ACME);
    let poll = tokio::spawn(async move { req.send().await.unwrap().status() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    s.stop().await;
    assert_eq!(poll.await.unwrap(), 200);
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn import_reads_an_excel_csv_with_bom_and_crlf() {
    let s = Server::start().await;
    let csv = "\u{feff}contact;ignored\r\n";
    // Semicolons are not separators here: the header has no usable columns.
    let res = s
        .post_body(
            "/v1/tenants/acme/imports",
            ACME,
            "text/csv; charset=utf-8",
            csv,
        )
        .await;
    problem(res, 400).await;
    let csv = "\u{feff}contact,status,occurred_at\r\n+33612345678,opted_out,2024-03-01\r\n";
    let r = ok_json(
        s.post_body(
            "/v1/tenants/acme/imports",
            ACME,
            "text/csv; charset=utf-8",
            csv,
        )
        .await,
    )
    .await;
    assert_eq!(
        (r["imported"].as_u64(), r["rejected"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
    s.stop().await;
}

#[tokio::test]
async fn times_out_of_the_clock_bounds_are_refused_by_the_api_and_imports() {
    let s = Server::start().await;
    for (key, at, needle) in [
        ("y0", "0000-01-01T00:00:00Z", "earliest event time"),
        ("y1999", "1999-12-31T23:59:59Z", "earliest event time"),
        ("y9999", "9999-12-31T23:59:59Z", "future"),
    ] {
        let res = s
            .post(EVENTS, ACME)
            .header("idempotency-key", key)
            .json(&json!({"contact": "+33612345678", "type": "OptedIn", "occurred_at": at}))
            .send()
            .await
            .unwrap();
        let p = problem(res, 400).await;
        assert!(p["detail"].as_str().unwrap().contains(needle), "{at}: {p}");
    }
    let res = s
        .post(EVENTS, ACME)
        .header("idempotency-key", "y2000")
        .json(&json!({"contact": "+33612345678", "type": "OptedIn", "occurred_at": "2000-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "the floor itself is accepted");
    let csv = "contact,status,occurred_at\n\
+33611223344,opted_in,1970-01-01\n\
+33611223344,opted_in,9999-12-31\n\
+33611223344,opted_out,2024-03-01\n";
    let r = import_csv(&s, csv).await;
    assert_eq!(
        (r["imported"].as_u64(), r["rejected"].as_u64()),
        (Some(1), Some(2)),
        "{r}"
    );
    let reasons = r["rejections"].to_string();
    assert!(
        reasons.contains("earliest event time") && reasons.contains("future"),
        "{reasons}"
    );
    s.stop().await;
}

/// The report of a CSV import for tenant acme.
async fn import_csv(s: &Server, csv: &'static str) -> Value {
    ok_json(post_csv(s, csv).await).await
}

/// The answer to a CSV import for tenant acme, whatever its status.
pub(crate) async fn post_csv(s: &Server, csv: &'static str) -> reqwest::Response {
    s.post_body("/v1/tenants/acme/imports", ACME, "text/csv", csv)
        .await
}

/// A WhatsApp business-scoped user ID is a contact everywhere one is accepted: in a recorded
/// decision's body and in the consent path, as written.
#[tokio::test]
async fn a_decision_about_a_whatsapp_user_id_is_recorded_and_answered_under_that_id() {
    let s = Server::start().await;
    let id = "US.13491208655302741918";
    let res = s
        .post(EVENTS, ACME)
        .header("idempotency-key", "support-77")
        .json(&json!({"contact": id, "type": "OptedOut", "channel": "support"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(ok_json(res).await["event"]["contact"], id);
    let status = s
        .get_json(&format!("/v1/tenants/acme/contacts/{id}/consent"), ACME)
        .await;
    assert_eq!(
        (status["contact"].as_str(), status["may_send"].as_bool()),
        (Some(id), Some(false))
    );
    s.stop().await;
}
