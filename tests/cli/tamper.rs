//! `verify` must catch every kind of tampering with the stored log: an edited event, a deleted
//! one (in the middle or at the end), two swapped, and a consent view that disagrees with the
//! log. The damage is done through the ledger module (the only code that touches the store), the
//! detection through the CLI, as an auditor would run it.

use crate::common::*;
use consent_ledger::config::RgpdConfig;
use consent_ledger::domain::contact::Contact;
use consent_ledger::domain::event::Purpose;
use consent_ledger::domain::tenant::TenantId;
use consent_ledger::ledger::{forensics, Ledger};

fn ledger_with_events() -> Env {
    let env = Env::new();
    let lines: Vec<String> = (0..20)
        .map(|i| {
            let text = if i % 3 == 0 { "START" } else { "STOP" };
            wa_text(
                &format!("3361234{:04}", i % 7),
                &format!("wamid.t{i}"),
                1_763_978_400 + i,
                text,
            )
        })
        .collect();
    let summary = env.ingest(&lines.join("\n"));
    assert_eq!(summary["events"], 20);
    assert!(env.ok(&["verify"]).starts_with("ok: 20 events"));
    env
}

fn tamper(env: &Env, damage: impl FnOnce(&Ledger)) {
    let ledger = Ledger::open(&env.data().join("ledger"), master_key(&env.data())).unwrap();
    damage(&ledger);
}

fn verify_fails(env: &Env, expected: &str) {
    let out = env.run(&["verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "verify must fail: {stdout}");
    assert!(
        stdout.contains(expected),
        "expected {expected:?} in:\n{stdout}"
    );
    assert!(
        !stdout.contains("+33612340001"),
        "verify output masks numbers"
    );
}

#[test]
fn an_edited_event_is_detected() {
    let env = ledger_with_events();
    tamper(&env, |l| {
        let raw = String::from_utf8(l.raw_event(0, 5).unwrap().unwrap()).unwrap();
        let edited = raw.replace("\"OptedOut\"", "\"OptedIn\"");
        assert_ne!(raw, edited);
        forensics::overwrite_event(l, 0, 5, edited.as_bytes()).unwrap();
    });
    verify_fails(&env, "partition 0 seq 5: hash mismatch");
}

#[test]
fn an_edit_that_recomputes_the_hash_still_breaks_the_chain() {
    let env = ledger_with_events();
    tamper(&env, |l| {
        let mut e: consent_ledger::domain::event::ConsentEvent =
            serde_json::from_slice(&l.raw_event(0, 5).unwrap().unwrap()).unwrap();
        e.occurred_at -= chrono::Duration::days(30);
        let prev = e.prev_hash.clone();
        e.seal(&prev);
        forensics::overwrite_event(l, 0, 5, &e.stored_bytes()).unwrap();
    });
    verify_fails(&env, "partition 0 seq 6: prev_hash does not match");
}

#[test]
fn a_deleted_event_is_detected() {
    let env = ledger_with_events();
    tamper(&env, |l| forensics::delete_event(l, 0, 7).unwrap());
    verify_fails(&env, "partition 0 seq 8: expected seq 7");
}

#[test]
fn deleting_the_last_event_is_detected() {
    let env = ledger_with_events();
    tamper(&env, |l| forensics::delete_event(l, 0, 20).unwrap());
    verify_fails(&env, "chain head says seq 20 but the log ends at seq 19");
}

#[test]
fn reordered_events_are_detected() {
    let env = ledger_with_events();
    tamper(&env, |l| forensics::swap_events(l, 0, 3, 4).unwrap());
    verify_fails(&env, "stored under the wrong position");
}

/// `rebuild` changes exactly the one damaged row, after which `verify` passes and the
/// contact's status is what it was before the damage.
fn assert_rebuild_mends_one_row(env: &Env, contact: &str, before: &serde_json::Value) {
    let rebuilt = env.ok(&["rebuild"]);
    assert!(rebuilt.contains("(1 rows changed)"), "{rebuilt}");
    assert!(env.ok(&["verify"]).starts_with("ok: "));
    assert_eq!(&env.status(PHONE_NUMBER_ID, contact, "marketing"), before);
}

#[test]
fn a_consent_view_that_disagrees_with_the_log_is_detected_and_rebuilt() {
    let env = ledger_with_events();
    let contact = "+33612340001";
    let before = env.status(PHONE_NUMBER_ID, contact, "marketing");
    tamper(&env, |l| {
        let fake =
            br#"{"status":"opted_in","since":null,"event_id":null,"latest":null,"events":1}"#;
        let tenant = TenantId::new(PHONE_NUMBER_ID).unwrap();
        let c = Contact::from_stored(contact.into());
        forensics::overwrite_consent(l, &tenant, &c, Purpose::Marketing, fake).unwrap();
    });
    assert_ne!(env.status(PHONE_NUMBER_ID, contact, "marketing"), before);
    verify_fails(&env, "view says opted_in but the log says");
    assert_rebuild_mends_one_row(&env, contact, &before);
}

/// rebuild writes only the rows that differ from the fold: a lost row comes back, and the
/// rest is left as it was (regression: rebuild rewrote every row in one batch, 5.1 GB for a
/// million contacts).
#[test]
fn rebuild_restores_a_lost_consent_row_and_changes_nothing_else() {
    let env = ledger_with_events();
    let contact = "+33612340002";
    let before = env.status(PHONE_NUMBER_ID, contact, "marketing");
    tamper(&env, |l| {
        let tenant = TenantId::new(PHONE_NUMBER_ID).unwrap();
        let c = Contact::from_stored(contact.into());
        forensics::delete_consent(l, &tenant, &c, Purpose::Marketing).unwrap();
    });
    verify_fails(&env, "missing from the view");
    assert_rebuild_mends_one_row(&env, contact, &before);
    let again = env.ok(&["rebuild"]);
    assert!(again.contains("(0 rows changed)"), "{again}");
}

/// verify compares by_contact with the log in one pass: a row filed under the wrong
/// identifier is both missing for its event and a row no event backs.
#[test]
fn a_by_contact_row_filed_under_another_identifier_is_detected_both_ways() {
    let env = ledger_with_events();
    tamper(&env, |l| {
        let tenant = TenantId::new(PHONE_NUMBER_ID).unwrap();
        let (owner, other) = (
            Contact::from_stored("+33612340001".into()),
            Contact::from_stored("+33612340009".into()),
        );
        forensics::misfile_by_contact(l, &tenant, &owner, &other, 0, 2).unwrap();
    });
    verify_fails(&env, "partition 0 seq 2: missing from the by_contact index");
    verify_fails(&env, ": not backed by any event");
}

/// verify and rebuild compare each derived tree with the fold in one sorted pass, so the
/// fold's rows must sort as the tree's keys do. Tenants whose names start with one another,
/// with events interleaved, are where a sort by tenant number instead of name would show.
#[test]
fn tenants_whose_names_prefix_each_other_verify_and_rebuild_cleanly() {
    let env = Env::new();
    let tenants = ["acme", "ac", "acme-2", "b", "acme"];
    let lines: Vec<String> = (0..40)
        .map(|i| {
            let text = ["STOP", "START", "STOP ALL"][i % 3];
            inbound(
                tenants[i % tenants.len()],
                &format!("m{i}"),
                &format!("+336123400{:02}", i % 9),
                &format!("2026-01-01T10:{i:02}:00Z"),
                text,
            )
        })
        .collect();
    let summary = env.ingest(&lines.join("\n"));
    assert_eq!(summary["events"], 40, "{summary}");
    let verified = env.ok(&["verify"]);
    assert!(verified.starts_with("ok: 40 events"), "{verified}");
    let rebuilt = env.ok(&["rebuild"]);
    assert!(rebuilt.contains("(0 rows changed)"), "{rebuilt}");
}

/// The master key the CLI uses on the same data dir (the embedded default's file).
fn master_key(data_dir: &std::path::Path) -> consent_ledger::rgpd::MasterKey {
    RgpdConfig::default().master_key(data_dir).unwrap().0
}
