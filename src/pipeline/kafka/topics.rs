//! The topics the service writes to, created at start while the brokers come up.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use tokio::sync::watch;

use super::KafkaModeError;
use crate::config::KafkaConfig;

pub(super) fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.bootstrap_servers);
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    c
}

/// `retention.ms` for `days` (0: none set, the broker's default applies).
fn retention_ms(days: u32) -> Option<String> {
    (days > 0).then(|| (u64::from(days) * 24 * 60 * 60 * 1000).to_string())
}

/// Creates the topics the service writes to, retrying while the brokers are unreachable.
/// `consent.events` and the dead-letter topic get a retention (`consent_events_retention_days`,
/// `dead_letter_days`): both carry personal data. Existing topics are left as they are.
pub(super) async fn ensure_topics(
    k: &KafkaConfig,
    dead_letter_days: u32,
    stop: &watch::Receiver<bool>,
) -> Result<i32, KafkaModeError> {
    let events_ms = retention_ms(k.consent_events_retention_days);
    let dead_letter_ms = retention_ms(dead_letter_days);
    let admin: AdminClient<DefaultClientContext> = client_config(k).create()?;
    let mut backoff = Duration::from_millis(500);
    loop {
        if *stop.borrow() {
            return Ok(k.partitions);
        }
        let result = if k.create_topics {
            let topics: Vec<NewTopic<'_>> = [
                &k.topics.sent,
                &k.topics.consent_events,
                &k.topics.outbound,
                &k.topics.dead_letter,
            ]
            .into_iter()
            .map(|t| {
                let topic = NewTopic::new(
                    t,
                    k.partitions,
                    TopicReplication::Fixed(k.replication_factor),
                );
                let retention = if *t == k.topics.consent_events {
                    events_ms.as_deref()
                } else if *t == k.topics.dead_letter {
                    dead_letter_ms.as_deref()
                } else {
                    None
                };
                match retention {
                    Some(ms) => topic.set("retention.ms", ms),
                    None => topic,
                }
            })
            .collect();
            let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
            admin.create_topics(&topics, &opts).await.map(|results| {
                for r in results {
                    match r {
                        Ok(t) => tracing::info!(topic = %t, "topic created"),
                        Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => {
                            tracing::debug!(topic = %t, "topic exists")
                        }
                        Err((t, code)) => {
                            tracing::warn!(topic = %t, error = %code, "could not create topic")
                        }
                    }
                }
            })
        } else {
            Ok(())
        };
        let metadata = result.and_then(|_| {
            admin
                .inner()
                .fetch_metadata(Some(&k.topics.consent_events), Duration::from_secs(10))
        });
        match metadata {
            Ok(md) => {
                let n = md
                    .topics()
                    .first()
                    .map(|t| t.partitions().len() as i32)
                    .unwrap_or(0);
                if n > 0 {
                    return Ok(n);
                }
                tracing::warn!(topic = %k.topics.consent_events, "topic has no partitions yet; retrying");
            }
            Err(e) => tracing::error!(
                bootstrap_servers = %k.bootstrap_servers,
                error = %e,
                retry_in_ms = backoff.as_millis() as u64,
                "cannot reach the Kafka brokers; retrying"
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

pub(super) fn producer(k: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    client_config(k)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
}
