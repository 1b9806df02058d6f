//! Kafka mode (`consent-ledger run`): the inbound topic is the source, the ledger's outbox
//! feeds `consent.events` and `outbound.messages`, rejects go to the dead-letter topic. The
//! stages between are the same as file mode; see [`batcher`] for the commit protocol.

pub mod batcher;
pub mod relay;
pub mod settings;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientContext;
use tokio::sync::watch;

use self::batcher::{Batcher, FlushError};
use self::relay::Relay;
use self::settings::KafkaConfig;
use crate::config::Settings;
use crate::ledger::Ledger;
use crate::metrics::{Metrics, PartitionLabels};

#[derive(Debug, thiserror::Error)]
pub enum KafkaModeError {
    #[error("invalid Kafka settings: {0}")]
    Config(String),
    #[error("Kafka client error: {0}")]
    Client(#[from] KafkaError),
    #[error(transparent)]
    Flush(#[from] FlushError),
}

/// Rebalance hooks: drain and commit before partitions go, report readiness when they come.
struct Ctx {
    batcher: Arc<Mutex<Option<Batcher>>>,
    ready: Arc<AtomicBool>,
    failed: Arc<Mutex<Option<FlushError>>>,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(
                partitions = tpl.count(),
                "partitions revoked; committing the batch in flight"
            );
            let mut guard = self.batcher.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(batcher) = guard.as_mut() {
                if let Err(e) = batcher.flush(consumer) {
                    tracing::error!(error = %e, "could not commit the batch in flight on revoke");
                    *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
            }
            self.ready.store(false, Ordering::SeqCst);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}[{}]", e.topic(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?parts, "partitions assigned");
                self.ready.store(!parts.is_empty(), Ordering::SeqCst);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance error"),
        }
    }
}

fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.bootstrap_servers);
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    c
}

/// Creates the topics the service writes to, retrying while the brokers are unreachable.
async fn ensure_topics(
    k: &KafkaConfig,
    stop: &watch::Receiver<bool>,
) -> Result<i32, KafkaModeError> {
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
                NewTopic::new(
                    t,
                    k.partitions,
                    TopicReplication::Fixed(k.replication_factor),
                )
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

fn producer(k: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    client_config(k)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
}

/// Runs the consumer and the outbox relay until `stop` turns true, then drains and returns.
pub async fn run(
    k: KafkaConfig,
    settings: Arc<Settings>,
    ledger: Arc<Ledger>,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), KafkaModeError> {
    k.validate().map_err(KafkaModeError::Config)?;
    tracing::info!(bootstrap_servers = %k.bootstrap_servers, group_id = %k.group_id, topic = %k.topics.inbound, "starting Kafka consumer");
    let consent_partitions = ensure_topics(&k, &stop).await?;
    let relay = Relay {
        ledger: ledger.clone(),
        producer: producer(&k)?,
        topics: k.topics.clone(),
        consent_partitions,
        metrics: metrics.clone(),
    };
    let (relay_stop_tx, relay_stop) = watch::channel(false);
    let relay_task = tokio::spawn(relay.run(relay_stop, Duration::from_secs(15)));

    let batcher = Arc::new(Mutex::new(Some(Batcher {
        ledger: ledger.clone(),
        settings,
        metrics: metrics.clone(),
        producer: producer(&k)?,
        dead_letter_topic: k.topics.dead_letter.clone(),
        pending: Vec::new(),
        summary: Default::default(),
        committed: BTreeMap::new(),
    })));
    let failed = Arc::new(Mutex::new(None));
    let ctx = Ctx {
        batcher: batcher.clone(),
        ready: ready.clone(),
        failed: failed.clone(),
    };
    let consumer: StreamConsumer<Ctx> = client_config(&k)
        .set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create_with_context(ctx)?;
    consumer.subscribe(&[&k.topics.inbound, &k.topics.sent])?;

    let linger = Duration::from_millis(k.linger_ms);
    let mut batch_started: Option<Instant> = None;
    let mut last_lag = Instant::now();
    let result: Result<(), KafkaModeError> = loop {
        if let Some(e) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            break Err(e.into());
        }
        let wait = match batch_started {
            Some(t) => linger.saturating_sub(t.elapsed()),
            None => Duration::from_millis(500),
        };
        tokio::select! {
            _ = stop.changed() => {
                if *stop.borrow() {
                    break Ok(());
                }
            }
            received = tokio::time::timeout(wait, consumer.recv()) => match received {
                Ok(Ok(m)) => {
                    let mut guard = batcher.lock().unwrap_or_else(|p| p.into_inner());
                    let b = guard.as_mut().expect("batcher lives until shutdown");
                    b.pending.push(m.detach());
                    batch_started.get_or_insert_with(Instant::now);
                    if b.pending.len() < k.batch_size {
                        continue;
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error; librdkafka retries by itself");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => {}
            }
        }
        let flushed = {
            let mut guard = batcher.lock().unwrap_or_else(|p| p.into_inner());
            let b = guard.as_mut().expect("batcher lives until shutdown");
            tokio::task::block_in_place(|| b.flush(&consumer))
        };
        if let Err(e) = flushed {
            break Err(e.into());
        }
        batch_started = None;
        if last_lag.elapsed() > Duration::from_secs(5) {
            last_lag = Instant::now();
            update_lag(&consumer, &batcher, &metrics);
        }
    };

    // Shutdown: finish the batch in flight, commit it, leave the group, drain the outbox.
    let drained = {
        let mut guard = batcher.lock().unwrap_or_else(|p| p.into_inner());
        let mut b = guard.take().expect("batcher lives until shutdown");
        let flushed = if result.is_ok() {
            tokio::task::block_in_place(|| b.flush(&consumer))
        } else {
            Ok(0)
        };
        tracing::info!(summary = ?b.summary, "consumer stopping");
        flushed
    };
    consumer.unsubscribe();
    drop(consumer);
    ready.store(false, Ordering::SeqCst);
    let _ = relay_stop_tx.send(true);
    let _ = relay_task.await;
    result?;
    drained?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Lag per assigned partition: high watermark minus the next offset we committed.
fn update_lag(
    consumer: &StreamConsumer<Ctx>,
    batcher: &Arc<Mutex<Option<Batcher>>>,
    metrics: &Metrics,
) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let committed = match batcher.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some(b) => b.committed.clone(),
        None => return,
    };
    for e in assignment.elements() {
        if let Ok((_, high)) =
            consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_millis(500))
        {
            let next = committed
                .get(&(e.topic().to_string(), e.partition()))
                .copied()
                .unwrap_or(0);
            metrics
                .consumer_lag
                .get_or_create(&PartitionLabels {
                    topic: e.topic().to_string(),
                    partition: e.partition(),
                })
                .set((high - next).max(0));
        }
    }
}
