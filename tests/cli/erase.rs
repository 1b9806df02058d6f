//! Erasure (RGPD Art. 17) as a business runs it: `erase` covers the person, the chain still
//! verifies, every identifier of the person stays out of marketing, the feeds carry the
//! `Erased` record, and only an opt-in from an identifier itself brings it back.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const T: &str = PHONE_NUMBER_ID;
const NUMBER: &str = "33612000001";
const E164: &str = "+33612000001";
const USER_ID: &str = "FR.13491208655302741918";

/// A message id built the way WhatsApp builds them: `wamid.` and base64 of a Thrift-like
/// record that holds the sender's number (decode one in tests/fixtures/webhooks/meta: bytes
/// `1c 18 0b`, the 11 digits, `15 02 00 12 18 14`, a 20-character id, `00`).
fn wamid(number: &str, id: &str) -> String {
    use base64::Engine;
    assert_eq!(id.len(), 20);
    let bytes = [
        &[0x1c, 0x18, number.len() as u8][..],
        number.as_bytes(),
        &[0x15, 0x02, 0x00, 0x12, 0x18, 0x14],
        id.as_bytes(),
        &[0x00],
    ]
    .concat();
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The number a WhatsApp message id carries, decoded the way anyone holding it could.
fn number_in(wamid: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(wamid.strip_prefix("wamid.").unwrap())
        .unwrap();
    String::from_utf8(bytes[3..3 + bytes[2] as usize].to_vec()).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A person known by a number and a user ID, opted in to marketing.
fn opted_in_person() -> Env {
    let env = Env::new();
    let t = now() - 600;
    let s = env.ingest(
        &(wa_user_text(
            Some(NUMBER),
            Some(USER_ID),
            &wamid(NUMBER, "3EB0C1A2B3C4D5E6F701"),
            t,
            "START",
        ) + "\n"),
    );
    assert_eq!(s["links"], 1, "{s}");
    assert_eq!(env.status(T, USER_ID, "marketing")["may_send"], true);
    env
}

fn erase(env: &Env, contact: &str, reason: &str) -> Value {
    let out = env.ok(&[
        "erase",
        "--tenant",
        T,
        "--contact",
        contact,
        "--reason",
        reason,
    ]);
    serde_json::from_str(out.trim()).unwrap()
}

/// The contacts `check` lets through, of `list`.
fn allowed(env: &Env, list: &[&str]) -> Vec<String> {
    env.ok_with_input(&["check", "--tenant", T], &list.join("\n"))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn erase_covers_the_person_keeps_the_chain_valid_and_check_excludes_every_identifier() {
    let env = opted_in_person();
    let erased = erase(&env, E164, "Art. 17 request, ticket 4711");
    assert_eq!(erased["type"], "Erased");
    assert_eq!(erased["contact"], E164);
    assert_eq!(erased["linked"], serde_json::json!([USER_ID]));
    assert_eq!(erased["erasure"]["reason"], "Art. 17 request, ticket 4711");
    assert!(erased["erasure"]["requested_by"]
        .as_str()
        .unwrap()
        .starts_with("cli:"));
    assert!(env.ok(&["verify"]).starts_with("ok: 3 events"));
    assert!(allowed(&env, &[E164, USER_ID, "+33612000002"]) == vec!["+33612000002"]);
    for id in [E164, USER_ID] {
        let s = env.status(T, id, "marketing");
        assert_eq!(s["may_send"], false, "{id}: {s}");
        assert_eq!(
            s["event_id"], erased["event_id"],
            "the erasure is the proof"
        );
    }
    // The subscriber feed carries the Erased event, the reply feed one record per identifier
    // that says to send nothing.
    let feed = env.lines_of("consent-events.jsonl");
    assert_eq!(feed.last().unwrap()["type"], "Erased");
    let outbox: Vec<Value> = env
        .lines_of("outbox.jsonl")
        .into_iter()
        .filter(|m| m["kind"] == "erased")
        .collect();
    let mut to: Vec<&str> = outbox.iter().map(|m| m["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(to, vec![E164, USER_ID]);
    assert!(outbox.iter().all(|m| m["text"] == ""));
    // The access export shows the erasure and still verifies offline.
    let proof = env.dir.path().join("proof.json");
    env.ok(&[
        "export",
        "--tenant",
        T,
        "--contact",
        USER_ID,
        "--proof",
        proof.to_str().unwrap(),
    ]);
    env.ok(&["verify-export", proof.to_str().unwrap()]);
    let text = std::fs::read_to_string(&proof).unwrap();
    assert!(text.contains("\"Erased\""));
}

#[test]
fn erasing_again_answers_the_same_event_and_an_unknown_contact_fails() {
    let env = opted_in_person();
    let first = erase(&env, USER_ID, "ticket 1");
    let out = env.run(&[
        "erase",
        "--tenant",
        T,
        "--contact",
        E164,
        "--reason",
        "ticket 2",
    ]);
    assert!(out.status.success());
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["event_id"], first["event_id"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already erased"));
    assert_eq!(env.exported_event_ids().len(), 3, "no second Erased event");

    let out = env.run(&[
        "erase",
        "--tenant",
        T,
        "--contact",
        "+33612999999",
        "--reason",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds nothing"), "{stderr}");
    assert!(
        !stderr.contains("612999999"),
        "numbers are masked: {stderr}"
    );

    let out = env.run(&["erase", "--tenant", T, "--contact", E164, "--reason", " "]);
    assert_eq!(out.status.code(), Some(2), "a reason is required");
}

#[test]
fn only_an_opt_in_from_the_identifier_itself_lifts_its_suppression() {
    let env = opted_in_person();
    erase(&env, E164, "ticket 1");
    // A STOP under the user ID starts a new history and changes nothing for marketing.
    let t = now();
    env.ingest(&(wa_user_text(None, Some(USER_ID), "wamid.E2", t, "STOP") + "\n"));
    assert_eq!(env.status(T, USER_ID, "marketing")["may_send"], false);
    // A START from the number lifts the number's suppression only.
    env.ingest(&(wa_text(NUMBER, "wamid.E3", t + 1, "START") + "\n"));
    assert_eq!(env.status(T, E164, "marketing")["status"], "opted_in");
    assert_eq!(env.status(T, E164, "marketing")["may_send"], true);
    assert_eq!(env.status(T, USER_ID, "marketing")["may_send"], false);
    assert_eq!(allowed(&env, &[E164, USER_ID]), vec![E164]);
    assert!(env.ok(&["verify"]).starts_with("ok: "));
    // Erasing the number again is a new erasure: it has a new history.
    let second = erase(&env, E164, "ticket 2");
    assert_eq!(
        env.status(T, E164, "marketing")["event_id"],
        second["event_id"]
    );
}

/// A kill -9 at any point of `erase` leaves all of it or none, and running it again
/// completes it.
#[test]
fn kill_9_during_erase_leaves_all_or_nothing_and_erase_again_completes_it() {
    let env = opted_in_person();
    let mut rng = Rng(0x5eed);
    for _ in 0..8 {
        let mut child = env
            .command(&[
                "erase",
                "--tenant",
                T,
                "--contact",
                E164,
                "--reason",
                "ticket",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(40)));
        let _ = child.kill();
        child.wait().unwrap();
        assert!(env.ok(&["verify"]).starts_with("ok: "));
        let erasures = erased_events(&env);
        let suppressed =
            [E164, USER_ID].map(|id| env.status(T, id, "marketing")["may_send"] == false);
        assert!(erasures <= 1);
        assert_eq!(suppressed, [erasures == 1; 2], "all of the erasure or none");
    }
    erase(&env, E164, "ticket");
    assert_eq!(erased_events(&env), 1);
}

fn erased_events(env: &Env) -> usize {
    env.ok(&["export"])
        .lines()
        .filter(|l| l.contains("\"type\":\"Erased\""))
        .count()
}

#[test]
fn after_erase_history_shows_erased_fields_and_no_file_of_the_data_dir_holds_the_person() {
    let env = opted_in_person();
    let t = now() - 300;
    let ids = [
        wamid(NUMBER, "3EB0C1A2B3C4D5E6F701"),
        wamid(NUMBER, "3EB0C1A2B3C4D5E6F709"),
    ];
    env.ingest(&(wa_user_text(Some(NUMBER), Some(USER_ID), &ids[1], t, "Stop please") + "\n"));
    let history = env.ok(&["history", "--tenant", T, "--contact", E164, "--json"]);
    assert!(
        ids.iter().all(|id| history.contains(id.as_str())),
        "{history}"
    );
    erase(&env, USER_ID, "ticket 9");
    let mut needles: Vec<String> = [NUMBER, "13491208655302741918", "Stop please"]
        .map(String::from)
        .into();
    for id in &ids {
        assert_eq!(number_in(id), NUMBER);
        needles.push(id.trim_start_matches("wamid.").to_string());
        needles.push(number_in(id));
    }
    for needle in &needles {
        let found = files_containing(&env.data(), needle);
        assert!(found.is_empty(), "{needle} in clear in {found:?}");
    }
    assert!(env.ok(&["verify"]).starts_with("ok: "));
    let history: Value =
        serde_json::from_str(&env.ok(&["history", "--tenant", T, "--contact", E164, "--json"]))
            .unwrap();
    let events = history.as_array().unwrap();
    assert_eq!(events.len(), 4, "{history}");
    for e in events {
        assert_eq!(e["contact"], "[erased]", "{e}");
        if e["type"] != "Erased" {
            assert_eq!(e["source"]["message_id"], "[erased]", "{e}");
        }
        if e["source"]["text"].is_string() {
            assert_eq!(e["source"]["text"], "[erased]", "{e}");
        }
    }
    assert_eq!(allowed(&env, &[E164, USER_ID]), Vec::<String>::new());
}
