//! Consent follows the person (DESIGN.md invariant 6), driven as Meta drives it: webhooks that
//! carry a business-scoped user ID (BSUID) with or without the number, number and BSUID change
//! notices, and numbers shared on request. A STOP under any identifier stops marketing to all
//! of them; an old number stays suppressed after a change.

use serde_json::{json, Value};

use crate::common::*;

const T: &str = PHONE_NUMBER_ID;
const NUMBER: &str = "33612000001";
const E164: &str = "+33612000001";
const USER_ID: &str = "FR.13491208655302741918";
const PARENT: &str = "FR.ENT.11815799212886844830";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn status(env: &Env, contact: &str) -> Value {
    env.status(T, contact, "marketing")
}

fn linked(s: &Value) -> Vec<String> {
    s["linked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The regression of issue 9: a user with a username sends no number, and their STOP was
/// dead-lettered as "missing field from" while marketing to their number went on.
#[test]
fn a_stop_from_a_user_known_only_by_user_id_stops_marketing_to_their_number() {
    let env = Env::new();
    let t = now() - 600;
    let first =
        env.ingest(&(wa_user_text(Some(NUMBER), Some(USER_ID), "wamid.I1", t, "Bonjour") + "\n"));
    assert_eq!(first["links"], 1, "{first}");
    assert_eq!(first["events"], 1);
    let stop = env.ingest(&(wa_user_text(None, Some(USER_ID), "wamid.I2", t + 60, "STOP") + "\n"));
    assert_eq!(stop["opted_out"], 1, "{stop}");
    assert_eq!(stop["rejected"], 0);
    for (asked, other) in [(E164, USER_ID), (USER_ID, E164)] {
        let s = status(&env, asked);
        assert_eq!(s["status"], "opted_out", "{asked}: {s}");
        assert_eq!(s["may_send"], false);
        assert_eq!(s["contact"], asked);
        assert_eq!(linked(&s), vec![other.to_string()]);
    }
    // Later messages with both identifiers write no second link.
    let again = env.ingest(
        &(wa_user_text(Some(NUMBER), Some(USER_ID), "wamid.I3", t + 120, "ok merci") + "\n"),
    );
    assert_eq!(again["links"], 0, "{again}");
    assert_eq!(again["events"], 0);
    // `check` answers each line on its own, and both are out.
    let out = env.ok_with_input(
        &["check", "--tenant", T],
        &format!("{E164}\n{USER_ID}\n+33612000002\n"),
    );
    assert_eq!(out, "+33612000002\n");
    // The history of either identifier is the person's: the link and the STOP.
    let history: Vec<Value> =
        serde_json::from_str(&env.ok(&["history", "--tenant", T, "--contact", E164, "--json"]))
            .unwrap();
    let types: Vec<&str> = history
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["IdentityLinked", "OptedOut"]);
    assert_eq!(history[0]["contact"], E164);
    assert_eq!(history[0]["linked_contact"], USER_ID);
    assert_eq!(history[0]["link_source"], "message");
    assert_eq!(history[1]["contact"], USER_ID);
    assert_eq!(history[1]["linked"], json!([E164]));
    assert_eq!(env.lines_of("outbox.jsonl").len(), 1, "one confirmation");
    assert!(env.ok(&["verify"]).starts_with("ok: "));
}

#[test]
fn a_stop_made_before_the_link_was_known_reaches_the_number_when_it_is() {
    let env = Env::new();
    let t = now() - 600;
    env.ingest(&(wa_user_text(None, Some(USER_ID), "wamid.L1", t, "STOP") + "\n"));
    assert_eq!(status(&env, E164)["status"], "unknown");
    let linking =
        env.ingest(&(wa_user_text(Some(NUMBER), Some(USER_ID), "wamid.L2", t + 60, "STOP") + "\n"));
    assert_eq!(linking["links"], 1);
    assert_eq!(
        linking["replies"], 0,
        "the person was already out: no second confirmation"
    );
    assert_eq!(status(&env, E164)["status"], "opted_out");
}

#[test]
fn the_latest_decision_of_the_person_wins_across_identifiers_and_the_opt_out_wins_a_tie() {
    let env = Env::new();
    let t = now() - 600;
    env.ingest(
        &[
            wa_user_text(Some(NUMBER), Some(USER_ID), "wamid.T1", t, "hello"),
            wa_user_text(None, Some(USER_ID), "wamid.T2", t + 10, "STOP"),
            wa_user_text(Some(NUMBER), None, "wamid.T3", t + 20, "START"),
        ]
        .join("\n"),
    );
    assert_eq!(status(&env, USER_ID)["status"], "opted_in");
    // A STOP and a START at the same second, under two identifiers, in either order.
    for (first, second) in [("STOP", "START"), ("START", "STOP")] {
        let env = Env::new();
        let (a, b) = if first == "STOP" {
            (None, Some(NUMBER))
        } else {
            (Some(NUMBER), None)
        };
        env.ingest(
            &[
                wa_user_text(Some(NUMBER), Some(USER_ID), "wamid.X0", t, "hello"),
                wa_user_text(
                    a,
                    a.map_or(Some(USER_ID), |_| None),
                    "wamid.X1",
                    t + 30,
                    first,
                ),
                wa_user_text(
                    b,
                    b.map_or(Some(USER_ID), |_| None),
                    "wamid.X2",
                    t + 30,
                    second,
                ),
            ]
            .join("\n"),
        );
        for c in [E164, USER_ID] {
            assert_eq!(
                status(&env, c)["status"],
                "opted_out",
                "{first} then {second}, {c}"
            );
        }
    }
}

#[test]
fn after_a_number_change_the_old_identifiers_stay_suppressed_until_they_opt_in_themselves() {
    let env = Env::new();
    let t = now() - 3600;
    let (new_number, new_user) = ("33612000009", "FR.77771208655302741918");
    let s = env.ingest(
        &[
            wa_user_text(Some(NUMBER), Some(USER_ID), "wamid.N1", t, "hello"),
            wa_number_change("wamid.N2", t + 60, NUMBER, new_number, USER_ID, new_user),
        ]
        .join("\n"),
    );
    // The first message links number and user ID; the notice links the new number to the new
    // user ID (first, so that the change links after it are keyed by user ID on
    // consent.events whatever other partitions did), then old to new user ID and old to new
    // number.
    assert_eq!(s["links"], 4, "{s}");
    assert_eq!(s["rejected"], 0);
    let old = status(&env, E164);
    assert_eq!(old["may_send"], false, "{old}");
    assert!(old["retired_at"].is_string(), "{old}");
    assert_eq!(status(&env, USER_ID)["may_send"], false);
    let new = status(&env, "+33612000009");
    assert_eq!(new["may_send"], true, "{new}");
    assert!(new.get("retired_at").is_none());
    assert_eq!(linked(&new).len(), 3);
    // The customer says START on the new number: the old ones stay suppressed.
    env.ingest(
        &(wa_user_text(
            Some(new_number),
            Some(new_user),
            "wamid.N3",
            t + 120,
            "START",
        ) + "\n"),
    );
    assert_eq!(status(&env, "+33612000009")["status"], "opted_in");
    assert_eq!(status(&env, new_user)["status"], "opted_in");
    assert_eq!(status(&env, E164)["may_send"], false);
    // A STOP from the old number (perhaps its next owner) stops the person everywhere.
    env.ingest(&(wa_user_text(Some(NUMBER), None, "wamid.N4", t + 180, "STOP") + "\n"));
    assert_eq!(status(&env, "+33612000009")["status"], "opted_out");
    // Only an opt-in from the old number itself lifts its suppression, and it does not
    // restart marketing to the person's new number.
    env.ingest(&(wa_user_text(Some(NUMBER), None, "wamid.N5", t + 240, "START") + "\n"));
    assert_eq!(status(&env, E164)["status"], "opted_in");
    assert_eq!(status(&env, "+33612000009")["status"], "opted_out");
    assert!(env.ok(&["verify"]).starts_with("ok: "));
}

#[test]
fn a_user_id_change_alone_links_the_two_user_ids_and_retires_the_old_one() {
    let env = Env::new();
    let t = now() - 600;
    let new_user = "FR.55551208655302741918";
    let notice = wa_user_webhook(
        None,
        None,
        json!({"id": "wamid.U1", "timestamp": t.to_string(), "type": "system",
        "system": {"body": "changed", "type": "user_changed_user_id", "user_id": new_user, "previous_user_id": USER_ID}}),
    );
    env.ingest(
        &[
            wa_user_text(None, Some(USER_ID), "wamid.U0", t - 60, "STOP"),
            notice,
        ]
        .join("\n"),
    );
    assert_eq!(
        status(&env, new_user)["status"],
        "opted_out",
        "the STOP follows the person"
    );
    assert_eq!(status(&env, USER_ID)["linked"], json!([new_user]));
}

#[test]
fn a_number_shared_on_request_links_it_and_a_forwarded_card_does_not() {
    let env = Env::new();
    let t = now() - 600;
    let card = |id: &str, origin: &str, number: &str| {
        wa_user_webhook(
            None,
            Some(USER_ID),
            json!({"id": id, "timestamp": t.to_string(), "type": "contacts",
            "contacts": [{"name": {"formatted_name": "X", "first_name": "X"}, "origin": origin,
                          "phones": [{"phone": format!("+{number}"), "wa_id": number, "type": "CELL"}]}]}),
        )
    };
    let s = env.ingest(
        &[
            wa_user_text(None, Some(USER_ID), "wamid.C0", t - 60, "STOP"),
            card("wamid.C1", "other", "33612000005"),
            card("wamid.C2", "contact_request", NUMBER),
        ]
        .join("\n"),
    );
    assert_eq!(s["rejected"], 0, "{s}");
    assert_eq!(s["links"], 1, "{s}");
    assert_eq!(status(&env, E164)["status"], "opted_out");
    assert_eq!(
        status(&env, "+33612000005")["status"],
        "unknown",
        "somebody else's card"
    );
}

#[test]
fn a_parent_user_id_is_one_more_identifier_of_the_person() {
    let env = Env::new();
    let t = now() - 600;
    let mut message = json!({"id": "wamid.P1", "timestamp": t.to_string(), "type": "text",
                             "text": {"body": "STOP"}, "from_parent_user_id": PARENT});
    message["from_user_id"] = json!(USER_ID);
    let hook = wa_user_webhook(None, Some(USER_ID), message);
    env.ingest(&(hook + "\n"));
    assert_eq!(status(&env, PARENT)["status"], "opted_out");
}

#[test]
fn a_normalized_record_with_from_user_id_links_the_two() {
    let env = Env::new();
    let at = chrono::Utc::now().to_rfc3339();
    let mut line: Value =
        serde_json::from_str(&inbound("acme", "sms-1", "+33612000001", &at, "STOP")).unwrap();
    line["from_user_id"] = json!(USER_ID);
    let s = env.ingest(&format!("{line}\n"));
    assert_eq!(s["links"], 1);
    assert_eq!(
        env.status("acme", USER_ID, "marketing")["status"],
        "opted_out"
    );
}

#[test]
fn a_redelivered_linking_message_links_nothing_twice() {
    let env = Env::new();
    let t = now() - 600;
    let hook = wa_user_text(Some(NUMBER), Some(USER_ID), "wamid.R1", t, "hello");
    env.ingest(&(hook.clone() + "\n"));
    let again = env.ingest(&(hook + "\n"));
    assert_eq!(again["duplicates"], 1, "{again}");
    assert_eq!(again["events"], 0);
}

/// The flaky Kafka test `a_stop_by_user_id_links_and_a_number_change_reach_consent_events`
/// (CI of f264443): a STOP and a later number change arrived on two partitions, and when the
/// change was read first, the retired identifier's suppression made the STOP look like no
/// change, so the customer got no confirmation. The order they are read in is Kafka's, not
/// the customer's: the STOP is confirmed once, whichever comes first.
#[test]
fn a_stop_read_after_a_later_number_change_is_still_confirmed() {
    let t = now() - 3600;
    let (new_number, new_user) = ("33612000019", "FR.77771208655302741919");
    let stop = wa_user_text(None, Some(USER_ID), "wamid.R1", t, "STOP");
    let change = wa_number_change("wamid.R2", t + 120, NUMBER, new_number, USER_ID, new_user);
    for lines in [[&stop, &change], [&change, &stop]] {
        let env = Env::new();
        let s = env.ingest(&format!("{}\n{}\n", lines[0], lines[1]));
        assert_eq!(s["opted_out"], 1, "{s}");
        assert_eq!(s["replies"], 1, "{s}");
        let replies = env.lines_of("outbox.jsonl");
        assert_eq!(replies.len(), 1, "one confirmation: {replies:?}");
        assert_eq!(replies[0]["to"], USER_ID);
        assert_eq!(status(&env, USER_ID)["may_send"], false);
    }
}
