//! Every webhook example of a public WhatsApp SDK's tests (tests/fixtures/webhooks/, with
//! their source) goes through `ingest`: none may be dead-lettered. A shape that can carry
//! consent is processed, any other is ignored (DESIGN.md invariant 8).

use std::collections::BTreeMap;

use crate::common::*;

/// `(file:example, webhook)` of every example, in file and name order.
fn examples() -> Vec<(String, String)> {
    let dir = repo_file("tests/fixtures/webhooks/pywa");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let named: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for (name, webhook) in named {
            if webhook["object"] == "whatsapp_business_account" {
                out.push((format!("{file}:{name}"), webhook.to_string()));
            }
        }
    }
    out
}

#[test]
fn no_webhook_of_a_public_sdks_fixtures_is_dead_lettered() {
    let examples = examples();
    assert!(examples.len() >= 70, "fixtures found: {}", examples.len());
    let env = Env::new();
    let lines: Vec<&str> = examples.iter().map(|(_, w)| w.as_str()).collect();
    let summary = env.ingest(&(lines.join("\n") + "\n"));
    let dead = env.lines_of("dead-letter.jsonl");
    let named: Vec<String> = dead
        .iter()
        .map(|d| {
            let line = d["source"]["line"].as_u64().unwrap() as usize;
            format!("{} ({}: {})", examples[line - 1].0, d["code"], d["reason"])
        })
        .collect();
    assert!(named.is_empty(), "dead-lettered: {named:#?}");
    assert_eq!(summary["rejected"], 0);
    assert_eq!(summary["read"], examples.len() as u64);
}

#[test]
fn a_user_preferences_resume_in_the_fixtures_opts_in_and_an_unknown_value_is_ignored() {
    let text = std::fs::read_to_string(repo_file(
        "tests/fixtures/webhooks/pywa/user_marketing_preferences.json",
    ))
    .unwrap();
    let named: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let env = Env::new();
    let resume = env.ingest(&format!("{}\n", named["resume"]));
    assert_eq!(
        (resume["opted_in"].as_u64(), resume["events"].as_u64()),
        (Some(1), Some(1))
    );
    let signup = env.ingest(&format!("{}\n", named["signup"]));
    assert_eq!(
        (
            signup["rejected"].as_u64(),
            signup["ignored"].as_u64(),
            signup["events"].as_u64()
        ),
        (Some(0), Some(1), Some(0))
    );
}
