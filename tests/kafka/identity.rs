//! Identities end to end on the real broker (issue 9): a STOP from a user known only by their
//! business-scoped user ID, the link that one message with both identifiers records, and a
//! number change, published on consent.events with the link and consent events and keyed by
//! the person's BSUID.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::common::kafka::*;
use crate::common::*;

const NUMBER: &str = "33612990001";
const USER_ID: &str = "FR.24681208655302741918";
const NEW_NUMBER: &str = "33612990009";
const NEW_USER_ID: &str = "FR.13571208655302741918";

/// Keyed as a webhook receiver keys records: `tenant:BSUID` when the record has one.
fn keyed(user_id: &str, line: String) -> Record {
    (
        format!("{PHONE_NUMBER_ID}:{user_id}"),
        Some(line.into_bytes()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_by_user_id_links_and_a_number_change_reach_consent_events() {
    let bootstrap = bootstrap();
    let names = Names::new("identity");
    let env = Env::with_config(&names.config_toml(""));
    let t = chrono::Utc::now().timestamp() - 3600;
    let records = vec![
        // A user with a username: no number at all.
        keyed(
            USER_ID,
            wa_user_text(None, Some(USER_ID), "wamid.id.1", t, "STOP"),
        ),
        // Meta shares the number on a later message: the link.
        keyed(
            USER_ID,
            wa_user_text(Some(NUMBER), Some(USER_ID), "wamid.id.2", t + 60, "merci"),
        ),
        // The same pair again links nothing.
        keyed(
            USER_ID,
            wa_user_text(Some(NUMBER), Some(USER_ID), "wamid.id.3", t + 90, "ok"),
        ),
        keyed(
            NEW_USER_ID,
            wa_number_change(
                "wamid.id.4",
                t + 120,
                NUMBER,
                NEW_NUMBER,
                USER_ID,
                NEW_USER_ID,
            ),
        ),
    ];
    produce(&bootstrap, &names.inbound, &records).await;
    let svc = Service::start(&env, &bootstrap);
    // One STOP, the link of the first number, then the notice's link of the new pair and its
    // two change links.
    let got = consume_until(&bootstrap, &names.events, Duration::from_secs(120), |r| {
        distinct_events(r).len() >= 5
    });
    let read = distinct_events(&got).len();
    assert_eq!(
        read,
        5,
        "stages: {}; log:\n{}",
        svc.stages(read),
        svc.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    let log = svc.log.clone();
    assert_eq!(svc.stop(), Some(0));

    let events: Vec<(String, Value)> = got
        .iter()
        .map(|m| {
            let key = String::from_utf8_lossy(rdkafka::Message::key(m).unwrap()).into_owned();
            (key, json_of(m))
        })
        .collect();
    let kinds: HashSet<(String, String, String)> = events
        .iter()
        .map(|(_, e)| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["contact"].as_str().unwrap().to_string(),
                e["link_source"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let expected: HashSet<(String, String, String)> = [
        ("OptedOut", USER_ID, "-"),
        ("IdentityLinked", "+33612990001", "message"),
        ("IdentityLinked", "+33612990009", "message"),
        ("IdentityLinked", "+33612990001", "number_change"),
        ("IdentityLinked", USER_ID, "user_id_change"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(kinds, expected);
    for (key, e) in &events {
        let user_ids = [USER_ID, NEW_USER_ID].map(|u| format!("{PHONE_NUMBER_ID}:{u}"));
        assert!(user_ids.contains(key), "{key} for {e}");
    }
    let link = events
        .iter()
        .find(|(_, e)| e["link_source"] == "message" && e["contact"] == "+33612990001")
        .unwrap();
    assert_eq!(link.1["linked_contact"], USER_ID);

    // The ledger the service wrote: the person is out under every identifier, and the old
    // number stays suppressed after the change.
    for contact in ["+33612990001", USER_ID, "+33612990009", NEW_USER_ID] {
        let s = env.status(PHONE_NUMBER_ID, contact, "marketing");
        assert_eq!(s["may_send"], false, "{contact}: {s}");
    }
    let old = env.status(PHONE_NUMBER_ID, "+33612990001", "marketing");
    assert!(old["retired_at"].is_string(), "{old}");
    assert!(env.ok(&["verify"]).starts_with("ok: 5 events"));
    // One confirmation, to the customer who wrote STOP. Read until it arrives, then a while
    // longer so that a second one would show: a fixed 5 s read found none under load (a new
    // reader's group join alone can take that long).
    let replies = consume_settled(
        &bootstrap,
        &names.outbound,
        Duration::from_secs(60),
        Duration::from_secs(3),
        |r| !r.is_empty(),
    );
    assert_eq!(
        replies.len(),
        1,
        "events {:?}; log:\n{}",
        events
            .iter()
            .map(|(_, e)| (
                e["partition"].clone(),
                e["seq"].clone(),
                e["type"].clone(),
                e["contact"].clone(),
                e["occurred_at"].clone()
            ))
            .collect::<Vec<_>>(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(json_of(&replies[0])["to"], USER_ID);
}
