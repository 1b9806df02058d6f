//! Kafka mode reads what campaigns sent from `outbound.sent` next to the inbound topic, so a
//! STOP that arrives later on `inbound.messages` is attributed to the campaign. Runs against
//! librdkafka's mock cluster: no broker needed.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use consent_ledger::config::{ConfigFile, KafkaConfig, Settings};
use consent_ledger::domain::contact::Contact;
use consent_ledger::ledger::Ledger;
use consent_ledger::metrics::Metrics;
use consent_ledger::pipeline::kafka;
use consent_ledger::rgpd::MasterKey;
use rdkafka::mocking::MockCluster;
use tokio::sync::watch;

use crate::common::campaigns::{sent, T0};
use crate::common::kafka::*;
use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn sent_records_on_their_topic_attribute_later_stops() {
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let names = Names::new("sent");
    let sent_topic = format!("{}.sent", names.inbound);
    for t in [
        &names.inbound,
        &sent_topic,
        &names.events,
        &names.outbound,
        &names.dlq,
    ] {
        mock.create_topic(t, 3, 1).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(&dir.path().join("ledger"), MasterKey::generate()).unwrap());
    let mut k = KafkaConfig {
        bootstrap_servers: bootstrap.clone(),
        group_id: names.group.clone(),
        ..KafkaConfig::default()
    };
    k.topics.inbound = names.inbound.clone();
    k.topics.sent = sent_topic.clone();
    k.topics.consent_events = names.events.clone();
    k.topics.outbound = names.outbound.clone();
    k.topics.dead_letter = names.dlq.clone();
    k.create_topics = false;
    k.linger_ms = 20;
    k.properties
        .insert("session.timeout.ms".into(), "6000".into());
    let settings = Arc::new(Settings::from_file(ConfigFile::default()).unwrap());
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(kafka::run(
        k,
        settings,
        ledger.clone(),
        Metrics::new(),
        Arc::new(AtomicBool::new(false)),
        rx,
    ));

    let contacts: Vec<String> = (0..20).map(|i| format!("336120000{i:02}")).collect();
    let sends: Vec<Record> = contacts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let line = sent(
                PHONE_NUMBER_ID,
                &format!("wamid.k{i}"),
                &format!("+{c}"),
                "kafka-promo",
                "marketing",
                T0,
            );
            (format!("{PHONE_NUMBER_ID}:+{c}"), Some(line.into_bytes()))
        })
        .collect();
    produce(&bootstrap, &sent_topic, &sends).await;
    let l = ledger.clone();
    wait_until("the sent records stored", Duration::from_secs(60), || {
        (0..20).all(|i| {
            l.sent_message(&PHONE_NUMBER_ID.parse().unwrap(), &format!("wamid.k{i}"))
                .unwrap()
                .is_some()
        })
    })
    .await;

    let stops: Vec<Record> = contacts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let line = if i % 2 == 0 {
                wa_text(c, &format!("wamid.in{i}"), T0 + 3600, "STOP")
            } else {
                wa_button(
                    c,
                    &format!("wamid.in{i}"),
                    T0 + 3600,
                    "STOP",
                    "Stop",
                    &format!("wamid.k{i}"),
                )
            };
            (format!("{PHONE_NUMBER_ID}:+{c}"), Some(line.into_bytes()))
        })
        .collect();
    produce(&bootstrap, &names.inbound, &stops).await;
    let l = ledger.clone();
    wait_until("every STOP appended", Duration::from_secs(60), || {
        l.event_count().unwrap() >= 20
    })
    .await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();

    for (i, c) in contacts.iter().enumerate() {
        let history = ledger
            .history(
                &PHONE_NUMBER_ID.parse().unwrap(),
                &Contact::from_stored(format!("+{c}")),
            )
            .unwrap();
        assert_eq!(history.len(), 1, "{c}");
        let e = &history[0];
        assert_eq!(e.campaign_id.as_deref(), Some("kafka-promo"), "{c}");
        let route = serde_json::to_value(e.attribution).unwrap();
        let expected = if i % 2 == 0 {
            "window"
        } else {
            "reply_context"
        };
        assert_eq!(route, expected, "{c}");
    }
    let inputs = ledger
        .campaign_inputs(&PHONE_NUMBER_ID.parse().unwrap())
        .unwrap();
    assert_eq!(inputs.sent.len(), 20);
    assert!(ledger.verify().unwrap().ok());
    let _ = dir;
}
