//! `GET`/`POST /webhooks/whatsapp` under `serve`: Meta's handshake, signatures (good, wrong,
//! missing, rotated, over other bytes), durable before the 200, retries deduplicated, signed
//! but unusable bodies dead-lettered, and the endpoint's limits.

use serde_json::json;

use super::*;
use crate::api_util::{problem, Server};
use crate::common::webhooks::meta_signature;
use crate::common::{wa_text, PHONE_NUMBER_ID};

const NUMBER: &str = "33612345678";
const CONTACT: &str = "+33612345678";

fn now() -> i64 {
    chrono::Utc::now().timestamp() - 60
}

#[tokio::test]
async fn a_signed_stop_is_committed_before_the_200() {
    let hooked = Hooked::start(&config("")).await;
    let body = wa_text(NUMBER, "wamid.w1", now(), "STOP");
    let res = hooked
        .whatsapp(&body, Some(meta_signature(APP_SECRET, body.as_bytes())))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        ok_json(res).await,
        json!({"records": 1, "dead_lettered": 0})
    );
    // Asked right after the 200, with no wait: the commit happened before the answer.
    let consent = hooked.consent(CONTACT).await;
    assert_eq!(consent["status"], "opted_out", "{consent}");
    let events = hooked.history(CONTACT).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["source"]["message_id"], "wamid.w1");
    hooked.stop().await;
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_a_401_that_changes_nothing_and_is_counted() {
    let hooked = Hooked::start(&config("")).await;
    let body = wa_text(NUMBER, "wamid.w2", now(), "STOP");
    let wrong = meta_signature("not-the-app-secret", body.as_bytes());
    let p = problem(hooked.whatsapp(&body, Some(wrong)).await, 401).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("X-Hub-Signature-256"),
        "{p}"
    );
    problem(hooked.whatsapp(&body, None).await, 401).await;
    // The right digest with another prefix, or no digest, is not a signature either.
    let sha1_prefixed = meta_signature(APP_SECRET, body.as_bytes()).replace("sha256=", "sha1=");
    problem(hooked.whatsapp(&body, Some(sha1_prefixed)).await, 401).await;
    assert_eq!(hooked.consent(CONTACT).await["status"], "unknown");
    assert!(hooked.history(CONTACT).await.is_empty());
    let metrics = hooked.metrics().await;
    assert!(
        metrics
            .contains("consent_ledger_webhook_signatures_rejected_total{provider=\"whatsapp\"} 3"),
        "{metrics}"
    );
    hooked.stop().await;
}

/// The signature covers the bytes Meta sent: the same JSON spelled otherwise (here
/// re-serialized with other spacing) is other bytes, and a receiver that checked a
/// re-serialization would accept a forgery or refuse Meta.
#[tokio::test]
async fn a_signature_of_the_same_json_spelled_otherwise_is_refused() {
    let hooked = Hooked::start(&config("")).await;
    let body = wa_text(NUMBER, "wamid.w3", now(), "STOP");
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
    let signed_compact = meta_signature(APP_SECRET, body.as_bytes());
    problem(hooked.whatsapp(&pretty, Some(signed_compact)).await, 401).await;
    let res = hooked
        .whatsapp(&pretty, Some(meta_signature(APP_SECRET, pretty.as_bytes())))
        .await;
    assert_eq!(res.status(), 200);
    hooked.stop().await;
}

#[tokio::test]
async fn a_body_signed_with_the_secret_before_rotation_is_accepted_one_never_listed_is_not() {
    let hooked = Hooked::start(&config("")).await;
    let body = wa_text(NUMBER, "wamid.w4", now(), "STOP");
    let res = hooked
        .whatsapp(&body, Some(meta_signature(OLD_APP_SECRET, body.as_bytes())))
        .await;
    assert_eq!(res.status(), 200);
    let other = wa_text("33655501234", "wamid.w5", now(), "STOP");
    let res = hooked
        .whatsapp(
            &other,
            Some(meta_signature("meta-app-secret-2024", other.as_bytes())),
        )
        .await;
    problem(res, 401).await;
    assert_eq!(hooked.consent(CONTACT).await["status"], "opted_out");
    assert_eq!(hooked.consent("+33655501234").await["status"], "unknown");
    hooked.stop().await;
}

#[tokio::test]
async fn the_handshake_echoes_the_challenge_only_for_the_verify_token() {
    let hooked = Hooked::start(&config("")).await;
    let url = |mode: &str, token: &str| {
        format!(
            "{}/webhooks/whatsapp?hub.mode={mode}&hub.challenge=1158201444&hub.verify_token={token}",
            hooked.base
        )
    };
    let res = hooked
        .client
        .get(url("subscribe", VERIFY_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(res.text().await.unwrap(), "1158201444");
    for bad in [url("subscribe", "guess"), url("unsubscribe", VERIFY_TOKEN)] {
        problem(hooked.client.get(bad).send().await.unwrap(), 403).await;
    }
    let no_query = format!("{}/webhooks/whatsapp", hooked.base);
    problem(hooked.client.get(no_query).send().await.unwrap(), 403).await;
    hooked.stop().await;
}

/// Meta retries a delivery it did not see answered in time; the retry carries the same body.
#[tokio::test]
async fn a_retried_delivery_is_deduplicated_one_event_one_confirmation() {
    let hooked = Hooked::start(&config("")).await;
    let body = wa_text(NUMBER, "wamid.w6", now(), "ARRÊT");
    for _ in 0..3 {
        let res = hooked
            .whatsapp(&body, Some(meta_signature(APP_SECRET, body.as_bytes())))
            .await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(hooked.history(CONTACT).await.len(), 1);
    // Once stopped, everything committed is in the outbox.
    let dir = hooked.stop().await;
    let replies = crate::common::read_jsonl(&dir.path().join("data/outbox.jsonl"));
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0]["to"], CONTACT);
}

#[tokio::test]
async fn one_body_for_two_people_is_two_records_each_decided() {
    let hooked = Hooked::start(&config("")).await;
    let message = |from: &str, id: &str, text: &str| json!({"from": from, "id": id, "timestamp": now().to_string(), "type": "text", "text": {"body": text}});
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "33180884200", "phone_number_id": PHONE_NUMBER_ID},
            "messages": [message(NUMBER, "wamid.w7", "STOP"), message("33655501234", "wamid.w8", "Bonjour")]}}]}]})
    .to_string();
    let res = hooked
        .whatsapp(&body, Some(meta_signature(APP_SECRET, body.as_bytes())))
        .await;
    assert_eq!(
        ok_json(res).await,
        json!({"records": 2, "dead_lettered": 0})
    );
    assert_eq!(hooked.consent(CONTACT).await["status"], "opted_out");
    assert_eq!(hooked.consent("+33655501234").await["status"], "unknown");
    hooked.stop().await;
}

#[tokio::test]
async fn a_signed_body_for_an_unlisted_number_or_not_a_webhook_is_a_200_and_a_dead_letter() {
    let hooked = Hooked::start(&config("")).await;
    let unlisted = wa_text(NUMBER, "wamid.w9", now(), "STOP").replace(PHONE_NUMBER_ID, "123456123");
    let res = hooked
        .whatsapp(
            &unlisted,
            Some(meta_signature(APP_SECRET, unlisted.as_bytes())),
        )
        .await;
    assert_eq!(
        ok_json(res).await,
        json!({"records": 0, "dead_lettered": 1})
    );
    let garbage = "{\"object\":\"whatsapp_business_account\",\"entry\":";
    let res = hooked
        .whatsapp(
            garbage,
            Some(meta_signature(APP_SECRET, garbage.as_bytes())),
        )
        .await;
    assert_eq!(
        ok_json(res).await,
        json!({"records": 0, "dead_lettered": 1})
    );
    let dead = hooked.dead_letters();
    let codes: Vec<&str> = dead.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["unknown_tenant", "invalid_json"]);
    assert_eq!(dead[0]["source"]["file"], "webhook:whatsapp");
    assert_eq!(dead[0]["path"], "/entry/0/changes/0/value/messages/0");
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("123456123"),
        "{}",
        dead[0]
    );
    assert_eq!(dead[1]["original"], garbage);
    assert_eq!(hooked.consent(CONTACT).await["status"], "unknown");
    hooked.stop().await;
}

#[tokio::test]
async fn the_endpoint_holds_its_body_limit_and_its_rate_per_source() {
    let hooked = Hooked::start(&config(
        "[webhooks]\nmax_body_bytes = 2000\nrate_limit_per_source = \"3/h\"\n",
    ))
    .await;
    let big = "x".repeat(3000);
    let p = problem(
        hooked
            .whatsapp(&big, Some(meta_signature(APP_SECRET, big.as_bytes())))
            .await,
        413,
    )
    .await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("webhooks.max_body_bytes"),
        "{p}"
    );
    let body = wa_text(NUMBER, "wamid.w10", now(), "STOP");
    let sig = || Some(meta_signature(APP_SECRET, body.as_bytes()));
    assert_eq!(hooked.whatsapp(&body, sig()).await.status(), 200);
    assert_eq!(hooked.whatsapp(&body, sig()).await.status(), 200);
    let res = hooked.whatsapp(&body, sig()).await;
    assert!(res.headers().contains_key("retry-after"));
    let p = problem(res, 429).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("rate_limit_per_source"),
        "{p}"
    );
    hooked.stop().await;
}

#[tokio::test]
async fn without_a_webhooks_table_the_endpoints_say_so() {
    let server = Server::start().await;
    let res = server
        .client
        .post(server.url("/webhooks/whatsapp"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let p = problem(res, 404).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("[webhooks.whatsapp]"),
        "{p}"
    );
    let res = server
        .client
        .post(server.url("/webhooks/twilio/sms"))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    server.stop().await;
}
