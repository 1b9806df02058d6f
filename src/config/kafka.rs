//! The `[kafka]` table of the config file, with environment overrides for what differs per
//! deployment (brokers, group, credentials) so one config file serves every environment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list. Env: `KAFKA_BOOTSTRAP_SERVERS`.
    pub bootstrap_servers: String,
    /// Consumer group shared by every instance. Env: `CONSENT_LEDGER_GROUP_ID`.
    pub group_id: String,
    pub topics: Topics,
    /// Records per ledger batch (one atomic write + fsync, then one offset commit), at
    /// most. On a backlog every batch is full, and each pays a fsync and an offset commit
    /// whatever its size: 2,000 records took 1,000,000 webhooks in 16 s where 500 took
    /// 22 s (BENCHMARKS.md, "Kafka throughput"). On a live stream `linger_ms` closes batches
    /// long before they fill.
    pub batch_size: usize,
    /// How long a batch waits for more records after its first before it is committed. A
    /// STOP is visible on the API once its batch commits, so this is most of a STOP's latency:
    /// at 5,000 messages/s, 5 ms gives p99 17 to 22 ms and costs nothing on a backlog; on the
    /// earlier sled ledger 50 ms gave 106 to 108 ms, for about 6% less CPU per record
    /// (BENCHMARKS.md, "STOP to may_send:false under load").
    pub linger_ms: u64,
    /// Create the topics the service writes to when they are missing.
    pub create_topics: bool,
    pub partitions: i32,
    pub replication_factor: i32,
    /// The `retention.ms` of `consent.events`, in days, when the service creates the topic
    /// (default 7; 0 leaves the broker's default). The feed carries identifiers in clear, so
    /// that subscribers know whom to stop: it should not keep them longer than they need.
    pub consent_events_retention_days: u32,
    /// After SIGTERM or SIGINT, how long `run` may take to commit the batch in flight, publish
    /// what the log gained and answer the requests in flight, before it exits whatever is
    /// still pending (exit code 1; nothing acknowledged is lost, the rest is read again on
    /// the next start). Kubernetes' default grace period is 30 s too.
    pub shutdown_timeout_secs: u64,
    /// Kafka as the record, for several instances in one group (README, "Scale-out"): each
    /// batch goes to `topics.ledger` in one Kafka transaction with its offsets, and every
    /// instance reads all of that topic into its own ledger, so any instance answers for every
    /// contact. Off: this instance's ledger is the record, and one instance runs per group.
    /// Env: `CONSENT_LEDGER_SCALE_OUT=true`.
    pub scale_out: bool,
    /// This instance's name in the group, stable across restarts: its transactional id is
    /// `group_id.instance_id`, so a restarted instance fences its former self and the broker
    /// aborts the transaction it left open. Default: a random id made on first start and
    /// kept in `DATA_DIR/instance-id`, so it is as stable as the data dir (each instance has
    /// its own). Env: `CONSENT_LEDGER_INSTANCE_ID`.
    pub instance_id: Option<String>,
    /// Extra librdkafka properties for both consumer and producer (SASL, TLS, timeouts…).
    /// Env: `KAFKA_PROP_SECURITY_PROTOCOL=SASL_SSL` sets `security.protocol`.
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Topics {
    pub inbound: String,
    /// What campaigns sent (`{"type":"sent",…}` records), consumed next to `inbound` so that
    /// opt-outs can be attributed to the campaign that caused them.
    pub sent: String,
    pub consent_events: String,
    pub outbound: String,
    pub dead_letter: String,
    /// The record topic of scale-out: one hash chain per partition, as many partitions as
    /// `inbound`, kept forever (retention -1).
    pub ledger: String,
    /// Per-identifier data keys (wrapped) and the index secret, compacted, shared by every
    /// instance of scale-out; an erasure writes a tombstone.
    pub keys: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            inbound: "inbound.messages".into(),
            sent: "outbound.sent".into(),
            consent_events: "consent.events".into(),
            outbound: "outbound.messages".into(),
            dead_letter: "inbound.messages.dlq".into(),
            ledger: "consent.ledger".into(),
            keys: "consent.keys".into(),
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "localhost:9092".into(),
            group_id: "consent-ledger".into(),
            topics: Topics::default(),
            batch_size: 2000,
            linger_ms: 5,
            create_topics: true,
            partitions: 3,
            replication_factor: 1,
            consent_events_retention_days: 7,
            shutdown_timeout_secs: 30,
            scale_out: false,
            instance_id: None,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Applies `KAFKA_BOOTSTRAP_SERVERS`, `CONSENT_LEDGER_GROUP_ID` and `KAFKA_PROP_*`.
    pub fn with_env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        for (key, value) in vars {
            match key.as_str() {
                "KAFKA_BOOTSTRAP_SERVERS" => self.bootstrap_servers = value,
                "CONSENT_LEDGER_GROUP_ID" => self.group_id = value,
                "CONSENT_LEDGER_SCALE_OUT" => {
                    self.scale_out = matches!(value.trim(), "1" | "true" | "yes" | "on")
                }
                "CONSENT_LEDGER_INSTANCE_ID" => self.instance_id = Some(value),
                _ => {
                    if let Some(prop) = key.strip_prefix("KAFKA_PROP_") {
                        self.properties
                            .insert(prop.to_ascii_lowercase().replace('_', "."), value);
                    }
                }
            }
        }
        self
    }

    pub fn validate(&self) -> Result<(), KafkaConfigError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(KafkaConfigError::NoBrokers);
        }
        if self.batch_size == 0 {
            return Err(KafkaConfigError::ZeroBatch);
        }
        if self.partitions < 1 || self.replication_factor < 1 {
            return Err(KafkaConfigError::ZeroPartitions);
        }
        if self.shutdown_timeout_secs == 0 {
            return Err(KafkaConfigError::ZeroShutdownTimeout);
        }
        let t = &self.topics;
        for (name, topic) in [
            ("inbound", &t.inbound),
            ("sent", &t.sent),
            ("consent_events", &t.consent_events),
            ("outbound", &t.outbound),
            ("dead_letter", &t.dead_letter),
            ("ledger", &t.ledger),
            ("keys", &t.keys),
        ] {
            if topic.trim().is_empty() {
                return Err(KafkaConfigError::EmptyTopic(name));
            }
        }
        // Measured (README, "Scale-out"): under the cooperative protocol the generation moves
        // while a transaction is open and its offsets are refused, so the batch is aborted
        // and done again on every rebalance; nor was the pause any shorter than with the
        // default eager assignors.
        let strategy = self.properties.get("partition.assignment.strategy");
        if self.scale_out && strategy.is_some_and(|s| s.contains("cooperative")) {
            return Err(KafkaConfigError::CooperativeScaleOut);
        }
        if let Some(id) = &self.instance_id {
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(KafkaConfigError::InstanceId);
            }
        }
        Ok(())
    }
}

/// A `[kafka]` table `run` cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaConfigError {
    #[error("kafka.bootstrap_servers is empty")]
    NoBrokers,
    #[error("kafka.batch_size must be at least 1")]
    ZeroBatch,
    #[error("kafka.partitions and kafka.replication_factor must be at least 1")]
    ZeroPartitions,
    #[error("kafka.topics.{0} is empty")]
    EmptyTopic(&'static str),
    #[error("kafka.shutdown_timeout_secs must be at least 1")]
    ZeroShutdownTimeout,
    #[error("kafka.instance_id must be letters, digits, '-', '_' or '.', and not empty")]
    InstanceId,
    #[error(
        "kafka.properties \"partition.assignment.strategy\" is cooperative, which scale_out does not use: a rebalance would refuse the open transaction's offsets and the batch would be done again, and the pause was no shorter than with the default. Remove it to keep librdkafka's default assignors (README, \"Scale-out\")"
    )]
    CooperativeScaleOut,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_brokers_group_and_properties() {
        let c = KafkaConfig::default().with_env([
            (
                "KAFKA_BOOTSTRAP_SERVERS".to_string(),
                "b1:9092,b2:9092".to_string(),
            ),
            (
                "CONSENT_LEDGER_GROUP_ID".to_string(),
                "ledger-eu".to_string(),
            ),
            (
                "KAFKA_PROP_SASL_MECHANISM".to_string(),
                "SCRAM-SHA-512".to_string(),
            ),
            ("PATH".to_string(), "/bin".to_string()),
        ]);
        assert_eq!(c.bootstrap_servers, "b1:9092,b2:9092");
        assert_eq!(c.group_id, "ledger-eu");
        assert_eq!(c.properties["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(c.properties.len(), 1);
    }

    #[test]
    fn defaults_are_the_documented_topics() {
        let c = KafkaConfig::default();
        assert_eq!(c.topics.inbound, "inbound.messages");
        assert_eq!(c.topics.sent, "outbound.sent");
        assert_eq!(c.topics.dead_letter, "inbound.messages.dlq");
        assert!(c.validate().is_ok());
        let bad = KafkaConfig {
            batch_size: 0,
            ..KafkaConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    /// Regression test: with scale_out, cooperative-sticky let a rebalance refuse an open
    /// transaction's offsets (ILLEGAL_GENERATION) and the instance stopped; it is refused at
    /// start instead, and stays allowed without scale_out.
    #[test]
    fn cooperative_sticky_with_scale_out_is_refused() {
        let toml = "[properties]\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n";
        let mut c: KafkaConfig = toml::from_str(toml).unwrap();
        assert!(c.validate().is_ok());
        c.scale_out = true;
        assert_eq!(c.validate(), Err(KafkaConfigError::CooperativeScaleOut));
        let message = c.validate().unwrap_err().to_string();
        assert!(
            message.contains("partition.assignment.strategy"),
            "{message}"
        );
    }

    #[test]
    fn shutdown_is_bounded_by_30_seconds_unless_set() {
        assert_eq!(KafkaConfig::default().shutdown_timeout_secs, 30);
        let c: KafkaConfig = toml::from_str("shutdown_timeout_secs = 5").unwrap();
        assert_eq!(c.shutdown_timeout_secs, 5);
        assert!(c.validate().is_ok());
        let zero: KafkaConfig = toml::from_str("shutdown_timeout_secs = 0").unwrap();
        assert_eq!(zero.validate(), Err(KafkaConfigError::ZeroShutdownTimeout));
    }
}
