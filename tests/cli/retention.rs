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

/// Rewrites the `rejected_at` of every dead letter in the data dir to `days` ago: how old
/// dead letters look after that long, without waiting for it.
fn age_dead_letters(env: &Env, days: i64) {
    let path = env.data().join("dead-letter.jsonl");
    let then = (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339();
    let aged: Vec<String> = read_jsonl(&path)
        .into_iter()
        .map(|mut d| {
            d["rejected_at"] = Value::from(then.clone());
            d.to_string()
        })
        .collect();
    std::fs::write(&path, aged.join("\n") + "\n").unwrap();
}

#[test]
fn dead_letters_lose_their_originals_after_dead_letter_days_and_keep_the_rest() {
    let env = Env::with_config("[rgpd]\ndead_letter_days = 30\n");
    let now = chrono::Utc::now().timestamp();
    // A record whose sender is no phone number: dead-lettered with its original line.
    let bad = wa_text("12", "wamid.D1", now, "STOP from a bad sender 33699000001");
    env.ingest(&(bad.clone() + "\n"));
    age_dead_letters(&env, 40);
    // A recent one, rejected after the old one aged.
    env.ingest(&(wa_text("13", "wamid.D2", now, "STOP recent 33699000002") + "\n"));
    // ingest purged the old original at its start, before writing the new dead letter.
    let dead = env.lines_of("dead-letter.jsonl");
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead[0]["original"].is_null(), "{}", dead[0]);
    assert_eq!(dead[0]["code"], dead[1]["code"]);
    assert_eq!(dead[0]["original_sha256"].as_str().unwrap().len(), 64);
    assert!(dead[0]["purged_at"].is_string());
    assert!(dead[1]["original"]
        .as_str()
        .unwrap()
        .contains("33699000002"));
    assert_eq!(
        files_containing(&env.data(), "33699000001"),
        Vec::<std::path::PathBuf>::new()
    );

    // The retention command does the same to the second once it is old, after a dry run.
    age_dead_letters(&env, 40);
    let dry = env.ok(&["retention", "--dry-run"]);
    assert!(
        dry.contains("would purge the originals of 1 of 2 dead letters"),
        "{dry}"
    );
    assert!(env.lines_of("dead-letter.jsonl")[1]["original"].is_string());
    let run = env.ok(&["retention"]);
    assert!(
        run.contains("purged the originals of 1 of 2 dead letters"),
        "{run}"
    );
    assert_eq!(
        files_containing(&env.data(), "33699000002"),
        Vec::<std::path::PathBuf>::new()
    );
}
