//! Seeded Kafka traffic for the Kafka-mode benchmarks (`scripts/bench.sh kafka-deadletters`):
//! creates a topic and produces N WhatsApp webhooks to it, with acks=all, waiting for every
//! delivery.
//!
//!   cargo bench --bench kafka_traffic -- --bootstrap 127.0.0.1:9092 --topic inbound.bench \
//!       [--records 20000] [--partitions 3] [--bad-percent 0] [--seed 1] [--rate R] [--stdout]
//!       [--mix consent|chat|stops]
//!
//! Good records are one of the mixes of `webhooks` (default `consent`: 30% STOP variants,
//! 15% START, 5% quick replies, 5% help, 45% chat over 50,000 French mobiles; `chat`: 2%
//! consent keywords over 200,000 mobiles, the traffic of issue 13; `stops`: every record a
//! STOP from a new number). `--bad-percent P` makes
//! exactly P% of the records, spread evenly, records the service must dead-letter: half of
//! them a webhook whose sender is "12" (`invalid_contact`), a quarter a webhook cut short
//! (`invalid_json`), a quarter a Messenger page webhook (`unknown_shape`). Every record is
//! keyed `tenant:sender`, as the service's producers key them.
//!
//! The same arguments give the same bytes: the SHA-256 printed at the end covers every key
//! and value in order. The topic must not exist yet, so a measurement never reads records
//! of an earlier run. `--stdout` prints the values as JSON lines instead of producing them
//! (for `consent-ledger ingest`, or to compare two runs). `--rate R` paces the production at
//! R records/s (a burst for `scripts/bench.sh kafka-burst`); without it, as fast as the
//! broker takes them. Records are generated as they are sent, so a burst of millions holds
//! only the unacknowledged ones in memory.

use std::io::Write;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use sha2::{Digest, Sha256};

mod webhooks;

use webhooks::{Mix, Rng, PHONE_NUMBER_ID};

struct Args {
    bootstrap: String,
    topic: String,
    records: usize,
    partitions: i32,
    bad_percent: usize,
    seed: u64,
    /// Records per second, when paced.
    rate: Option<f64>,
    stdout: bool,
    mix: Mix,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bootstrap: std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_default(),
        topic: String::new(),
        records: 20_000,
        partitions: 3,
        bad_percent: 0,
        seed: 1,
        rate: None,
        stdout: false,
        mix: Mix::Consent,
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
            "--mix" => args.mix = value()?.parse()?,
            "--rate" => args.rate = Some(number(value()?)?.max(1) as f64),
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

/// One record: key, value, and the kind of bad record it is, if it is one.
type Generated = (String, String, Option<Bad>);

/// The records, in order, generated one at a time.
fn traffic(a: &Args) -> impl Iterator<Item = Generated> + '_ {
    let mut rng = Rng::new(a.seed ^ 0x9e37_79b9_7f4a_7c15);
    (0..a.records).map(move |i| {
        let x = rng.next();
        let (from, message) = a.mix.message(i, x);
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
}

/// What the records were: their digest and how many of each bad kind.
#[derive(Default)]
struct Tally {
    digest: Sha256,
    bad: [usize; 3],
}

impl Tally {
    fn add(&mut self, (key, value, kind): &Generated) {
        self.digest.update(key.as_bytes());
        self.digest.update([0]);
        self.digest.update(value.as_bytes());
        self.digest.update([0]);
        if let Some(kind) = kind {
            self.bad[*kind as usize] += 1;
        }
    }
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

/// Acknowledgements awaited together; a burst of millions never holds more than the
/// unacknowledged ones.
const ACK_CHUNK: usize = 10_000;

/// Produces every record (at `--rate`, if given), then waits for all their
/// acknowledgements; a record the broker did not take is an error, since a measurement on
/// fewer records would be wrong.
async fn produce(a: &Args, tally: &mut Tally) -> Result<(), KafkaError> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create()?;
    let started = Instant::now();
    let mut chunks = Vec::new();
    let mut deliveries = Vec::with_capacity(ACK_CHUNK);
    for (i, generated) in traffic(a).enumerate() {
        tally.add(&generated);
        if let Some(rate) = a.rate.filter(|_| i % 100 == 0) {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let (key, value, _) = &generated;
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
        if deliveries.len() == ACK_CHUNK {
            chunks.push(tokio::spawn(acknowledged(std::mem::take(&mut deliveries))));
        }
    }
    chunks.push(tokio::spawn(acknowledged(deliveries)));
    let sent = started.elapsed().as_secs_f64();
    for chunk in join_all(chunks).await {
        chunk.map_err(|_| KafkaError::Canceled)??;
    }
    producer.flush(Duration::from_secs(30))?;
    eprintln!(
        "kafka_traffic: sent in {sent:.2} s ({:.0} records/s), all acknowledged after {:.2} s",
        a.records as f64 / sent,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn acknowledged(deliveries: Vec<DeliveryFuture>) -> Result<(), KafkaError> {
    for delivery in join_all(deliveries).await {
        match delivery {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(e),
            Err(_) => return Err(KafkaError::Canceled),
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let a = parse_args().unwrap_or_else(|e| {
        eprintln!("kafka_traffic: {e}");
        std::process::exit(2);
    });
    let mut tally = Tally::default();
    if a.stdout {
        let mut out = std::io::stdout().lock();
        for generated in traffic(&a) {
            tally.add(&generated);
            writeln!(out, "{}", generated.1).expect("stdout");
        }
    } else {
        let started = Instant::now();
        let produced = async {
            create_topic(&a).await?;
            produce(&a, &mut tally).await
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
        tally.bad.iter().sum::<usize>(),
        tally.bad[0],
        tally.bad[1],
        tally.bad[2],
        hex::encode(tally.digest.finalize())
    );
}
