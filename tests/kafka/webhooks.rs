//! The WhatsApp receiver of `run` on the real broker (issue 12): a signed body is on the
//! inbound topic, one record per message keyed by its person, before the 200 (the service is
//! killed right after the answer), a refused signature puts nothing there, the consumer then
//! records the STOP, and a broker that cannot take the record gets the provider a 503.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::kafka::*;
use crate::common::webhooks::{meta_signature, post, Answer};
use crate::common::*;

const SECRET: &str = "kafka-mode-app-secret";
const USER_ID: &str = "FR.24681208655302741918";

fn config(names: &Names) -> String {
    names.config_toml(&format!(
        "[tenants.acme]\nphone_number_ids = [\"{PHONE_NUMBER_ID}\"]\n\
         [webhooks.whatsapp]\nverify_token = \"v\"\napp_secrets = [\"{SECRET}\"]\n"
    ))
}

fn addr_of(svc: &Service) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(addr) = svc.addr() {
            return addr;
        }
        assert!(
            Instant::now() < deadline,
            "no address; log:\n{}",
            svc.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn send(addr: &str, body: &str, signature: &str) -> Answer {
    post(
        addr,
        "/webhooks/whatsapp",
        &[
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", signature),
        ],
        body.as_bytes(),
    )
}

fn message_ids(record: &Value) -> Vec<String> {
    let value = &record["entry"][0]["changes"][0]["value"];
    value["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_body_is_on_the_inbound_topic_before_the_200_and_a_refused_one_is_not() {
    let bootstrap = bootstrap();
    let names = Names::new("webhooks");
    let env = Env::with_config(&config(&names));
    let svc = Service::start(&env, &bootstrap);
    let addr = addr_of(&svc);
    let t = chrono::Utc::now().timestamp() - 60;

    let forged = wa_text("33612990101", "wamid.forged", t, "START");
    let answer = send(
        &addr,
        &forged,
        &meta_signature("guessed", forged.as_bytes()),
    );
    assert_eq!(answer.status, 401, "{answer:?}");

    let message = |from: Option<&str>, user: Option<&str>, id: &str| {
        let mut m =
            json!({"id": id, "timestamp": t.to_string(), "type": "text", "text": {"body": "STOP"}});
        if let Some(f) = from {
            m["from"] = json!(f);
        }
        if let Some(u) = user {
            m["from_user_id"] = json!(u);
        }
        m
    };
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "33180884200", "phone_number_id": PHONE_NUMBER_ID},
            "messages": [message(Some("33612990102"), None, "wamid.hook.1"),
                         message(None, Some(USER_ID), "wamid.hook.2")]}}]}]})
    .to_string();
    let answer = send(&addr, &body, &meta_signature(SECRET, body.as_bytes()));
    assert_eq!(answer.status, 200, "{answer:?}");
    // Killed right after the 200: whatever the answer promised is on the topic already.
    svc.kill9();

    let records = consume_settled(
        &bootstrap,
        &names.inbound,
        Duration::from_secs(30),
        Duration::from_secs(2),
        |r| r.len() >= 2,
    );
    let mut got: Vec<(String, Vec<String>)> = records
        .iter()
        .map(|m| {
            let key =
                String::from_utf8_lossy(rdkafka::Message::key(m).unwrap_or_default()).into_owned();
            (key, message_ids(&json_of(m)))
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "acme:+33612990102".to_string(),
                vec!["wamid.hook.1".to_string()]
            ),
            (format!("acme:{USER_ID}"), vec!["wamid.hook.2".to_string()]),
        ]
    );

    // The consumer reads the receiver's records like any webhook: both STOPs are recorded.
    let svc = Service::start(&env, &bootstrap);
    let events = consume_until(&bootstrap, &names.events, Duration::from_secs(120), |r| {
        distinct_events(r).len() >= 2
    });
    let sources: std::collections::BTreeSet<String> = events
        .iter()
        .map(|m| {
            json_of(m)["source"]["message_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        sources.len(),
        2,
        "stages: {}; log:\n{}",
        svc.stages(events.len()),
        svc.log_text()
    );
    assert!(
        sources.contains("wamid.hook.1") && sources.contains("wamid.hook.2"),
        "{sources:?}"
    );
    assert_eq!(svc.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_cannot_take_the_record_gets_meta_a_503_to_retry() {
    let names = Names::new("webhooks-down");
    // Nothing listens on port 1; the producer gives up after message.timeout.ms.
    let env = Env::with_config(&config(&names).replace(
        "[kafka.properties]\n",
        "[kafka.properties]\n\"message.timeout.ms\" = \"1500\"\n",
    ));
    let svc = Service::start(&env, "127.0.0.1:1");
    let addr = addr_of(&svc);
    let body = wa_text(
        "33612990103",
        "wamid.down",
        chrono::Utc::now().timestamp(),
        "STOP",
    );
    let answer = send(&addr, &body, &meta_signature(SECRET, body.as_bytes()));
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(
        answer.head.to_ascii_lowercase().contains("retry-after: "),
        "{}",
        answer.head
    );
    svc.kill9();
}
