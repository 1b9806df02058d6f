//! Every webhook example of Meta's webhook reference and of public WhatsApp SDKs' tests
//! (tests/fixtures/webhooks/, each folder with its SOURCE.md) goes through `ingest`: none may
//! be dead-lettered. A shape that can carry consent is processed, any other is ignored
//! (DESIGN.md invariant 8); the examples that carry consent produce their event.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::*;

/// The folders of tests/fixtures/webhooks/, one per source.
const SOURCES: [&str; 4] = ["meta", "netflie", "pywa", "whatsapp-api-js"];

/// `(source/file:example, webhook)` of every example of one source, in file and name order.
fn examples(source: &str) -> Vec<(String, String)> {
    let dir = repo_file(&format!("tests/fixtures/webhooks/{source}"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let named: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for (name, webhook) in named {
            if webhook["object"] == "whatsapp_business_account" {
                out.push((format!("{source}/{file}:{name}"), webhook.to_string()));
            }
        }
    }
    out
}

/// One example, by file and name, as a line for `ingest`.
fn example(source: &str, file: &str, name: &str) -> String {
    let path = repo_file(&format!("tests/fixtures/webhooks/{source}/{file}"));
    let named: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    format!("{}\n", named[name])
}

#[test]
fn no_webhook_of_metas_reference_or_a_public_sdks_fixtures_is_dead_lettered() {
    let mut all = Vec::new();
    for (source, at_least) in SOURCES.into_iter().zip([25, 30, 70, 40]) {
        let examples = examples(source);
        assert!(examples.len() >= at_least, "{source}: {}", examples.len());
        all.extend(examples);
    }
    let env = Env::new();
    let lines: Vec<&str> = all.iter().map(|(_, w)| w.as_str()).collect();
    let summary = env.ingest(&(lines.join("\n") + "\n"));
    let dead = env.lines_of("dead-letter.jsonl");
    let named: Vec<String> = dead
        .iter()
        .map(|d| {
            let line = d["source"]["line"].as_u64().unwrap() as usize;
            format!("{} ({}: {})", all[line - 1].0, d["code"], d["reason"])
        })
        .collect();
    assert!(named.is_empty(), "dead-lettered: {named:#?}");
    assert_eq!(summary["rejected"], 0);
    assert_eq!(summary["read"], all.len() as u64);
}

#[test]
fn a_user_preferences_resume_in_the_fixtures_opts_in_and_an_unknown_value_is_ignored() {
    let env = Env::new();
    let resume = env.ingest(&example(
        "pywa",
        "user_marketing_preferences.json",
        "resume",
    ));
    assert_eq!(
        (resume["opted_in"].as_u64(), resume["events"].as_u64()),
        (Some(1), Some(1))
    );
    let signup = env.ingest(&example(
        "pywa",
        "user_marketing_preferences.json",
        "signup",
    ));
    assert_eq!(
        (
            signup["rejected"].as_u64(),
            signup["ignored"].as_u64(),
            signup["events"].as_u64()
        ),
        (Some(0), Some(1), Some(0))
    );
}

/// Meta's reference examples all come from +1 650 555 1234 to business number
/// 106540352242922, which is also the tenant a webhook maps to without a config.
const META_USER: &str = "+16505551234";

/// The one event an example produced, and the sender's marketing status after it.
fn only_event(env: &Env, line: &str) -> (Value, Value) {
    let summary = env.ingest(line);
    assert_eq!(summary["events"], 1, "{summary}");
    let events = env.lines_of("consent-events.jsonl");
    let event = events.last().unwrap().clone();
    (event, env.status(PHONE_NUMBER_ID, META_USER, "marketing"))
}

#[test]
fn metas_quick_reply_example_unsubscribe_opts_out() {
    let env = Env::new();
    let (event, status) = only_event(&env, &example("meta", "button.json", "example"));
    assert_eq!(
        (&event["type"], &event["source"]["kind"]),
        (&Value::from("OptedOut"), &Value::from("quick_reply"))
    );
    assert_eq!(status["status"], "opted_out");
}

#[test]
fn metas_text_example_with_stop_opts_out() {
    let env = Env::new();
    let (event, status) = only_event(&env, &example("meta", "derived.json", "text_stop"));
    assert_eq!(
        (&event["type"], &event["source"]["kind"]),
        (&Value::from("OptedOut"), &Value::from("keyword"))
    );
    assert_eq!(status["status"], "opted_out");
}

#[test]
fn metas_user_preferences_stop_opts_out_and_its_resume_example_opts_back_in() {
    let env = Env::new();
    let (stop, status) = only_event(
        &env,
        &example("meta", "user_preferences.json", "syntax_stop"),
    );
    assert_eq!(
        (&stop["type"], &stop["source"]["kind"]),
        (
            &Value::from("OptedOut"),
            &Value::from("whatsapp_user_preferences")
        )
    );
    assert_eq!(status["status"], "opted_out");
    let env = Env::new();
    let (resume, status) = only_event(
        &env,
        &example("meta", "user_preferences.json", "example_resume"),
    );
    assert_eq!(resume["type"], "OptedIn");
    assert_eq!(status["status"], "opted_in");
}

/// Statuses that name their recipient only by business-scoped user ID (either parent
/// spelling), or carry errors and no `contacts`, are valid input: the billed ones count as
/// deliveries of the campaign message they report on, the others are ignored.
#[test]
fn statuses_known_only_by_user_id_are_accepted_and_a_billed_one_counts_as_a_delivery() {
    let derived = [
        ("status_delivered_recipient_user_id_only", true),
        ("status_delivered_recipient_parent_user_id", true),
        ("status_delivered_parent_recipient_user_id", true),
        ("status_read_user_ids_without_pricing", false),
        ("status_failed_recipient_user_id_only", false),
    ];
    for (name, billed) in derived {
        let env = Env::new();
        // The message every status example reports on, sent by a campaign before it.
        let message_id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=";
        let sent_at = 1_750_030_000;
        let sent = campaigns::sent(
            PHONE_NUMBER_ID,
            message_id,
            META_USER,
            "summer",
            "marketing",
            sent_at,
        );
        env.ingest(&(sent + "\n"));
        let summary = env.ingest(&example("meta", "derived.json", name));
        assert_eq!(
            (
                summary["rejected"].as_u64(),
                summary["statuses"].as_u64(),
                summary["ignored"].as_u64()
            ),
            (Some(0), Some(billed as u64), Some(!billed as u64)),
            "{name}: {summary}"
        );
        let out = env.ok(&["stats", "--tenant", PHONE_NUMBER_ID, "--json"]);
        let stats: Value = serde_json::from_str(&out).unwrap();
        let delivered = stats["campaigns"][0]["delivered"].as_u64().unwrap_or(0);
        assert_eq!(delivered, billed as u64, "{name}: {stats}");
    }
}
