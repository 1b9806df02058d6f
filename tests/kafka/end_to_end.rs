//! `consent-ledger run` against a real Apache Kafka broker (scripts/kafka.sh): end to end,
//! restart, kill -9, broker restart, poison input.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::kafka::*;
use crate::common::*;

fn key(from: &str) -> String {
    format!("{PHONE_NUMBER_ID}:{from}")
}

fn record(line: String) -> Record {
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let from = v["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
        .as_str()
        .unwrap_or("x")
        .to_string();
    (key(&from), Some(line.into_bytes()))
}

/// Waits until `events` distinct events are on the consent-events topic; on failure, says
/// which stage was behind (the service's own metrics, then what the test read).
pub(crate) fn wait_for_events(
    bootstrap: &str,
    names: &Names,
    events: usize,
    svc: &Service,
) -> Vec<rdkafka::message::OwnedMessage> {
    let got = consume_until(bootstrap, &names.events, Duration::from_secs(120), |r| {
        distinct_events(r).len() >= events
    });
    let read = distinct_events(&got).len();
    assert_eq!(
        read,
        events,
        "consent events on the topic; stages: {}; service log:\n{}",
        svc.stages(read),
        svc.log_text()
    );
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn end_to_end_whatsapp_webhooks_to_consent_events_and_confirmations() {
    let bootstrap = bootstrap();
    let names = Names::new("e2e");
    let env = Env::with_config(&names.config_toml(""));
    let t = 1_763_978_400;
    let lines = vec![
        record(wa_text("33612345678", "wamid.e2e.1", t, "STOP")),
        record(wa_button(
            "33698765432",
            "wamid.e2e.2",
            t + 1,
            "STOP",
            "Se désabonner",
            "wamid.campaign",
        )),
        record(wa_text("33612345678", "wamid.e2e.3", t + 2, "START")),
        record(wa_text("33655501234", "wamid.e2e.4", t + 3, "ARRÊT")),
        record(wa_text(
            "33644433322",
            "wamid.e2e.5",
            t + 4,
            "Bonjour, ma commande est partie ?",
        )),
        // Meta retries webhooks: the same STOP again must change nothing.
        record(wa_text("33612345678", "wamid.e2e.1", t, "STOP")),
    ];
    produce(&bootstrap, &names.inbound, &lines).await;
    let svc = Service::start(&env, &bootstrap);
    let events = wait_for_events(&bootstrap, &names, 4, &svc);
    let replies = consume_until(&bootstrap, &names.outbound, Duration::from_secs(60), |r| {
        r.len() >= 4
    });
    // Give a duplicate the chance to show up before counting.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(svc.stop(), Some(0));

    let types: Vec<(String, String)> = events
        .iter()
        .map(|m| {
            let e = json_of(m);
            (
                e["source"]["message_id"].as_str().unwrap().to_string(),
                e["type"].as_str().unwrap().to_string(),
            )
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let expected: HashSet<(String, String)> = [
        ("wamid.e2e.1", "OptedOut"),
        ("wamid.e2e.2", "OptedOut"),
        ("wamid.e2e.3", "OptedIn"),
        ("wamid.e2e.4", "OptedOut"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(types.into_iter().collect::<HashSet<_>>(), expected);
    for m in &events {
        let k = String::from_utf8_lossy(rdkafka::Message::key(m).unwrap()).into_owned();
        assert!(k.starts_with(&format!("{PHONE_NUMBER_ID}:+33")), "key {k}");
    }
    let again = consume_settled(
        &bootstrap,
        &names.outbound,
        Duration::from_secs(60),
        Duration::from_secs(3),
        |r| r.len() >= 4,
    );
    let kinds: Vec<String> = again
        .iter()
        .map(|m| json_of(m)["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(again.len(), 4, "one reply per transition, once: {kinds:?}");
    assert!(replies.len() >= 4);
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "opt_out_confirmation")
            .count(),
        3
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "opt_in_confirmation").count(),
        1
    );

    assert_eq!(
        env.status(PHONE_NUMBER_ID, "+33612345678", "marketing")["status"],
        "opted_in"
    );
    assert_eq!(
        env.status(PHONE_NUMBER_ID, "+33655501234", "marketing")["status"],
        "opted_out"
    );
    assert!(env.ok(&["verify"]).starts_with("ok: 4 events"));
}

/// Many STOP/START messages over 500 contacts; returns the records and the events expected.
fn stream(n: usize, seed: u64) -> (Vec<Record>, usize) {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let mut events = 0;
    for i in 0..n {
        let from = format!("3361{:07}", rng.below(500));
        let body = match rng.below(4) {
            0 => "STOP",
            1 => "START",
            2 => "Stop svp",
            _ => "Bonjour !",
        };
        if body != "Bonjour !" {
            events += 1;
        }
        out.push(record(wa_text(
            &from,
            &format!("wamid.s{seed}.{i}"),
            1_763_978_400 + i as i64,
            body,
        )));
    }
    (out, events)
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_mid_stream_neither_reprocesses_nor_skips() {
    let bootstrap = bootstrap();
    let names = Names::new("restart");
    let env = Env::with_config(&names.config_toml(""));
    let (records, expected) = stream(1500, 7);
    produce(&bootstrap, &names.inbound, &records).await;
    let svc = Service::start(&env, &bootstrap);
    consume_until(&bootstrap, &names.events, Duration::from_secs(60), |r| {
        distinct_events(r).len() >= expected / 3
    });
    assert_eq!(svc.stop(), Some(0), "clean stop");
    let svc = Service::start(&env, &bootstrap);
    wait_for_events(&bootstrap, &names, expected, &svc);
    assert_eq!(svc.stop(), Some(0));
    let ids = env.exported_event_ids();
    assert_eq!(ids.len(), expected, "one event per qualifying message");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), expected);
    assert!(env.ok(&["verify"]).starts_with("ok: "));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_points_loses_and_doubles_nothing() {
    let bootstrap = bootstrap();
    let names = Names::new("crash");
    let env = Env::with_config(&names.config_toml(""));
    let (records, expected) = stream(4000, 11);
    produce(&bootstrap, &names.inbound, &records).await;
    let mut rng = Rng(0x5eed);
    for round in 0..4 {
        let svc = Service::start(&env, &bootstrap);
        let ms = 800 + rng.below(2500);
        std::thread::sleep(Duration::from_millis(ms));
        svc.kill9();
        eprintln!("round {round}: killed -9 after {ms} ms");
    }
    let svc = Service::start(&env, &bootstrap);
    let published = wait_for_events(&bootstrap, &names, expected, &svc);
    assert_eq!(svc.stop(), Some(0));
    let ids = env.exported_event_ids();
    assert_eq!(
        ids.len(),
        expected,
        "exactly one event per qualifying message after 4 kill -9"
    );
    assert_eq!(
        ids.iter().collect::<HashSet<_>>(),
        distinct_events(&published).iter().collect::<HashSet<_>>()
    );
    let verify = env.ok(&["verify"]);
    assert!(verify.starts_with("ok: "), "{verify}");
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_records_go_to_the_dead_letter_topic_and_good_ones_go_through() {
    let bootstrap = bootstrap();
    let names = Names::new("poison");
    let env = Env::with_config(&names.config_toml(""));
    let t = 1_763_978_400;
    let huge = format!("{{\"type\":\"inbound\",\"tenant\":\"shop\",\"channel\":\"sms\",\"message_id\":\"h\",\"from\":\"+33612345670\",\"received_at\":\"2026-01-01T00:00:00Z\",\"text\":\"{}\"}}", "A".repeat(900_000));
    let records = vec![
        record(wa_text("33612345671", "wamid.p.1", t, "STOP")),
        ("k1".to_string(), Some(b"{not json".to_vec())),
        (
            "k2".to_string(),
            Some(br#"{"some":"other shape"}"#.to_vec()),
        ),
        ("k3".to_string(), Some(huge.into_bytes())),
        ("k4".to_string(), Some(vec![0xff, 0x00, 0xfe, 0x13, 0x37])),
        ("k5".to_string(), None),
        record(wa_text("33612345672", "wamid.p.2", t + 1, "STOP")),
    ];
    produce(&bootstrap, &names.inbound, &records).await;
    let svc = Service::start(&env, &bootstrap);
    wait_for_events(&bootstrap, &names, 2, &svc);
    let dead = consume_until(&bootstrap, &names.dlq, Duration::from_secs(60), |r| {
        r.len() >= 5
    });
    assert_eq!(svc.stop(), Some(0));
    assert_eq!(dead.len(), 5);
    let mut codes: Vec<String> = dead
        .iter()
        .map(|m| header(m, "dlq.code").unwrap())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "invalid_field",
            "invalid_json",
            "invalid_json",
            "text_too_long",
            "unknown_shape"
        ]
    );
    for m in &dead {
        assert!(!header(m, "dlq.reason").unwrap().is_empty());
        assert_eq!(
            header(m, "dlq.source.topic").as_deref(),
            Some(names.inbound.as_str())
        );
        assert!(header(m, "dlq.source.offset")
            .unwrap()
            .parse::<i64>()
            .is_ok());
    }
    let garbage = dead
        .iter()
        .find(|m| rdkafka::Message::key(*m) == Some(b"k4".as_slice()))
        .unwrap();
    assert_eq!(
        rdkafka::Message::payload(garbage),
        Some([0xff, 0x00, 0xfe, 0x13, 0x37].as_slice()),
        "original bytes kept"
    );
    assert_eq!(
        env.status("106540352242922", "+33612345672", "marketing")["status"],
        "opted_out"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sent_records_on_the_real_broker_attribute_a_later_quick_reply_stop() {
    let bootstrap = bootstrap();
    let names = Names::new("sent");
    let env = Env::with_config(&names.config_toml(""));
    let t = 1_763_978_400;
    let campaign_message = "wamid.campaign.blackfriday.1";
    let sent_record = crate::common::campaigns::sent(
        PHONE_NUMBER_ID,
        campaign_message,
        "+33612345678",
        "black-friday",
        "marketing",
        t - 3600,
    );
    produce(
        &bootstrap,
        &names.sent,
        &[(key("+33612345678"), Some(sent_record.into_bytes()))],
    )
    .await;
    produce(
        &bootstrap,
        &names.inbound,
        &[record(wa_text("33699999999", "wamid.sent.help", t, "HELP"))],
    )
    .await;
    let svc = Service::start(&env, &bootstrap);
    // The HELP reply shows the service is consuming; the sent topic is read in the same loop.
    let help = consume_until(&bootstrap, &names.outbound, Duration::from_secs(120), |r| {
        !r.is_empty()
    });
    assert_eq!(help.len(), 1, "service log:\n{}", svc.log_text());
    std::thread::sleep(Duration::from_secs(3));
    let stop = wa_button(
        "33612345678",
        "wamid.sent.stop",
        t,
        "STOP",
        "Stop promotions",
        campaign_message,
    );
    produce(&bootstrap, &names.inbound, &[record(stop)]).await;
    let events = wait_for_events(&bootstrap, &names, 1, &svc);
    assert_eq!(svc.stop(), Some(0));
    let e = json_of(&events[0]);
    assert_eq!(e["campaign_id"], "black-friday");
    assert_eq!(e["attribution"], "reply_context");
}

/// The clock rule holds on the Kafka path too: a START dated a year ahead is processed at its
/// recording time with its claim kept, and does not outrank the STOP sent after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_dated_a_year_ahead_is_corrected_not_trusted() {
    let bootstrap = bootstrap();
    let names = Names::new("clock");
    let env = Env::with_config(&names.config_toml(""));
    let now = chrono::Utc::now().timestamp();
    let lines = vec![
        record(wa_text(
            "33612399101",
            "wamid.clock.1",
            now + 366 * 86_400,
            "START",
        )),
        record(wa_text("33612399101", "wamid.clock.2", now, "STOP")),
    ];
    produce(&bootstrap, &names.inbound, &lines).await;
    let svc = Service::start(&env, &bootstrap);
    let events = wait_for_events(&bootstrap, &names, 2, &svc);
    assert_eq!(svc.stop(), Some(0));
    let start = events
        .iter()
        .map(json_of)
        .find(|e| e["type"] == "OptedIn")
        .unwrap();
    assert_eq!(
        start["source"]["claimed_time"],
        (now + 366 * 86_400).to_string()
    );
    assert_eq!(
        env.status(PHONE_NUMBER_ID, "+33612399101", "marketing")["status"],
        "opted_out"
    );
}
