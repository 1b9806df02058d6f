//! Issue 11's Kafka-mode findings, what a hostile producer found, each against the real broker
//! and named after the failure it pins.

use std::io::Write;
use std::time::Duration;

use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use sha2::{Digest, Sha256};

use crate::common::kafka::*;
use crate::common::*;
use crate::end_to_end::wait_for_events;

fn key(from: &str) -> String {
    format!("{PHONE_NUMBER_ID}:{from}")
}

fn stop(from: &str, id: &str) -> Record {
    let line = wa_text(from, id, 1_763_978_400, "STOP");
    (key(from), Some(line.into_bytes()))
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A normalized inbound record of exactly `size` bytes, its text filling it.
fn oversized_record(size: usize) -> Vec<u8> {
    let head = r#"{"type":"inbound","tenant":"shop","channel":"sms","message_id":"big","from":"+33612345670","received_at":"2026-01-01T00:00:00Z","text":""#;
    let tail = r#""}"#;
    let mut record = head.to_string();
    record.push_str(&"A".repeat(size - head.len() - tail.len()));
    record.push_str(tail);
    record.into_bytes()
}

/// `size` bytes that no codec can shrink and no decoder can read.
fn noise(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..size).map(|_| rng.next() as u8).collect()
}

fn dead_letter_at(dead: &[OwnedMessage], offset: i64) -> &OwnedMessage {
    dead.iter()
        .find(|m| header(m, "dlq.source.offset") == Some(offset.to_string()))
        .unwrap_or_else(|| panic!("no dead letter of offset {offset}"))
}

/// The service's producer refused dead letters over 1,000,000 bytes and retried them for
/// ever: nothing behind such a record was read, and SIGTERM hung. Behind a 1.1 MB record
/// (compressed by its producer, so the broker took it) and one just under the broker's
/// 1,048,588-byte default limit (uncompressed, so the consumer must fetch it whole), the STOP
/// on the same partition is processed; both dead letters are truncated copies that say so.
#[tokio::test(flavor = "multi_thread")]
async fn iss11_item15_a_record_just_over_1_mb_stalls_neither_its_partition_nor_sigterm() {
    let bootstrap = bootstrap();
    let names = Names::new("iss11-15");
    let env = Env::with_config(&names.config_toml(""));
    create_topic(&bootstrap, &names.inbound, 1).await;
    let big = oversized_record(1_100_000);
    let near_max = noise(1_048_000, 15);
    let large_client = ("message.max.bytes", "2000000");
    produce_with(
        &bootstrap,
        &names.inbound,
        &[(key("33612345670"), Some(big.clone()))],
        &[("compression.type", "lz4"), large_client],
    )
    .await;
    produce_with(
        &bootstrap,
        &names.inbound,
        &[(key("33612345670"), Some(near_max.clone()))],
        &[large_client],
    )
    .await;
    produce(
        &bootstrap,
        &names.inbound,
        &[stop("33612345671", "wamid.iss11.15")],
    )
    .await;

    let svc = Service::start(&env, &bootstrap);
    wait_for_events(&bootstrap, &names, 1, &svc);
    let dead = consume_until(&bootstrap, &names.dlq, Duration::from_secs(60), |r| {
        r.len() >= 2
    });
    let log = svc.log.clone();
    assert_eq!(svc.stop(), Some(0), "SIGTERM drains and exits 0");
    assert_eq!(
        dead.len(),
        2,
        "log:\n{}",
        std::fs::read_to_string(log).unwrap()
    );
    for (offset, original, code) in [(0, &big, "text_too_long"), (1, &near_max, "invalid_json")] {
        let m = dead_letter_at(&dead, offset);
        assert_eq!(header(m, "dlq.code").as_deref(), Some(code));
        assert!(!header(m, "dlq.reason").unwrap().is_empty());
        assert_eq!(header(m, "dlq.truncated").as_deref(), Some("true"));
        assert_eq!(
            header(m, "dlq.original.size"),
            Some(original.len().to_string())
        );
        assert_eq!(header(m, "dlq.original.sha256"), Some(sha256(original)));
        assert_eq!(
            m.payload(),
            Some(&original[..16 * 1024]),
            "its first 16 KiB"
        );
    }
    assert_eq!(
        env.status(PHONE_NUMBER_ID, "+33612345671", "marketing")["status"],
        "opted_out"
    );
}

/// SIGTERM must end the process within `kafka.shutdown_timeout_secs` whatever is pending: here
/// a dead letter its topic refuses (an invalid topic name) and a client that sent half a
/// request body. Exit code 1 says work was left pending; the log says what.
#[tokio::test(flavor = "multi_thread")]
async fn iss11_item15_sigterm_exits_within_the_shutdown_timeout_whatever_is_pending() {
    let bootstrap = bootstrap();
    let mut names = Names::new("iss11-15-stuck");
    names.dlq = format!("{} refused!", names.dlq);
    let token = "iss11-15-token";
    let config = names.config_toml_with(
        "shutdown_timeout_secs = 3",
        &format!(
            "\"message.timeout.ms\" = \"5000\"\n\
             [tenants.acme]\nphone_number_ids = [\"{PHONE_NUMBER_ID}\"]\napi_tokens_sha256 = [\"{}\"]\n",
            sha256(token.as_bytes())
        ),
    );
    let env = Env::with_config(&config);
    produce(
        &bootstrap,
        &names.inbound,
        &[
            ("k1".to_string(), Some(b"{not json".to_vec())),
            stop("33612345672", "wamid.iss11.15.stuck"),
        ],
    )
    .await;
    let svc = Service::start(&env, &bootstrap);
    svc.wait_for_log(
        "dead letters not acknowledged; retrying",
        Duration::from_secs(60),
    );
    let mut slow = std::net::TcpStream::connect(svc.addr().unwrap()).unwrap();
    write!(
        slow,
        "POST /v1/tenants/acme/consent-events HTTP/1.1\r\nHost: test\r\n\
         Authorization: Bearer {token}\r\nIdempotency-Key: iss11-15\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"contact\":"
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));

    let log = svc.log.clone();
    assert_eq!(
        svc.stop(),
        Some(1),
        "exit code 1: stopped with work pending"
    );
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains("not acknowledged when the service stopped"),
        "the batch of the refused dead letter was given up, uncommitted; log:\n{log}"
    );
    assert!(
        log.contains("did not stop within kafka.shutdown_timeout_secs (3 s)"),
        "the request in flight did not hold the process; log:\n{log}"
    );
    drop(slow);
    assert_eq!(
        env.status("acme", "+33612345672", "marketing")["status"],
        "unknown",
        "nothing of the uncommitted batch was acknowledged as done"
    );
}

/// zstd batches could not be decompressed (librdkafka built without zstd), and every
/// partition holding one stopped there. STOPs in batches of each of Kafka's four codecs are
/// all processed.
#[tokio::test(flavor = "multi_thread")]
async fn iss11_item16_batches_in_every_codec_are_read() {
    let bootstrap = bootstrap();
    let names = Names::new("iss11-16");
    let env = Env::with_config(&names.config_toml(""));
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    for (i, codec) in codecs.iter().enumerate() {
        // Many similar records in one batch, so that the codec has something to shrink.
        let records: Vec<Record> = (0..20)
            .map(|j| stop(&format!("336123{i}{j:04}"), &format!("wamid.{codec}.{j}")))
            .collect();
        produce_with(
            &bootstrap,
            &names.inbound,
            &records,
            &[("compression.type", codec), ("linger.ms", "200")],
        )
        .await;
    }
    let svc = Service::start(&env, &bootstrap);
    let events = wait_for_events(&bootstrap, &names, 80, &svc);
    assert_eq!(svc.stop(), Some(0));
    for codec in codecs {
        let ids = distinct_events(
            &events
                .iter()
                .filter(|m| {
                    json_of(m)["source"]["message_id"]
                        .as_str()
                        .is_some_and(|id| id.starts_with(&format!("wamid.{codec}.")))
                })
                .cloned()
                .collect::<Vec<_>>(),
        );
        assert_eq!(ids.len(), 20, "every STOP of the {codec} batches");
    }
    let dead = consume_until(&bootstrap, &names.dlq, Duration::from_secs(5), |_| false);
    assert!(dead.is_empty(), "nothing dead-lettered");
}

/// An inbound topic created after the start was read only after librdkafka's 5-minute
/// metadata refresh, and `/readyz` answered 200 meanwhile, since the sent topic's partitions
/// counted. Now the service is not ready without an inbound partition, and it reads a topic
/// created later within seconds.
#[tokio::test(flavor = "multi_thread")]
async fn iss11_item17_an_inbound_topic_created_after_start_is_read_and_readyz_waits_for_it() {
    let bootstrap = bootstrap();
    let names = Names::new("iss11-17");
    let env = Env::with_config(&names.config_toml(""));
    let svc = Service::start(&env, &bootstrap);
    // The sent topic (which the service creates) is assigned; the inbound one does not exist.
    svc.wait_for_log("partitions assigned", Duration::from_secs(60));
    let (status, body) = svc.get("/readyz").expect("the API answers");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("inbound"), "{body}");

    create_topic(&bootstrap, &names.inbound, 3).await;
    produce(
        &bootstrap,
        &names.inbound,
        &[stop("33612345673", "wamid.iss11.17")],
    )
    .await;
    wait_for_events(&bootstrap, &names, 1, &svc);
    wait_until("/readyz turns 200", Duration::from_secs(30), || {
        svc.get("/readyz").is_some_and(|(s, _)| s == 200)
    })
    .await;
    assert_eq!(svc.stop(), Some(0));
}

/// The lag of each inbound partition on `/metrics`, in partition order.
fn inbound_lag(metrics: &str, topic: &str) -> Vec<i64> {
    let mut lags: Vec<(i64, i64)> = metrics
        .lines()
        .filter(|l| l.starts_with("consent_ledger_consumer_lag{"))
        .filter(|l| l.contains(&format!("topic=\"{topic}\"")))
        .filter_map(|l| {
            let partition = l.split("partition=\"").nth(1)?.split('"').next()?;
            Some((partition.parse().ok()?, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    lags.sort();
    lags.into_iter().map(|(_, lag)| lag).collect()
}

/// `consent_ledger_consumer_lag` showed 33,969 when everything had been read. Once every
/// record is committed, it reaches 0 on every inbound partition.
#[tokio::test(flavor = "multi_thread")]
async fn iss11_item18_consumer_lag_reaches_zero_once_everything_is_read() {
    let bootstrap = bootstrap();
    let names = Names::new("iss11-18");
    let env = Env::with_config(&names.config_toml(""));
    create_topic(&bootstrap, &names.inbound, 3).await;
    let records: Vec<Record> = (0..300)
        .map(|i| stop(&format!("33612{i:06}"), &format!("wamid.iss11.18.{i}")))
        .collect();
    produce_with(&bootstrap, &names.inbound, &records, &[]).await;
    let svc = Service::start(&env, &bootstrap);
    wait_for_events(&bootstrap, &names, 300, &svc);
    wait_until(
        "consumer lag 0 on the 3 inbound partitions",
        Duration::from_secs(60),
        || inbound_lag(&svc.metrics(), &names.inbound) == [0, 0, 0],
    )
    .await;
    assert_eq!(svc.stop(), Some(0));
}

/// An `invalid_contact` dead letter had no `dlq.path`, so it did not say which message of a
/// webhook failed. The second of two messages, from "12", is named by its JSON pointer; the
/// first one's STOP goes through.
#[tokio::test(flavor = "multi_thread")]
async fn iss11_item19_an_invalid_contact_dead_letter_names_the_failing_message() {
    let bootstrap = bootstrap();
    let names = Names::new("iss11-19");
    let env = Env::with_config(&names.config_toml(""));
    let mut hook: serde_json::Value = serde_json::from_str(&wa_text(
        "33612345674",
        "wamid.iss11.19.1",
        1_763_978_400,
        "STOP",
    ))
    .unwrap();
    let messages = hook["entry"][0]["changes"][0]["value"]["messages"]
        .as_array_mut()
        .unwrap();
    let mut second = messages[0].clone();
    second["from"] = "12".into();
    second["id"] = "wamid.iss11.19.2".into();
    messages.push(second);
    produce(
        &bootstrap,
        &names.inbound,
        &[(key("33612345674"), Some(hook.to_string().into_bytes()))],
    )
    .await;
    let svc = Service::start(&env, &bootstrap);
    wait_for_events(&bootstrap, &names, 1, &svc);
    let dead = consume_until(&bootstrap, &names.dlq, Duration::from_secs(60), |r| {
        !r.is_empty()
    });
    assert_eq!(svc.stop(), Some(0));
    assert_eq!(dead.len(), 1);
    assert_eq!(
        header(&dead[0], "dlq.code").as_deref(),
        Some("invalid_contact")
    );
    assert_eq!(
        header(&dead[0], "dlq.path").as_deref(),
        Some("/entry/0/changes/0/value/messages/1")
    );
    assert_eq!(
        env.status(PHONE_NUMBER_ID, "+33612345674", "marketing")["status"],
        "opted_out"
    );
}
