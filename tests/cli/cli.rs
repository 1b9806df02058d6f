//! Black-box tests of the CLI in file mode: what a user sees when they ingest messages and ask
//! the ledger questions.

use crate::common::*;
use serde_json::json;

const EXAMPLE_CONFIG: &str = "examples/consent-ledger.toml";

fn example_env() -> Env {
    let env = Env::new();
    let config = std::fs::read_to_string(repo_file(EXAMPLE_CONFIG)).unwrap();
    std::fs::write(env.dir.path().join("config.toml"), config).unwrap();
    Env {
        config: Some(env.dir.path().join("config.toml")),
        ..env
    }
}

fn examples() -> String {
    std::fs::read_to_string(repo_file("examples/whatsapp-webhooks.jsonl")).unwrap()
}

#[test]
fn quick_start_example_gives_the_documented_summary() {
    let env = example_env();
    let summary = env.ingest(&examples());
    assert_eq!(
        summary,
        json!({"read": 20, "opted_out": 9, "opted_in": 1, "help": 1, "no_change": 3,
               "possible_opt_out": 1, "duplicates": 1, "rejected": 2, "ignored": 1,
               "events": 10, "links": 0, "replies": 11, "sent": 0, "statuses": 1, "clock_corrected": 0})
    );
    // Camille typed STOP: opted out of marketing, transactional still allowed.
    let s = env.status("acme", "+33 6 12 34 56 78", "marketing");
    assert_eq!(s["status"], "opted_out");
    assert_eq!(s["may_send"], false);
    assert_eq!(s["since"], "2025-11-24T11:00:00Z");
    assert!(s["event_id"].is_string());
    let t = env.status("acme", "0612345678", "transactional");
    assert_eq!(
        (t["status"].as_str(), t["may_send"].as_bool()),
        (Some("unknown"), Some(true))
    );
    // Inès said ARRÊT, then START: opted in again.
    assert_eq!(
        env.status("acme", "0655501234", "marketing")["status"],
        "opted_in"
    );
    // Ava said STOP ALL: nothing may be sent, not even transactional.
    let ava = env.status("acme", "+14155552671", "transactional");
    assert_eq!(
        (ava["status"].as_str(), ava["may_send"].as_bool()),
        (Some("opted_out"), Some(false))
    );
}

#[test]
fn check_prints_sendable_contacts_and_explains_the_others() {
    let env = example_env();
    env.ingest(&examples());
    let out = env.run(&[
        "check",
        "--tenant",
        "acme",
        repo_file("examples/audience.txt").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let allowed: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        allowed,
        [
            "+33655501234",
            "+33644433322",
            "+33611122233",
            "+33611223344",
            "+33699887766"
        ]
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("excluded\t+33612345678\topted_out\t2025-11-24T11:00:00+00:00"),
        "{stderr}"
    );
    assert!(
        stderr.contains("invalid\tnot a phone\tnot a phone number"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().last().unwrap(),
        "checked 15 contacts: 5 allowed, 9 excluded, 1 invalid, 0 duplicates"
    );
}

#[test]
fn every_spelling_of_a_number_is_one_contact() {
    let env = Env::new();
    env.ingest(&inbound(
        "shop",
        "m1",
        "0033612345678",
        "2026-01-01T10:00:00Z",
        "STOP",
    ));
    for spelling in [
        "+33 6 12 34 56 78",
        "0033612345678",
        "33612345678",
        "06 12 34 56 78",
    ] {
        assert_eq!(
            env.status("shop", spelling, "marketing")["status"],
            "opted_out",
            "{spelling}"
        );
    }
    let out = env.ok_with_input(
        &["check", "--tenant", "shop"],
        "+33612345678\n06.12.34.56.78\n0033612345679\n",
    );
    assert_eq!(out, "+33612345679\n");
}

#[test]
fn the_same_webhook_twice_gives_one_event_and_one_confirmation() {
    let env = Env::new();
    let line = wa_text("33612345678", "wamid.ONE", 1_763_978_400, "STOP");
    let first = env.ingest(&format!("{line}\n{line}\n"));
    assert_eq!(
        (first["events"].as_u64(), first["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    let again = env.ingest(&format!("{line}\n"));
    assert_eq!(
        (again["events"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(env.lines_of("consent-events.jsonl").len(), 1);
    assert_eq!(env.lines_of("outbox.jsonl").len(), 1);
}

#[test]
fn a_redelivered_chat_message_leaves_nothing_durable_and_counts_as_no_change_again() {
    let env = Env::new();
    let chat = wa_text("33612345678", "wamid.CHAT", 1_763_978_400, "Bonjour !");
    let help = wa_text("33612345678", "wamid.HELP", 1_763_978_401, "AIDE");
    let first = env.ingest(&format!("{chat}\n{help}\n"));
    assert_eq!(
        (first["no_change"].as_u64(), first["help"].as_u64()),
        (Some(1), Some(1))
    );
    let again = env.ingest(&format!("{chat}\n{help}\n"));
    // Chat is not remembered: the redelivery is ordinary chat again. The help request got a
    // reply, so its id is remembered and the redelivery is not answered twice.
    assert_eq!(
        (
            again["no_change"].as_u64(),
            again["duplicates"].as_u64(),
            again["replies"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(env.lines_of("outbox.jsonl").len(), 1);
    assert!(env.lines_of("consent-events.jsonl").is_empty());
}

/// Regression: a sender libphonenumber's ranges do not know yet (from a well-known WhatsApp
/// SDK's webhook fixtures) was dead-lettered as "not a valid phone number", STOP included.
#[test]
fn a_stop_from_a_sender_outside_libphonenumbers_ranges_is_not_dead_lettered() {
    let env = Env::new();
    let stop = wa_text("972987654321", "wamid.IL", 1_763_978_400, "STOP");
    let summary = env.ingest(&format!("{stop}\n"));
    assert_eq!(
        (summary["rejected"].as_u64(), summary["opted_out"].as_u64()),
        (Some(0), Some(1))
    );
    // The same number typed in a check is the same contact, and it is excluded.
    let out = env.run_with_input(
        &["check", "--tenant", PHONE_NUMBER_ID],
        "+972 98 765 4321\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("excluded\t+972987654321"), "{stderr}");
}

/// Regression: a STOP from a WhatsApp user with a username (no `from`, only `from_user_id`)
/// was dead-lettered as "missing field from", and marketing went on.
#[test]
fn a_stop_from_a_user_known_only_by_whatsapp_user_id_is_honoured() {
    let env = Env::new();
    let id = "US.13491208655302741918";
    let stop = wa_webhook(
        "",
        serde_json::json!({"from_user_id": id, "id": "wamid.BSUID", "timestamp": "1763978400",
                           "type": "text", "text": {"body": "STOP"}}),
    );
    let summary = env.ingest(&format!("{stop}\n"));
    assert_eq!(
        (summary["rejected"].as_u64(), summary["opted_out"].as_u64()),
        (Some(0), Some(1))
    );
    let status = env.status(PHONE_NUMBER_ID, id, "marketing");
    assert_eq!(
        (status["contact"].as_str(), status["status"].as_str()),
        (Some(id), Some("opted_out"))
    );
    // The audience check answers a user ID line as it is written.
    let out = env.run_with_input(
        &["check", "--tenant", PHONE_NUMBER_ID],
        &format!("{id}\nUS.99999999999999999999\n"),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "US.99999999999999999999\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("excluded\t{id}")));
    // The confirmation goes back to the same identifier.
    assert_eq!(env.lines_of("outbox.jsonl")[0]["to"], id);
}

#[test]
fn repeated_stop_is_history_but_not_a_new_transition() {
    let env = Env::new();
    env.ingest(
        &[
            wa_text("33612345678", "wamid.1", 1_763_978_400, "STOP"),
            wa_text("33612345678", "wamid.2", 1_763_978_500, "stop!!"),
        ]
        .join("\n"),
    );
    let history: serde_json::Value = serde_json::from_str(&env.ok(&[
        "history",
        "--tenant",
        PHONE_NUMBER_ID,
        "--contact",
        "+33612345678",
        "--json",
    ]))
    .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2);
    let confirmations: Vec<_> = env
        .lines_of("outbox.jsonl")
        .into_iter()
        .filter(|m| m["kind"] == "opt_out_confirmation")
        .collect();
    assert_eq!(confirmations.len(), 1);
    assert_eq!(confirmations[0]["in_reply_to"], "wamid.1");
    let s = env.status(PHONE_NUMBER_ID, "+33612345678", "marketing");
    assert_eq!(s["since"], "2025-11-24T10:00:00Z");
}

#[test]
fn a_late_older_stop_does_not_override_a_newer_start() {
    let env = Env::new();
    env.ingest(
        &[
            inbound("shop", "a", "+33612345678", "2026-01-01T10:00:00Z", "STOP"),
            inbound("shop", "c", "+33612345678", "2026-01-01T12:00:00Z", "START"),
            inbound("shop", "b", "+33612345678", "2026-01-01T11:00:00Z", "ARRET"),
        ]
        .join("\n"),
    );
    let s = env.status("shop", "+33612345678", "marketing");
    assert_eq!(
        (s["status"].as_str(), s["since"].as_str()),
        (Some("opted_in"), Some("2026-01-01T12:00:00Z"))
    );
    let out = env.ok(&[
        "history",
        "--tenant",
        "shop",
        "--contact",
        "+33612345678",
        "--json",
    ]);
    let history: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let order: Vec<&str> = history
        .iter()
        .map(|e| e["source"]["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["a", "b", "c"], "history is in event time");
    let replies: Vec<String> = env
        .lines_of("outbox.jsonl")
        .iter()
        .map(|m| m["in_reply_to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(replies, ["a", "c"], "the late STOP gets no confirmation");
}

#[test]
fn confirmations_and_help_follow_the_customers_language_and_the_tenant_texts() {
    let env = example_env();
    env.ingest(
        &[
            wa_text("33612345678", "wamid.fr", 1_763_978_400, "ARRÊT"),
            wa_text("447911123456", "wamid.help.en", 1_763_978_500, "HELP"),
            wa_text("33698765432", "wamid.help.fr", 1_763_978_600, "aide"),
            inbound(
                "acme",
                "sms-en",
                "+447911123457",
                "2026-01-01T10:00:00Z",
                "unsubscribe",
            ),
        ]
        .join("\n"),
    );
    let out = env.lines_of("outbox.jsonl");
    let by_id = |id: &str| out.iter().find(|m| m["in_reply_to"] == id).unwrap().clone();
    assert_eq!(
        by_id("wamid.fr")["text"],
        "C'est noté, vous avez bien été désinscrit de notre liste de diffusion. Vous ne recevrez plus de messages marketing de notre part."
    );
    assert_eq!(by_id("wamid.help.en")["kind"], "help");
    assert!(by_id("wamid.help.en")["text"]
        .as_str()
        .unwrap()
        .starts_with("Acme Boutique: you get"));
    assert!(by_id("wamid.help.fr")["text"]
        .as_str()
        .unwrap()
        .starts_with("Acme Boutique : vous recevez"));
    assert_eq!(by_id("sms-en")["language"], "en");
    assert_eq!(by_id("sms-en")["channel"], "sms");
}

#[test]
fn stop_all_blocks_transactional_and_tenant_policy_can_block_it_after_stop() {
    let env = Env::with_config(
        "[tenants.strict]\ntransactional_after_optout = \"block\"\nmarketing_requires_opt_in = true\n",
    );
    env.ingest(
        &[
            inbound("open", "1", "+33612345678", "2026-01-01T10:00:00Z", "STOP"),
            inbound(
                "open",
                "2",
                "+33612345679",
                "2026-01-01T10:00:00Z",
                "STOP ALL",
            ),
            inbound(
                "strict",
                "3",
                "+33612345678",
                "2026-01-01T10:00:00Z",
                "STOP",
            ),
        ]
        .join("\n"),
    );
    assert_eq!(
        env.status("open", "+33612345678", "transactional")["may_send"],
        true
    );
    let all = env.status("open", "+33612345679", "transactional");
    assert_eq!(
        (all["may_send"].as_bool(), all["reason"].as_str()),
        (Some(false), Some("revoked_all"))
    );
    assert_eq!(
        env.status("strict", "+33612345678", "transactional")["may_send"],
        false
    );
    let never = env.status("strict", "+33600000001", "marketing");
    assert_eq!(
        (never["may_send"].as_bool(), never["reason"].as_str()),
        (Some(false), Some("no_opt_in"))
    );
}

#[test]
fn tenant_keyword_additions_and_removals_apply() {
    let env = Env::with_config(
        "[tenants.quiz]\nlanguages = [\"en\", \"it\"]\n[tenants.quiz.keywords.en]\nopt_out_remove = [\"END\"]\n\
         [tenants.quiz.keywords.it]\nopt_out_add = [\"Basta così\"]\n",
    );
    let s = env.ingest(
        &[
            inbound("quiz", "1", "+33612345671", "2026-01-01T10:00:00Z", "END"),
            inbound(
                "quiz",
                "2",
                "+33612345672",
                "2026-01-01T10:00:00Z",
                "basta cosi",
            ),
            inbound("other", "3", "+33612345673", "2026-01-01T10:00:00Z", "END"),
        ]
        .join("\n"),
    );
    assert_eq!(s["opted_out"], 2);
    assert_eq!(
        env.status("quiz", "+33612345671", "marketing")["status"],
        "unknown"
    );
    assert_eq!(
        env.status("quiz", "+33612345672", "marketing")["status"],
        "opted_out"
    );
    assert_eq!(
        env.status("other", "+33612345673", "marketing")["status"],
        "opted_out"
    );
}

#[test]
fn bad_input_goes_to_the_dead_letter_file_and_the_rest_goes_on() {
    let env = Env::new();
    let long = "x".repeat(5000);
    let lines = [
        "{oops".to_string(),
        "null".to_string(),
        "[1,2,3]".to_string(),
        r#"{"hello":"world"}"#.to_string(),
        r#"{"type":"inbound","tenant":"shop","channel":"sms"}"#.to_string(),
        inbound(
            "shop",
            "bad-phone",
            "call me maybe",
            "2026-01-01T10:00:00Z",
            "STOP",
        ),
        inbound(
            "shop",
            "long",
            "+33612345678",
            "2026-01-01T10:00:00Z",
            &long,
        ),
        inbound("shop", "bad-time", "+33612345678", "yesterday", "STOP"),
        inbound(
            "../etc",
            "bad-tenant",
            "+33612345678",
            "2026-01-01T10:00:00Z",
            "STOP",
        ),
        wa_text("33612345678", "wamid.ms", 1_763_978_400_000, "STOP"),
        inbound(
            "shop",
            "good",
            "+33612345678",
            "2026-01-01T10:00:00Z",
            "STOP",
        ),
    ];
    let mut input = lines.join("\n");
    input.push('\n');
    let mut bytes = input.into_bytes();
    bytes.extend_from_slice(b"\xff\xfe\x00binary garbage\n");
    let input = unsafe { String::from_utf8_unchecked(bytes) };
    let dead = env.dir.path().join("rejects.jsonl");
    let out = env.ok_with_input(
        &[
            "ingest",
            "--json",
            "--dead-letter",
            dead.to_str().unwrap(),
            "-",
        ],
        &input,
    );
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (
            summary["read"].as_u64(),
            summary["rejected"].as_u64(),
            summary["events"].as_u64(),
            summary["clock_corrected"].as_u64()
        ),
        (Some(12), Some(9), Some(3), Some(2)),
        "a STOP is never lost for its time: \"yesterday\" and milliseconds are corrected"
    );
    let records = read_jsonl(&dead);
    let codes: Vec<&str> = records
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "invalid_json",
            "not_an_object",
            "not_an_object",
            "unknown_shape",
            "invalid_field",
            "invalid_contact",
            "text_too_long",
            "unknown_tenant",
            "invalid_json"
        ]
    );
    assert_eq!(records[0]["original"], "{oops");
    assert_eq!(records[0]["source"]["line"], 1);
    assert!(records[8]["original_hex"]
        .as_str()
        .unwrap()
        .starts_with("fffe00"));
    assert!(records
        .iter()
        .all(|r| !r["reason"].as_str().unwrap().is_empty()));
    assert_eq!(
        env.status("shop", "+33612345678", "marketing")["status"],
        "opted_out"
    );
}

#[test]
fn outputs_validate_against_the_published_schemas() {
    let env = example_env();
    env.ingest(&examples());
    for (file, schema) in [
        ("consent-events.jsonl", "consent-event.v1.json"),
        ("outbox.jsonl", "outbound-message.v1.json"),
        ("dead-letter.jsonl", "dead-letter.v1.json"),
    ] {
        let schema: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(repo_file(&format!("schemas/{schema}"))).unwrap(),
        )
        .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let records = env.lines_of(file);
        assert!(!records.is_empty(), "{file} is empty");
        for r in &records {
            let errors: Vec<String> = validator.iter_errors(r).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{file} record does not match {schema}: {errors:?}\n{r}"
            );
        }
    }
    let status_schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("schemas/consent-status.v1.json")).unwrap(),
    )
    .unwrap();
    let s = env.status("acme", "+33612345678", "marketing");
    assert!(jsonschema::validator_for(&status_schema)
        .unwrap()
        .is_valid(&s));
}

#[test]
fn export_gives_every_event_with_proof_fields() {
    let env = example_env();
    env.ingest(&examples());
    let jsonl = env.ok(&["export", "--format", "jsonl"]);
    let events: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 10);
    for e in &events {
        for field in [
            "event_id",
            "hash",
            "prev_hash",
            "occurred_at",
            "recorded_at",
            "source",
        ] {
            assert!(!e[field].is_null(), "{field} missing in {e}");
        }
    }
    let csv = env.ok(&["export", "--tenant", "acme", "--format", "csv"]);
    let mut rows = csv.lines();
    assert!(rows
        .next()
        .unwrap()
        .starts_with("event_id,partition,seq,tenant,contact"));
    assert_eq!(rows.count(), 10);
    assert_eq!(
        env.ok(&["export", "--tenant", "nobody", "--format", "csv"])
            .lines()
            .count(),
        1
    );
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    let env = Env::new();
    let cases: &[&[&str]] = &[
        &["status", "--tenant", "shop", "--contact", "not a number"],
        &[
            "status",
            "--tenant",
            "shop",
            "--contact",
            "+33612345678",
            "--purpose",
            "spam",
        ],
        &["status", "--contact", "+33612345678"],
        &["ingest", "/does/not/exist.jsonl"],
        &["frobnicate"],
    ];
    for args in cases {
        let out = env.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty());
    }
    let bad_config = Env::with_config("[tenants.acme]\nregion = \"Narnia\"\n");
    let out = bad_config.run(&["status", "--tenant", "acme", "--contact", "+33612345678"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Narnia"));
}

#[test]
fn verify_passes_and_rebuild_changes_nothing_after_a_large_mixed_file() {
    let env = Env::new();
    let (traffic, expected) = mixed_traffic(8_000, 500, 42);
    let summary = env.ingest(&traffic);
    assert_eq!(summary["read"].as_u64(), Some(expected.lines));
    let out = env.ok(&["verify"]);
    assert!(out.starts_with("ok: "), "{out}");
    let rebuilt = env.ok(&["rebuild"]);
    assert!(rebuilt.ends_with("(0 rows changed)\n"), "{rebuilt}");
    assert!(env.ok(&["verify"]).starts_with("ok: "));
    let report: serde_json::Value = serde_json::from_str(&env.ok(&["verify", "--json"])).unwrap();
    assert_eq!(report["events"], summary["events"]);
}

#[test]
fn whatsapp_sender_of_a_german_tenant_stays_french() {
    // Regression: WhatsApp's `from` is international without '+'; it was read as a national
    // number of the tenant's region first, so +33 6… became +49 336… for a German tenant.
    let env = Env::with_config(&format!(
        "[tenants.laden]\nregion = \"DE\"\nlanguages = [\"de\", \"fr\"]\nphone_number_ids = [\"{PHONE_NUMBER_ID}\"]\n"
    ));
    env.ingest(&wa_text("33612345678", "wamid.de.1", 1_763_978_400, "STOP"));
    assert_eq!(
        env.status("laden", "+33612345678", "marketing")["status"],
        "opted_out"
    );
    assert_eq!(
        env.status("laden", "+4933612345678", "marketing")["status"],
        "unknown"
    );
}
