//! `run`: webhook records go onto the inbound topic, where the consumer reads them like any
//! other record, and the 200 waits for the broker's acknowledgement (`acks=all`, idempotent
//! producer). What the receiver set apart goes to the dead-letter topic with the `dlq.*`
//! headers the consumer's dead letters carry. A broker that does not acknowledge within
//! `message.timeout.ms` (10 s unless `[kafka.properties]` sets it) fails the delivery: the
//! provider gets a 503 and retries.

use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use super::{Delivered, Part, Provider, Unavailable};
use crate::config::KafkaConfig;
use crate::metrics::{Metrics, ReasonLabels};
use crate::pipeline::Rejection;

/// How long a delivery may wait for the broker unless `message.timeout.ms` says otherwise:
/// well under Meta's and Twilio's own timeouts (15 s and more), so they get the 503.
const DEFAULT_MESSAGE_TIMEOUT_MS: &str = "10000";

pub(super) struct KafkaSink {
    producer: FutureProducer,
    inbound: String,
    dead_letter: String,
    metrics: Metrics,
}

impl KafkaSink {
    pub fn new(k: &KafkaConfig, metrics: Metrics) -> Result<KafkaSink, KafkaError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &k.bootstrap_servers);
        c.set("message.timeout.ms", DEFAULT_MESSAGE_TIMEOUT_MS);
        for (key, value) in &k.properties {
            c.set(key, value);
        }
        let producer = c
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // A webhook waits for its own record: batching it with later ones only delays it.
            .set("linger.ms", "1")
            .create()?;
        Ok(KafkaSink {
            producer,
            inbound: k.topics.inbound.clone(),
            dead_letter: k.topics.dead_letter.clone(),
            metrics,
        })
    }

    pub async fn deliver(
        &self,
        provider: Provider,
        parts: Vec<Part>,
    ) -> Result<Delivered, Unavailable> {
        let rejected_at = Utc::now().to_rfc3339();
        let sends = parts.iter().map(|part| {
            let record = match part {
                Part::Record { key, bytes } => FutureRecord::to(&self.inbound)
                    .key(key.as_bytes())
                    .payload(bytes.as_slice()),
                Part::Unusable { bytes, rejection } => FutureRecord::to(&self.dead_letter)
                    .payload(bytes.as_slice())
                    .headers(headers(provider, rejection, &rejected_at)),
            };
            self.producer.send(record, Timeout::After(Duration::ZERO))
        });
        let mut delivered = Delivered::default();
        for (part, sent) in parts.iter().zip(join_all(sends).await) {
            if let Err((e, _)) = sent {
                return Err(Unavailable::Broker(e.to_string()));
            }
            match part {
                Part::Record { .. } => delivered.records += 1,
                Part::Unusable { rejection, .. } => {
                    delivered.dead_lettered += 1;
                    self.count(provider, rejection);
                }
            }
        }
        Ok(delivered)
    }

    fn count(&self, provider: Provider, rejection: &Rejection) {
        tracing::warn!(
            provider = provider.as_str(),
            code = rejection.error.code(),
            topic = %self.dead_letter,
            "webhook record dead-lettered"
        );
        self.metrics
            .dead_lettered
            .get_or_create(&ReasonLabels {
                reason: rejection.error.code().to_string(),
            })
            .inc();
    }
}

/// The consumer's `dlq.*` headers, with `dlq.source` naming the webhook instead of a topic
/// position.
fn headers(provider: Provider, rejection: &Rejection, rejected_at: &str) -> OwnedHeaders {
    let reason = rejection.error.to_string();
    let mut h = OwnedHeaders::new();
    for (key, value) in [
        ("dlq.reason", Some(reason.as_str())),
        ("dlq.code", Some(rejection.error.code())),
        ("dlq.source", Some(provider.source())),
        ("dlq.rejected_at", Some(rejected_at)),
        ("dlq.path", rejection.path.as_deref()),
    ] {
        if let Some(value) = value {
            h = h.insert(Header {
                key,
                value: Some(value),
            });
        }
    }
    h
}
