//! Black-box tests of campaign attribution and statistics: ingest what campaigns sent, then
//! the customers' answers, and check which campaign each opt-out was blamed on and the
//! numbers `stats` reports.

use crate::common::campaigns::{self, sent, wa_status, HISTORY, T0};
use crate::common::*;
use serde_json::Value;

const H72: i64 = 72 * 3600;

pub(crate) fn history_of(env: &Env, tenant: &str, contact: &str) -> Vec<Value> {
    let out = env.ok(&[
        "history",
        "--tenant",
        tenant,
        "--contact",
        contact,
        "--json",
    ]);
    serde_json::from_str(&out).unwrap()
}

fn attribution(env: &Env, tenant: &str, contact: &str) -> (Value, Value) {
    let events = history_of(env, tenant, contact);
    let last = events.last().expect("an event");
    (last["campaign_id"].clone(), last["attribution"].clone())
}

fn at(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .to_rfc3339()
}

#[test]
fn each_route_attributes_the_opt_out_to_the_right_campaign() {
    let env = Env::new();
    let t = PHONE_NUMBER_ID;
    let lines = [
        // Explicit: the record names its campaign, even with a newer send in the window.
        sent(t, "wamid.A", "+33611111111", "newsletter", "marketing", T0),
        serde_json::json!({"type": "inbound", "tenant": t, "channel": "sms", "message_id": "in-explicit",
            "from": "+33611111111", "received_at": at(T0 + 60), "text": "STOP", "campaign_id": "sms-blast"})
        .to_string(),
        // Reply context: a quick reply on last week's message, though a newer one is in the window.
        sent(t, "wamid.B1", "+33622222222", "spring-sale", "marketing", T0 - 7 * 86_400),
        sent(t, "wamid.B2", "+33622222222", "newsletter", "marketing", T0),
        wa_button("33622222222", "wamid.in-reply", T0 + 60, "STOP", "Se désabonner", "wamid.B1"),
        // Window: typed STOP, the last marketing send wins over an older one and a newer utility one.
        sent(t, "wamid.C1", "+33633333333", "spring-sale", "marketing", T0 - 86_400),
        sent(t, "wamid.C2", "+33633333333", "newsletter", "marketing", T0),
        sent(t, "wamid.C3", "+33633333333", "order-updates", "utility", T0 + 30),
        wa_text("33633333333", "wamid.in-window", T0 + 60, "STOP"),
        // None: nothing was sent to this contact.
        wa_text("33644444444", "wamid.in-none", T0 + 60, "STOP"),
    ];
    let summary = env.ingest(&(lines.join("\n") + "\n"));
    assert_eq!(summary["sent"], 6, "{summary}");
    assert_eq!(summary["opted_out"], 4, "{summary}");
    let cases = [
        ("+33611111111", "sms-blast", "explicit"),
        ("+33622222222", "spring-sale", "reply_context"),
        ("+33633333333", "newsletter", "window"),
    ];
    for (contact, campaign, route) in cases {
        assert_eq!(
            attribution(&env, t, contact),
            (Value::from(campaign), Value::from(route)),
            "{contact}"
        );
    }
    assert_eq!(
        attribution(&env, t, "+33644444444"),
        (Value::Null, Value::from("none"))
    );
    // Attribution is part of the hashed event, and the ledger still verifies.
    env.ok(&["verify"]);
}

#[test]
fn the_window_includes_exactly_72_hours_and_not_a_second_more() {
    let env = Env::new();
    let t = PHONE_NUMBER_ID;
    let lines = [
        sent(t, "wamid.W1", "+33655555551", "flash", "marketing", T0),
        wa_text("33655555551", "wamid.in-72h", T0 + H72, "STOP"),
        sent(t, "wamid.W2", "+33655555552", "flash", "marketing", T0),
        wa_text("33655555552", "wamid.in-72h1s", T0 + H72 + 1, "STOP"),
    ];
    env.ingest(&(lines.join("\n") + "\n"));
    assert_eq!(
        attribution(&env, t, "+33655555551"),
        (Value::from("flash"), Value::from("window"))
    );
    assert_eq!(
        attribution(&env, t, "+33655555552"),
        (Value::Null, Value::from("none"))
    );
}

#[test]
fn sends_from_earlier_runs_count_and_a_configured_window_applies() {
    let env = Env::with_config("[defaults]\nattribution_window_hours = 24\n");
    let t = PHONE_NUMBER_ID;
    // The sent record arrives in one run, the STOP in a later one: read back from the ledger.
    env.ingest(&(sent(t, "wamid.X", "+33666666661", "promo", "marketing", T0) + "\n"));
    env.ingest(&(sent(t, "wamid.Y", "+33666666662", "promo", "marketing", T0) + "\n"));
    let lines = [
        wa_text("33666666661", "wamid.in-23h", T0 + 23 * 3600, "STOP"),
        wa_text("33666666662", "wamid.in-25h", T0 + 25 * 3600, "STOP"),
    ];
    env.ingest(&(lines.join("\n") + "\n"));
    assert_eq!(
        attribution(&env, t, "+33666666661"),
        (Value::from("promo"), Value::from("window"))
    );
    assert_eq!(
        attribution(&env, t, "+33666666662"),
        (Value::Null, Value::from("none"))
    );
}

#[test]
fn redelivered_sent_records_count_once_and_bad_ones_are_dead_lettered() {
    let env = Env::new();
    let t = PHONE_NUMBER_ID;
    let good = sent(t, "wamid.D", "+33677777777", "promo", "marketing", T0);
    let bad_contact = sent(t, "wamid.E", "hello", "promo", "marketing", T0);
    let bad_category = good.replace("\"marketing\"", "\"promotional\"");
    let lines = [good.clone(), good, bad_contact, bad_category];
    let summary = env.ingest(&(lines.join("\n") + "\n"));
    assert_eq!(
        (
            &summary["sent"],
            &summary["duplicates"],
            &summary["rejected"]
        ),
        (&Value::from(1), &Value::from(1), &Value::from(2)),
        "{summary}"
    );
    let dead = env.lines_of("dead-letter.jsonl");
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["code"], "invalid_contact");
    assert_eq!(dead[1]["code"], "invalid_field");
    let stats: Value = serde_json::from_str(&env.ok(&["stats", "--tenant", t, "--json"])).unwrap();
    assert_eq!(stats["campaigns"][0]["sent"], 1);
}

#[test]
fn a_delivery_status_before_its_sent_record_is_still_counted() {
    let env = Env::new();
    let t = PHONE_NUMBER_ID;
    env.ingest(&(wa_status("wamid.S", "read", T0 + 10, "33688888888") + "\n"));
    env.ingest(&(sent(t, "wamid.S", "+33688888888", "promo", "marketing", T0) + "\n"));
    let stats: Value = serde_json::from_str(&env.ok(&["stats", "--tenant", t, "--json"])).unwrap();
    let promo = &stats["campaigns"][0];
    assert_eq!(
        (&promo["sent"], &promo["delivered"]),
        (&Value::from(1), &Value::from(1))
    );
}

#[test]
fn stats_on_a_generated_history_flag_only_the_abnormal_campaign() {
    let env = Env::new();
    let summary = env.ingest(&campaigns::history());
    let total_sent: u64 = HISTORY.iter().map(|c| c.sent).sum();
    assert_eq!(summary["sent"], total_sent, "{summary}");
    let out = env.ok(&["stats", "--tenant", PHONE_NUMBER_ID, "--json"]);
    let stats: Value = serde_json::from_str(&out).unwrap();
    let campaigns = stats["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), HISTORY.len());
    for c in &HISTORY {
        let s = campaigns
            .iter()
            .find(|s| s["campaign_id"] == c.id)
            .unwrap_or_else(|| panic!("{} missing", c.id));
        assert_eq!(s["sent"], c.sent, "{}", c.id);
        assert_eq!(s["opt_outs"], c.stops, "{}", c.id);
        assert_eq!(s["delivered"], c.sent - c.sent / 10, "{}", c.id);
        let help = (0..c.sent).filter(|i| *i >= c.stops && i % 10 == 5).count();
        assert_eq!(s["help_requests"], help as u64, "{}", c.id);
        let rate = s["opt_out_rate"].as_f64().unwrap();
        assert!((rate - c.stops as f64 / c.sent as f64).abs() < 1e-9);
        assert_eq!(s["daily"][0]["sent"], c.sent, "{}", c.id);
        assert_eq!(s["daily"][0]["opt_outs"], c.stops, "{}", c.id);
        let flagged = s["anomaly"]["flagged"].as_bool().unwrap();
        assert_eq!(flagged, c.id == "flash-sale", "{}: {}", c.id, s["anomaly"]);
    }
    let flash = campaigns
        .iter()
        .find(|s| s["campaign_id"] == "flash-sale")
        .unwrap();
    let reason = flash["anomaly"]["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("opt-out rate 6.0% is ") && reason.ends_with("(threshold 3×)"),
        "{reason}"
    );
    let vip = campaigns
        .iter()
        .find(|s| s["campaign_id"] == "vip-test")
        .unwrap();
    assert!(vip["anomaly"]["reasons"]
        .as_array()
        .unwrap()
        .contains(&Value::from("30 sends are under the minimum of 200")));

    // --since keeps the later campaigns only; the text output names the flagged one.
    let since = chrono::DateTime::from_timestamp(T0 + 20 * 86_400, 0)
        .unwrap()
        .to_rfc3339();
    let later: Value = serde_json::from_str(&env.ok(&[
        "stats",
        "--tenant",
        PHONE_NUMBER_ID,
        "--since",
        &since,
        "--json",
    ]))
    .unwrap();
    let ids: Vec<&str> = later["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["campaign_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["vip-test", "weekly-4"]);
    let text = env.ok(&["stats", "--tenant", PHONE_NUMBER_ID]);
    let flagged: Vec<&str> = text.lines().filter(|l| l.contains("FLAGGED")).collect();
    assert_eq!(flagged.len(), 1, "{text}");
    assert!(flagged[0].starts_with("flash-sale"));
    // Bad input is a usage error.
    let out = env.run(&["stats", "--tenant", PHONE_NUMBER_ID, "--since", "last week"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn configured_anomaly_rules_change_what_is_flagged() {
    let env = Env::with_config("[defaults.anomaly]\nmin_sent = 20\n");
    env.ingest(&campaigns::history());
    let stats: Value =
        serde_json::from_str(&env.ok(&["stats", "--tenant", PHONE_NUMBER_ID, "--json"])).unwrap();
    let mut flagged: Vec<&str> = stats["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["anomaly"]["flagged"] == true)
        .map(|c| c["campaign_id"].as_str().unwrap())
        .collect();
    flagged.sort();
    assert_eq!(flagged, ["flash-sale", "vip-test"]);
    assert_eq!(stats["rules"]["min_sent"], 20);
}
