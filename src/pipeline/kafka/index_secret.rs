//! Scale-out's one index secret: every index row and sealed field names an identifier by its
//! keyed hash, so instances that took each other's rows with different secrets would look
//! for a STOP under a hash nobody wrote. The first instance of a deployment puts its secret
//! (wrapped under the master key every instance shares) on the key topic; every other one
//! takes it before it reads anything, or refuses to start when its ledger already holds data
//! under another.
//!
//! Two first instances starting together may both write theirs: each record's key is
//! `index/` and a digest of its bytes, so compaction keeps both, and the first in the
//! partition is the deployment's for everyone.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use sha2::{Digest, Sha256};

use super::record::INDEX_KEY_PREFIX;
use super::KafkaModeError;
use crate::config::KafkaConfig;
use crate::ledger::Ledger;

/// Makes this ledger's index secret the deployment's.
pub(super) async fn share(k: &KafkaConfig, ledger: &Ledger) -> Result<(), KafkaModeError> {
    for attempt in 0..2 {
        if let Some(wrapped) = first_on_topic(k)? {
            if ledger.same_index_secret(&wrapped).map_err(err)? {
                return Ok(());
            }
            if ledger.is_fresh().map_err(err)? {
                ledger.adopt_index_secret(&wrapped).map_err(err)?;
                tracing::info!("took the deployment's index secret from the key topic");
                return Ok(());
            }
            return Err(KafkaModeError::IndexSecret(k.topics.keys.clone()));
        }
        if attempt == 0 {
            let ours = ledger.wrapped_index_secret().map_err(err)?;
            let key = format!(
                "{INDEX_KEY_PREFIX}{}",
                hex::encode(&Sha256::digest(&ours)[..8])
            );
            super::topics::producer(k)?
                .send(
                    FutureRecord::to(&k.topics.keys)
                        .partition(0)
                        .key(key.as_bytes())
                        .payload(ours.as_slice()),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)?;
            tracing::info!("published this ledger's index secret as the deployment's");
        }
    }
    Err(KafkaModeError::IndexSecret(k.topics.keys.clone()))
}

/// The first index secret record of the key topic's partition 0, read committed.
fn first_on_topic(k: &KafkaConfig) -> Result<Option<Vec<u8>>, KafkaModeError> {
    let consumer: BaseConsumer = super::topics::client_config(k)
        .set("group.id", format!("{}.index-secret", k.group_id))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()?;
    let (low, high) = consumer.fetch_watermarks(&k.topics.keys, 0, Duration::from_secs(10))?;
    if high <= low {
        return Ok(None);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&k.topics.keys, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                if m.key()
                    .is_some_and(|k| k.starts_with(INDEX_KEY_PREFIX.as_bytes()))
                {
                    return Ok(m.payload().map(<[u8]>::to_vec));
                }
                if m.offset() + 1 >= high {
                    return Ok(None);
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return Ok(None),
            Some(Err(e)) => tracing::warn!(error = %e, "reading the key topic; retrying"),
            None => {}
        }
    }
    Err(KafkaModeError::Client(rdkafka::error::KafkaError::Canceled))
}

fn err(e: crate::ledger::LedgerError) -> KafkaModeError {
    KafkaModeError::Commit(e.into())
}
