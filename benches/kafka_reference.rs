//! Reference B of `scripts/bench.sh throughput`: the least a Rust service reading the inbound
//! topic must do. It consumes with `run`'s consumer settings (the same librdkafka, a fresh
//! group, manual commits off, the bounded channel left out) and decodes each value into a
//! `serde_json::Value`, and nothing else: no classification, no ledger, no offsets.
//!
//!   cargo bench --bench kafka_reference -- --bootstrap HOST:PORT --topic T --records N
//!
//! It prints one line, `reference-b N records in S s`, timed from the first assignment of a
//! partition to the N-th record, as the script times `run` from its `/readyz`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::ClientContext;

/// Notes when the first partition is assigned: the start of the measurement.
struct Assigned(Arc<Mutex<Option<Instant>>>);

impl ClientContext for Assigned {}

impl ConsumerContext for Assigned {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if tpl.count() > 0 {
                let mut at = self.0.lock().unwrap_or_else(|p| p.into_inner());
                at.get_or_insert_with(Instant::now);
            }
        }
    }
}

fn main() {
    let mut bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_default();
    let (mut topic, mut records) = (String::new(), 0usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--bench" => {}
            "--bootstrap" => bootstrap = it.next().unwrap_or_default(),
            "--topic" => topic = it.next().unwrap_or_default(),
            "--records" => records = it.next().and_then(|n| n.parse().ok()).unwrap_or(0),
            _ => {
                eprintln!("kafka_reference: unknown argument {flag}");
                std::process::exit(2);
            }
        }
    }
    if bootstrap.is_empty() || topic.is_empty() || records == 0 {
        eprintln!("kafka_reference: --bootstrap, --topic and --records N (> 0) are required");
        std::process::exit(2);
    }
    let assigned = Arc::new(Mutex::new(None));
    // `run`'s settings (src/pipeline/kafka/mod.rs), with a group of its own.
    let consumer: BaseConsumer<Assigned> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("group.id", format!("reference-b-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000")
        .create_with_context(Assigned(assigned.clone()))
        .unwrap_or_else(|e| {
            eprintln!("kafka_reference: {e}");
            std::process::exit(1);
        });
    consumer.subscribe(&[&topic]).expect("subscribe");
    let (mut read, mut decoded) = (0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(900);
    while read < records {
        if Instant::now() > deadline {
            eprintln!("kafka_reference: {read} of {records} records after 900 s");
            std::process::exit(1);
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                read += 1;
                let value: Option<serde_json::Value> =
                    m.payload().and_then(|p| serde_json::from_slice(p).ok());
                decoded += usize::from(value.is_some());
            }
            Some(Err(e)) => eprintln!("kafka_reference: {e}"),
            None => {}
        }
    }
    let started = assigned
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or_else(Instant::now);
    println!(
        "reference-b {read} records in {:.3} s ({decoded} decoded)",
        started.elapsed().as_secs_f64()
    );
}
