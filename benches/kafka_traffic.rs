//! Seeded Kafka traffic for the Kafka-mode benchmarks (`scripts/bench.sh kafka-deadletters`):
//! creates a topic and produces N WhatsApp webhooks to it, with acks=all, waiting for every
//! delivery.
//!
//!   cargo bench --bench kafka_traffic -- --bootstrap 127.0.0.1:9092 --topic inbound.bench \
//!       [--records 20000] [--partitions 3] [--bad-percent 0] [--seed 1] [--stdout]
//!
//! Good records are the ingest benchmark's mix (`webhooks`: 30% STOP variants, 15% START, 5%
//! quick replies, 5% help, 45% chat over 50,000 French mobiles). `--bad-percent P` makes
//! exactly P% of the records, spread evenly, records the service must dead-letter: half of
//! them a webhook whose sender is "12" (`invalid_contact`), a quarter a webhook cut short
//! (`invalid_json`), a quarter a Messenger page webhook (`unknown_shape`). Every record is
//! keyed `tenant:sender`, as the service's producers key them.
//!
//! The same arguments give the same bytes: the SHA-256 printed at the end covers every key
//! and value in order. The topic must not exist yet, so a measurement never reads records
//! of an earlier run. `--stdout` prints the values as JSON lines instead of producing them
//! (for `consent-ledger ingest`, or to compare two runs).

use std::io::Write;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sha2::{Digest, Sha256};

mod webhooks;

use webhooks::{Rng, PHONE_NUMBER_ID};

struct Args {
    bootstrap: String,
    topic: String,
    records: usize,
    partitions: i32,
    bad_percent: usize,
    seed: u64,
    stdout: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bootstrap: std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_default(),
        topic: String::new(),
        records: 20_000,
        partitions: 3,
        bad_percent: 0,
        seed: 1,
        stdout: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            // cargo bench passes it to every harness = false target
            "--bench" => {}
            "--stdout" => args.stdout = true,
            "--bootstrap" => args.bootstrap = value()?,
            "--topic" => args.topic = value()?,
            "--records" => args.records = number(value()?)? as usize,
            "--partitions" => args.partitions = number(value()?)? as i32,
            "--bad-percent" => args.bad_percent = number(value()?)? as usize,
            "--seed" => args.seed = number(value()?)?,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if args.bad_percent > 100 || args.partitions < 1 {
        return Err("--bad-percent is 0 to 100 and --partitions at least 1".into());
    }
    if !args.stdout && (args.bootstrap.is_empty() || args.topic.is_empty()) {
        return Err("--bootstrap (or KAFKA_BOOTSTRAP_SERVERS) and --topic are required".into());
    }
    Ok(args)
}

/// What a bad record is made of, by the reason the service gives for dead-lettering it.
#[derive(Clone, Copy)]
enum Bad {
    InvalidContact,
    InvalidJson,
    UnknownShape,
}

/// The records, in order: (key, value, the kind of bad record it is, if it is one).
fn traffic(a: &Args) -> Vec<(String, String, Option<Bad>)> {
    let mut rng = Rng::new(a.seed ^ 0x9e37_79b9_7f4a_7c15);
    (0..a.records)
        .map(|i| {
            let x = rng.next();
            let (from, message) = webhooks::message(i, x);
            // Bresenham: exactly P% bad, evenly spread over the stream.
            let bad = (i + 1) * a.bad_percent / 100 > i * a.bad_percent / 100;
            let kind = bad.then_some(match (x >> 40) & 3 {
                0 | 1 => Bad::InvalidContact,
                2 => Bad::InvalidJson,
                _ => Bad::UnknownShape,
            });
            let (from, value) = match kind {
                None => (from.clone(), webhooks::webhook(&from, &message)),
                Some(Bad::InvalidContact) => {
                    let message = message.replace(&format!(r#""from":"{from}""#), r#""from":"12""#);
                    ("12".to_string(), webhooks::webhook("12", &message))
                }
                Some(Bad::InvalidJson) => {
                    let mut cut = webhooks::webhook(&from, &message);
                    cut.truncate(cut.len() / 2);
                    (from, cut)
                }
                Some(Bad::UnknownShape) => (
                    from.clone(),
                    format!(
                        r#"{{"object":"page","entry":[{{"id":"1048375619283746","time":{},"messaging":[{{"sender":{{"id":"{from}"}},"recipient":{{"id":"1048375619283746"}},"message":{{"mid":"m_{i}","text":"STOP"}}}}]}}]}}"#,
                        1_763_978_400_000u64 + i as u64
                    ),
                ),
            };
            (format!("{PHONE_NUMBER_ID}:{from}"), value, kind)
        })
        .collect()
}

async fn create_topic(a: &Args) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .create()?;
    let topic = NewTopic::new(&a.topic, a.partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics([&topic], &opts).await? {
        match result {
            Ok(_) => {}
            Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => {
                eprintln!("kafka_traffic: topic {t} exists; pick a new name so no earlier record is measured");
                std::process::exit(2);
            }
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}

/// Produces every record, then waits for all their acknowledgements; a record the broker
/// did not take is an error, since a measurement on fewer records would be wrong.
async fn produce(a: &Args, records: &[(String, String, Option<Bad>)]) -> Result<(), KafkaError> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create()?;
    let mut deliveries = Vec::with_capacity(records.len());
    for (key, value, _) in records {
        let mut record = FutureRecord::to(&a.topic)
            .key(key.as_str())
            .payload(value.as_str());
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
    for delivery in join_all(deliveries).await {
        match delivery {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(e),
            Err(_) => return Err(KafkaError::Canceled),
        }
    }
    producer.flush(Duration::from_secs(30))
}

#[tokio::main]
async fn main() {
    let a = parse_args().unwrap_or_else(|e| {
        eprintln!("kafka_traffic: {e}");
        std::process::exit(2);
    });
    let records = traffic(&a);
    let mut digest = Sha256::new();
    let mut bad = [0usize; 3];
    for (key, value, kind) in &records {
        digest.update(key.as_bytes());
        digest.update([0]);
        digest.update(value.as_bytes());
        digest.update([0]);
        if let Some(kind) = kind {
            bad[*kind as usize] += 1;
        }
    }
    if a.stdout {
        let mut out = std::io::stdout().lock();
        for (_, value, _) in &records {
            writeln!(out, "{value}").expect("stdout");
        }
    } else {
        let started = Instant::now();
        let produced = async {
            create_topic(&a).await?;
            produce(&a, &records).await
        };
        if let Err(e) = produced.await {
            eprintln!("kafka_traffic: {}: {e}", a.topic);
            std::process::exit(1);
        }
        eprintln!(
            "kafka_traffic: {} records to {} ({} partitions) in {:.2} s",
            a.records,
            a.topic,
            a.partitions,
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "kafka_traffic: seed {}, {} bad ({} invalid_contact, {} invalid_json, {} unknown_shape), sha256 {}",
        a.seed,
        bad.iter().sum::<usize>(),
        bad[0],
        bad[1],
        bad[2],
        hex::encode(digest.finalize())
    );
}
