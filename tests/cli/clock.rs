//! Black-box tests of the clock rule (invariant 7): a customer's message with a time out of
//! the bounds is processed at its recording time, its claim kept as proof, and never lost.

use crate::attribution::history_of as history;
use crate::common::*;

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

#[test]
fn a_start_dated_year_9999_does_not_outrank_a_real_stop() {
    let env = Env::new();
    // The reproduction, as written: both lines in one ingest.
    let start = inbound("acme", "a", "+33612399001", "9999-12-31T23:59:59Z", "START");
    let stop = inbound("acme", "b", "+33612399001", &now(), "STOP");
    let summary = env.ingest(&format!("{start}\n{stop}\n"));
    assert_eq!(summary["clock_corrected"], 1, "{summary}");
    assert_eq!(summary["rejected"], 0, "{summary}");
    let s = env.status("acme", "+33612399001", "marketing");
    assert_eq!(
        (s["status"].as_str(), s["may_send"].as_bool()),
        (Some("opted_out"), Some(false))
    );
    let events = history(&env, "acme", "+33612399001");
    let start = events.iter().find(|e| e["type"] == "OptedIn").unwrap();
    assert_eq!(start["source"]["claimed_time"], "9999-12-31T23:59:59Z");
    // A START whose time cannot be trusted sits at the start of the skew window before its
    // recording, so it never outranks a STOP sent around the same time.
    let at = |e: &serde_json::Value, f: &str| {
        chrono::DateTime::parse_from_rfc3339(e[f].as_str().unwrap()).unwrap()
    };
    assert_eq!(
        at(start, "recorded_at") - at(start, "occurred_at"),
        chrono::Duration::seconds(300)
    );
    let stop = events.iter().find(|e| e["type"] == "OptedOut").unwrap();
    assert!(stop["source"].get("claimed_time").is_none(), "{stop}");
    env.ok(&["verify"]);
}

#[test]
fn whatsapp_times_a_year_ahead_in_milliseconds_or_missing_are_corrected() {
    let env = Env::new();
    let year_ahead = chrono::Utc::now().timestamp() + 366 * 86_400;
    let missing = wa_webhook(
        "33612399003",
        serde_json::json!({"from": "33612399003", "id": "wamid.none", "type": "text",
                           "text": {"body": "STOP"}}),
    );
    let as_integer = wa_webhook(
        "33612399004",
        serde_json::json!({"from": "33612399004", "id": "wamid.int", "timestamp": 1_749_416_383_000_i64,
                           "type": "text", "text": {"body": "STOP"}}),
    );
    env.ingest(&(wa_text("33612399002", "wamid.ahead", year_ahead, "START") + "\n"));
    // Whole seconds: a second ahead, so the STOP is not dated before the START's recording.
    let a_second_ahead = chrono::Utc::now().timestamp() + 1;
    let lines = [
        wa_text("33612399002", "wamid.now", a_second_ahead, "STOP"),
        missing,
        as_integer,
    ];
    let summary = env.ingest(&(lines.join("\n") + "\n"));
    assert_eq!(
        (
            summary["clock_corrected"].as_u64(),
            summary["rejected"].as_u64()
        ),
        (Some(2), Some(0)),
        "{summary}"
    );
    for contact in ["+33612399002", "+33612399003", "+33612399004"] {
        assert_eq!(
            env.status(PHONE_NUMBER_ID, contact, "marketing")["status"],
            "opted_out",
            "{contact}"
        );
    }
    let int = &history(&env, PHONE_NUMBER_ID, "+33612399004")[0];
    assert_eq!(int["source"]["claimed_time"], "1749416383000");
    let none = &history(&env, PHONE_NUMBER_ID, "+33612399003")[0];
    assert!(
        none["source"].get("claimed_time").is_none(),
        "nothing was claimed: {none}"
    );
}

#[test]
fn the_bounds_are_configurable_per_tenant() {
    let env = Env::with_config(
        "[defaults]\nearliest_event_time = \"2020-01-01T00:00:00Z\"\n\n\
         [tenants.acme]\nmax_clock_skew_seconds = 3600\n",
    );
    let in_half_an_hour = (chrono::Utc::now() + chrono::TimeDelta::minutes(30)).to_rfc3339();
    let lines = [
        inbound("acme", "a", "+33612399005", &in_half_an_hour, "STOP"),
        inbound("acme", "b", "+33612399006", "2019-06-01T00:00:00Z", "STOP"),
        inbound("acme", "c", "+33612399007", "2021-06-01T00:00:00Z", "STOP"),
    ];
    let summary = env.ingest(&(lines.join("\n") + "\n"));
    assert_eq!(
        summary["clock_corrected"], 1,
        "only the one before 2020: {summary}"
    );
    let early = &history(&env, "acme", "+33612399006")[0];
    assert_eq!(early["source"]["claimed_time"], "2019-06-01T00:00:00Z");
    let kept = &history(&env, "acme", "+33612399007")[0];
    assert_eq!(kept["occurred_at"], "2021-06-01T00:00:00Z");
    let bad = Env::with_config("[defaults]\nearliest_event_time = \"2000\"\n");
    let out = bad.run(&["ingest", "-"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("earliest_event_time"));
}
