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

/// Scale-out's producer: transactional under `group_id.instance`. A transaction left open by
/// a killed instance holds back every read-committed reader of its partitions until the
/// broker aborts it, so `transaction.timeout.ms` defaults to 10 s here, not librdkafka's 60.
pub(super) fn transactional_producer(
    k: &KafkaConfig,
    instance: &str,
) -> Result<FutureProducer, KafkaError> {
    let mut c = client_config(k);
    c.set("transactional.id", format!("{}.{instance}", k.group_id))
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    if !k.properties.contains_key("transaction.timeout.ms") {
        c.set("transaction.timeout.ms", "10000");
    }
    c.create()
}

pub(super) fn producer(k: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    client_config(k)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
}

/// How long a destroyed data key may stay readable in `consent.keys`: the broker compacts the
/// tombstone's segment within this bound (README, "Scale-out").
const KEYS_MAX_COMPACTION_LAG_MS: &str = "86400000";

/// Scale-out's topics: the record topic with as many partitions as the inbound topic (each
/// inbound partition's chain on the same partition number), and the compacted key topic.
/// Returns the record topic's partition count, or refuses a record topic whose count differs
/// from the inbound topic's: its chains could not follow the inbound partitions.
pub(super) async fn ensure_record_topics(
    k: &KafkaConfig,
    stop: &watch::Receiver<bool>,
) -> Result<i32, KafkaModeError> {
    let admin: AdminClient<DefaultClientContext> = client_config(k).create()?;
    let t = &k.topics;
    let mut backoff = Duration::from_millis(500);
    loop {
        if *stop.borrow() {
            return Ok(k.partitions);
        }
        match record_topics_once(k, &admin).await {
            Ok(Some(n)) => return Ok(n),
            Ok(None) => {
                tracing::warn!(topic = %t.inbound, "waiting for the inbound topic to exist")
            }
            Err(e @ KafkaModeError::PartitionMismatch { .. }) => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot set up the record topics; retrying")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// One attempt: `None` while the inbound topic does not exist (and is not ours to create).
async fn record_topics_once(
    k: &KafkaConfig,
    admin: &AdminClient<DefaultClientContext>,
) -> Result<Option<i32>, KafkaModeError> {
    let t = &k.topics;
    let replication = || TopicReplication::Fixed(k.replication_factor);
    if k.create_topics {
        create(
            admin,
            NewTopic::new(&t.inbound, k.partitions, replication()),
        )
        .await?;
    }
    let inbound = partitions(admin, &t.inbound)?;
    if inbound == 0 {
        return Ok(None);
    }
    if k.create_topics {
        let ledger = NewTopic::new(&t.ledger, inbound, replication())
            .set("cleanup.policy", "delete")
            .set("retention.ms", "-1")
            .set("retention.bytes", "-1");
        create(admin, ledger).await?;
        let keys = NewTopic::new(&t.keys, 1, replication())
            .set("cleanup.policy", "compact")
            .set("max.compaction.lag.ms", KEYS_MAX_COMPACTION_LAG_MS)
            .set("min.cleanable.dirty.ratio", "0.1");
        create(admin, keys).await?;
    }
    let ledger = partitions(admin, &t.ledger)?;
    if ledger == 0 || !has_leaders(admin, &t.ledger)? || !has_leaders(admin, &t.keys)? {
        return Ok(None);
    }
    if ledger != inbound {
        return Err(KafkaModeError::PartitionMismatch {
            ledger: t.ledger.clone(),
            ledger_partitions: ledger,
            inbound: t.inbound.clone(),
            inbound_partitions: inbound,
        });
    }
    Ok(Some(ledger))
}

/// Creates `topic` unless it exists.
async fn create(
    admin: &AdminClient<DefaultClientContext>,
    topic: NewTopic<'_>,
) -> Result<(), KafkaError> {
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin.create_topics(&[topic], &opts).await? {
        match r {
            Ok(t) => tracing::info!(topic = %t, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => tracing::warn!(topic = %t, error = %code, "could not create topic"),
        }
    }
    Ok(())
}

/// Whether every partition of `topic` exists and has a leader: a topic another instance
/// created a moment ago may not, and reading its offsets would fail.
fn has_leaders(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Result<bool, KafkaError> {
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(md.topics().first().is_some_and(|t| {
        t.error().is_none()
            && !t.partitions().is_empty()
            && t.partitions()
                .iter()
                .all(|p| p.error().is_none() && p.leader() >= 0)
    }))
}

/// The partition count of `topic` (0: it does not exist).
pub(super) fn partitions(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<i32, KafkaError> {
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(md
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map_or(0, |t| t.partitions().len() as i32))
}
