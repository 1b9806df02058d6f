//! Retention of message texts (`[rgpd] retention_days`): a person whose last event is older
//! than the retention keeps their events, identifiers and consent, and loses their texts; a
//! dry run lists them and erases nothing; one recent event of the person keeps them all.

use serde_json::Value;

use crate::common::*;

const T: &str = PHONE_NUMBER_ID;
const DAY: i64 = 24 * 60 * 60;

fn texts(env: &Env, contact: &str) -> Vec<String> {
    let history: Value =
        serde_json::from_str(&env.ok(&["history", "--tenant", T, "--contact", contact, "--json"]))
            .unwrap();
    history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["source"]["text"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_dry_run_lists_and_a_real_run_erases_only_the_texts_past_retention() {
    let env = Env::with_config("[rgpd]\nretention_days = 30\n");
    let now = chrono::Utc::now().timestamp();
    let lines = [
        // Past retention.
        wa_text("33612000001", "wamid.R1", now - 90 * DAY, "Stop please"),
        // One person: an old message under the number, a recent one under the user ID.
        wa_user_text(
            Some("33612000002"),
            Some("FR.1000000000000000002"),
            "wamid.R2",
            now - 90 * DAY,
            "Stop merci",
        ),
        wa_user_text(
            None,
            Some("FR.1000000000000000002"),
            "wamid.R3",
            now - DAY,
            "START",
        ),
        // Recent.
        wa_text("33612000003", "wamid.R4", now - DAY, "STOP"),
    ];
    env.ingest(&lines.join("\n"));

    let dry = env.ok(&["retention", "--dry-run"]);
    assert!(dry.contains("+*********01"), "{dry}");
    assert!(!dry.contains("33612000001"), "numbers are masked: {dry}");
    assert!(
        dry.contains("would erase the message texts of 1 people (1 text keys)"),
        "{dry}"
    );
    assert_eq!(
        texts(&env, "+33612000001"),
        ["Stop please"],
        "a dry run erases nothing"
    );

    let run = env.ok(&["retention"]);
    assert!(
        run.contains("erased the message texts of 1 people (1 text keys destroyed)"),
        "{run}"
    );
    assert_eq!(texts(&env, "+33612000001"), ["[erased]"]);
    assert_eq!(
        files_containing(&env.data(), "Stop please"),
        Vec::<std::path::PathBuf>::new()
    );
    let s = env.status(T, "+33612000001", "marketing");
    assert_eq!(s["status"], "opted_out", "consent stays: {s}");
    assert_eq!(s["contact"], "+33612000001");
    assert!(texts(&env, "+33612000002").contains(&"Stop merci".to_string()));
    assert_eq!(texts(&env, "+33612000003"), ["STOP"]);
    assert!(env.ok(&["verify"]).starts_with("ok: "));
    assert!(env.ok(&["retention"]).contains("of 0 people"));
}

#[test]
fn a_retention_of_zero_days_is_refused() {
    let env = Env::with_config("[rgpd]\nretention_days = 0\n");
    let out = env.run(&["retention", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("retention_days"));
}
