//! Faults a real broker cannot produce on cue, injected with librdkafka's mock cluster: failed
//! offset commits, a consent-events topic that refuses writes for a while, a broker that goes
//! down and comes back. In addition to the real-broker tests in tests/kafka.rs, never instead.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use consent_ledger::config::{ConfigFile, KafkaConfig, Settings};
use consent_ledger::ledger::Ledger;
use consent_ledger::metrics::Metrics;
use consent_ledger::pipeline::kafka;
use consent_ledger::rgpd::MasterKey;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::common::kafka::*;
use crate::common::*;

struct Harness {
    names: Names,
    dir: tempfile::TempDir,
    ledger: Arc<Ledger>,
}

fn harness(
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    test: &str,
) -> Harness {
    let names = Names::new(test);
    for t in [&names.inbound, &names.events, &names.outbound, &names.dlq] {
        mock.create_topic(t, 3, 1).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(&dir.path().join("ledger"), MasterKey::generate()).unwrap());
    Harness { names, dir, ledger }
}

fn config(bootstrap: &str, names: &Names, extra: &[(&str, &str)]) -> KafkaConfig {
    let mut k = KafkaConfig {
        bootstrap_servers: bootstrap.to_string(),
        group_id: names.group.clone(),
        ..KafkaConfig::default()
    };
    k.topics.inbound = names.inbound.clone();
    k.topics.consent_events = names.events.clone();
    k.topics.outbound = names.outbound.clone();
    k.topics.dead_letter = names.dlq.clone();
    k.create_topics = false;
    k.batch_size = 100;
    k.linger_ms = 20;
    k.properties
        .insert("session.timeout.ms".into(), "6000".into());
    for (key, value) in extra {
        k.properties.insert(key.to_string(), value.to_string());
    }
    k
}

type Running = (
    watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), kafka::KafkaModeError>>,
    Metrics,
);

/// Runs the Kafka pipeline in-process (the mock cluster is not Send: it stays in the test).
fn start(h: &Harness, k: KafkaConfig) -> Running {
    let settings = Arc::new(Settings::from_file(ConfigFile::default()).unwrap());
    let (tx, rx) = watch::channel(false);
    let metrics = Metrics::new();
    let task = tokio::spawn(kafka::run(
        k,
        settings,
        h.ledger.clone(),
        metrics.clone(),
        Arc::new(AtomicBool::new(false)),
        rx,
    ));
    (tx, task, metrics)
}

fn messages(n: usize, seed: u64) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    for i in 0..n {
        let from = format!("3361{:07}", (seed as usize * 1000 + i) % 400);
        let body = if i % 2 == 0 { "STOP" } else { "START" };
        let line = wa_text(
            &from,
            &format!("wamid.f{seed}.{i}"),
            1_763_978_400 + i as i64,
            body,
        );
        out.push((format!("{PHONE_NUMBER_ID}:{from}"), Some(line.into_bytes())));
    }
    (out, n)
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_offset_commits_are_retried_without_skipping_or_doubling() {
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let h = harness(&mock, "commitfail");
    mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS; 8],
    );
    let (records, expected) = messages(600, 1);
    produce(&bootstrap, &h.names.inbound, &records).await;
    let (stop, task, metrics) = start(&h, config(&bootstrap, &h.names, &[]));
    let ledger = h.ledger.clone();
    wait_until("every event appended", Duration::from_secs(60), || {
        ledger.event_count().unwrap() >= expected
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(
        h.ledger.event_count().unwrap(),
        expected,
        "no message appended twice"
    );
    assert!(h.ledger.verify().unwrap().ok());
    assert!(
        metrics.commit_errors.get() > 0,
        "the injected commit errors reached the consumer"
    );

    // The group's committed offsets reached the end of every partition despite the failures.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &h.names.group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(&h.names.inbound, p);
    }
    let committed = reader
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    let mut total = 0;
    for e in committed.elements() {
        let (_, high) = reader
            .fetch_watermarks(&h.names.inbound, e.partition(), Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            e.offset(),
            Offset::Offset(high),
            "partition {} committed to its end",
            e.partition()
        );
        total += high;
    }
    assert_eq!(total as usize, records.len());
    let _ = h.dir;
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_events_publish_failing_for_a_while_is_retried_from_the_log() {
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let h = harness(&mock, "publishfail");
    let (records, expected) = messages(300, 2);
    produce(&bootstrap, &h.names.inbound, &records).await;
    // Every produce request fails for a while; with a short message timeout the relay sees
    // the failures itself and must retry from its cursor in the log.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 400],
    );
    let k = config(
        &bootstrap,
        &h.names,
        &[("message.timeout.ms", "1500"), ("retry.backoff.ms", "20")],
    );
    let (stop, task, metrics) = start(&h, k);
    let ledger = h.ledger.clone();
    wait_until("every event appended", Duration::from_secs(60), || {
        ledger.event_count().unwrap() >= expected
    })
    .await;
    let published = consume_until(&bootstrap, &h.names.events, Duration::from_secs(90), |r| {
        distinct_events(r).len() >= expected
    });
    assert_eq!(
        distinct_events(&published).len(),
        expected,
        "every event reached consent.events"
    );
    wait_until("log published", Duration::from_secs(30), || {
        ledger.backlog(consent_ledger::ledger::Sink::Kafka).unwrap() == 0
    })
    .await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(h.ledger.event_count().unwrap(), expected);
    assert!(
        metrics.publish_errors.get() > 0,
        "the injected produce errors reached the relay"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_down_for_seconds_then_back_loses_nothing() {
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let h = harness(&mock, "brokerdown");
    let (records, expected) = messages(400, 3);
    let (first, second) = records.split_at(200);
    produce(&bootstrap, &h.names.inbound, first).await;
    let (stop, task, metrics) = start(&h, config(&bootstrap, &h.names, &[]));
    let ledger = h.ledger.clone();
    wait_until("first half appended", Duration::from_secs(60), || {
        ledger.event_count().unwrap() >= 200
    })
    .await;
    mock.broker_down(1).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    mock.broker_up(1).unwrap();
    produce(&bootstrap, &h.names.inbound, second).await;
    wait_until("second half appended", Duration::from_secs(90), || {
        ledger.event_count().unwrap() >= expected
    })
    .await;
    let published = consume_until(&bootstrap, &h.names.events, Duration::from_secs(60), |r| {
        distinct_events(r).len() >= expected
    });
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(h.ledger.event_count().unwrap(), expected);
    let ids: HashSet<String> = distinct_events(&published);
    assert_eq!(ids.len(), expected);
    let _ = metrics;
}
