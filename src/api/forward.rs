//! Scale-out's writes through the API: a decision the API or an import received goes onto
//! the inbound topic as a `{"type":"consent",…}` record, keyed like the person's messages,
//! and the instance that owns its partition writes it on that chain, so each chain keeps one
//! writer. The answer is `202 Accepted` once the broker has the record (`acks=all`): it is
//! then as durable as any message waiting in the topic. An import's rows go in one Kafka
//! transaction, so that it is taken whole or not at all. An erasure travels the same way.

use std::sync::Mutex;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::api::problem::Problem;
use crate::config::KafkaConfig;
use crate::domain::contact::Contact;
use crate::domain::decide::ConsentRecord;
use crate::domain::event::Erasure;
use crate::domain::inbound::{ConsentWire, EraseWire};
use crate::domain::tenant::TenantId;
use crate::ledger::Ledger;

/// How long a forward may wait for the broker: the client gets a 503 after it and retries.
const MESSAGE_TIMEOUT_MS: &str = "10000";
const TXN_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Forward {
    producer: FutureProducer,
    /// For imports; one transaction at a time.
    transactional: Mutex<Option<FutureProducer>>,
    config: KafkaConfig,
    transactional_id: String,
    inbound: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the broker did not take the record: {0}")]
pub struct ForwardError(String);

impl ForwardError {
    /// 503 with `Retry-After`; `undone` says what did not happen (the client sends again).
    pub fn problem(&self, undone: &str) -> Problem {
        Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "broker-unavailable",
            "Broker unavailable",
            format!("{self}; {undone}, send the request again"),
        )
        .with_retry_after(1)
    }
}

/// Asks `check` whenever this instance's ledger commits (and every 100 ms) until it answers
/// or `wait` runs out: how `?wait=SECONDS` waits for a forwarded write to reach the view.
pub async fn wait_for<T, F, Fut>(
    ledger: &Ledger,
    wait: Duration,
    mut check: F,
) -> Result<Option<T>, Problem>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, Problem>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let mut commits = ledger.subscribe();
    loop {
        if let Some(found) = check().await? {
            return Ok(Some(found));
        }
        tokio::select! {
            _ = commits.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            () = tokio::time::sleep_until(deadline) => return Ok(None),
        }
    }
}

impl From<KafkaError> for ForwardError {
    fn from(e: KafkaError) -> Self {
        ForwardError(e.to_string())
    }
}

impl Forward {
    /// `instance`: this instance's id, whose transactional id with `.api` is the imports'.
    pub fn new(k: &KafkaConfig, instance: &str) -> Result<Forward, KafkaError> {
        Ok(Forward {
            producer: config(k).set("linger.ms", "1").create()?,
            transactional: Mutex::new(None),
            config: k.clone(),
            transactional_id: format!("{}.{instance}.api", k.group_id),
            inbound: k.topics.inbound.clone(),
        })
    }

    /// One decision onto the inbound topic; returns once the broker has it.
    pub async fn one(&self, tenant: &TenantId, record: &ConsentRecord) -> Result<(), ForwardError> {
        let (key, payload) = encode(tenant, record);
        self.send(&key, &payload).await
    }

    async fn send(&self, key: &str, payload: &[u8]) -> Result<(), ForwardError> {
        self.producer
            .send(
                FutureRecord::to(&self.inbound)
                    .key(key.as_bytes())
                    .payload(payload),
                Timeout::After(Duration::ZERO),
            )
            .await
            .map_err(|(e, _)| ForwardError::from(e))?;
        Ok(())
    }

    /// An erasure onto the inbound topic; returns once the broker has it.
    pub async fn erase(
        &self,
        tenant: &TenantId,
        contact: &Contact,
        erasure: &Erasure,
    ) -> Result<(), ForwardError> {
        let wire = EraseWire {
            kind: "erase".into(),
            tenant: tenant.to_string(),
            contact: contact.as_str().to_string(),
            requested_by: erasure.requested_by.clone(),
            reason: erasure.reason.clone(),
            request_id: uuid::Uuid::new_v4(),
        };
        let key = format!("{tenant}:{}", contact.as_str());
        let payload = serde_json::to_vec(&wire).expect("plain struct");
        self.send(&key, &payload).await
    }

    /// Tombstones `records` on the key topic (their keys, [`crate::ledger::Ledger::key_records`]):
    /// keys destroyed here (the retention of message texts) are then gone for every instance,
    /// and for any rebuilt from Kafka.
    pub async fn tombstone_keys(&self, records: &[Vec<u8>]) -> Result<(), ForwardError> {
        let sends = records.iter().map(|record| {
            self.producer.send(
                FutureRecord::<[u8], [u8]>::to(&self.config.topics.keys).key(record.as_slice()),
                Timeout::After(Duration::ZERO),
            )
        });
        for sent in join_all(sends).await {
            sent.map_err(|(e, _)| ForwardError::from(e))?;
        }
        Ok(())
    }

    /// Every decision onto the inbound topic in one transaction: all of them or none. Blocks;
    /// call it off the async threads.
    pub fn all(&self, tenant: &TenantId, records: &[ConsentRecord]) -> Result<(), ForwardError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut slot = self.transactional.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let p: FutureProducer = config(&self.config)
                .set("transactional.id", &self.transactional_id)
                .set("linger.ms", "5")
                .create()?;
            p.init_transactions(TXN_TIMEOUT)?;
            *slot = Some(p);
        }
        let p = slot.as_ref().expect("set above");
        let sent = (|| {
            p.begin_transaction()?;
            let sends: Vec<_> = records
                .iter()
                .map(|r| {
                    let (key, payload) = encode(tenant, r);
                    p.send_result(
                        FutureRecord::to(&self.inbound)
                            .key(key.as_bytes())
                            .payload(payload.as_slice()),
                    )
                    .map_err(|(e, _)| e)
                })
                .collect::<Result<_, _>>()?;
            for delivered in futures::executor::block_on(join_all(sends)) {
                match delivered {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => return Err(e),
                    Err(_) => return Err(KafkaError::Canceled),
                }
            }
            p.commit_transaction(TXN_TIMEOUT)
        })();
        if let Err(e) = sent {
            if p.abort_transaction(TXN_TIMEOUT).is_err() {
                // A producer whose transaction cannot be aborted is made again next time.
                *slot = None;
            }
            return Err(e.into());
        }
        Ok(())
    }
}

fn config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.bootstrap_servers);
    c.set("message.timeout.ms", MESSAGE_TIMEOUT_MS);
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    c.set("enable.idempotence", "true").set("acks", "all");
    c
}

/// The record's Kafka key (the person's, as the feed keys it) and value.
fn encode(tenant: &TenantId, record: &ConsentRecord) -> (String, Vec<u8>) {
    let key = format!("{tenant}:{}", record.contact.as_str());
    let payload = serde_json::to_vec(&ConsentWire::of(tenant, record)).expect("plain struct");
    (key, payload)
}
