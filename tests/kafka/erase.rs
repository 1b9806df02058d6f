//! Erasure in Kafka mode (issue 10): `DELETE /v1/tenants/{t}/contacts/{c}` on `run --listen`
//! publishes the `Erased` event on consent.events and one `erased` record per identifier on
//! outbound.messages, with the identifiers in clear for subscribers, and once both are
//! published the ledger itself can no longer read them.

use std::time::Duration;

use sha2::Digest;

use crate::common::kafka::*;
use crate::common::*;

const NUMBER: &str = "33612880001";
const USER_ID: &str = "FR.97531208655302741918";
const TOKEN: &str = "acme-erase-token";

/// `DELETE path` with the tenant's token; the status code.
fn delete(svc: &Service, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let addr = svc.addr()?;
    let mut conn = std::net::TcpStream::connect(&addr).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        conn,
        "DELETE {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    text.split(' ').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_reaches_both_topics_in_clear_and_leaves_the_ledger_unable_to_read_them() {
    let bootstrap = bootstrap();
    let names = Names::new("erase");
    let token_sha = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    let env = Env::with_config(&names.config_toml(&format!(
        "[tenants.acme]\nphone_number_ids = [\"{PHONE_NUMBER_ID}\"]\napi_tokens_sha256 = [\"{token_sha}\"]\n"
    )));
    let t = chrono::Utc::now().timestamp() - 600;
    let stop = wa_user_text(Some(NUMBER), Some(USER_ID), "wamid.er.1", t, "STOP");
    produce(
        &bootstrap,
        &names.inbound,
        &[(
            format!("{PHONE_NUMBER_ID}:{USER_ID}"),
            Some(stop.into_bytes()),
        )],
    )
    .await;
    let svc = Service::start(&env, &bootstrap);
    let got = consume_until(&bootstrap, &names.events, Duration::from_secs(120), |r| {
        distinct_events(r).len() >= 2
    });
    assert_eq!(distinct_events(&got).len(), 2, "the link and the STOP");
    wait_until("the HTTP API", Duration::from_secs(60), || {
        svc.addr().is_some()
    })
    .await;
    let path = "/v1/tenants/acme/contacts/%2B33612880001?reason=ticket%2042";
    assert_eq!(delete(&svc, path), Some(200), "log:\n{}", svc.log_text());

    let events = consume_until(&bootstrap, &names.events, Duration::from_secs(60), |r| {
        r.iter().any(|m| json_of(m)["type"] == "Erased")
    });
    let erased = events
        .iter()
        .map(json_of)
        .find(|e| e["type"] == "Erased")
        .expect("an Erased event on consent.events");
    assert_eq!(erased["contact"], "+33612880001");
    assert_eq!(erased["linked"], serde_json::json!([USER_ID]));
    assert_eq!(erased["erasure"]["reason"], "ticket 42");
    let outbound = consume_until(&bootstrap, &names.outbound, Duration::from_secs(60), |r| {
        r.iter().filter(|m| json_of(m)["kind"] == "erased").count() >= 2
    });
    let mut to: Vec<String> = outbound
        .iter()
        .map(json_of)
        .filter(|m| m["kind"] == "erased")
        .map(|m| m["to"].as_str().unwrap().to_string())
        .collect();
    to.sort();
    assert_eq!(to, ["+33612880001", USER_ID]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(svc.stop(), Some(0));

    // Both published: the notice key is gone, and the ledger reads nothing of the person.
    let history = env.ok(&[
        "history",
        "--tenant",
        "acme",
        "--contact",
        USER_ID,
        "--json",
    ]);
    assert!(!history.contains("33612880001"), "{history}");
    assert!(
        history.contains("\"Erased\"") && history.contains("[erased]"),
        "{history}"
    );
    for contact in ["+33612880001", USER_ID] {
        assert_eq!(env.status("acme", contact, "marketing")["may_send"], false);
    }
    assert!(env.ok(&["verify"]).starts_with("ok: 3 events"));
}
