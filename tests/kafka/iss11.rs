//! Issue 11's Kafka-mode findings, what a hostile producer found, each against the real broker
//! and named after the failure it pins.

use std::time::Duration;

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
