//! Kafka mode (`consent-ledger run`): the inbound and sent topics are the source, the ledger's
//! log feeds `consent.events` and `outbound.messages`, rejects go to the dead-letter topic.
//!
//! Three parts, each on its own: the consumer thread polls and hands records over a bounded
//! channel ([`consumer`]); the writer thread batches them through the one commit path and
//! commits offsets once a batch is durable ([`writer`]); the relay task follows the log and
//! publishes ([`relay`]). Decoding and committing overlap with polling, with no nested
//! runtime and no lock shared between them.

pub mod consumer;
mod dead_letters;
mod index_secret;
mod record;
pub mod relay;
mod rewind;
mod topics;
mod view;
pub mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use tokio::sync::watch;

use self::consumer::Ctx;
use self::relay::Relay;
use self::view::View;
use self::writer::{ScaleOut, Writer};
use crate::config::{KafkaConfig, KafkaConfigError, Settings};
use crate::ledger::{Ledger, Sink};
use crate::metrics::Metrics;
use crate::pipeline::CommitError;

#[derive(Debug, thiserror::Error)]
pub enum KafkaModeError {
    /// Not a `#[source]`: the message already says it, and a chain would say it twice.
    #[error("invalid Kafka settings: {0}")]
    Config(KafkaConfigError),
    #[error("Kafka client error: {0}")]
    Client(#[from] KafkaError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    #[error(
        "the record topic {ledger} has {ledger_partitions} partitions and the inbound topic {inbound} has {inbound_partitions}: each inbound partition's events form one hash chain on the same partition number of the record topic, so both need the same count. Add partitions to the record topic first, then to the inbound topic (README, \"Scale-out\"), and start again"
    )]
    PartitionMismatch {
        ledger: String,
        ledger_partitions: i32,
        inbound: String,
        inbound_partitions: i32,
    },
    #[error(
        "this instance's ledger holds data under another index secret than the deployment's (on {0}): it cannot join. Start it with an empty data dir: it then takes everything from the record topic"
    )]
    IndexSecret(String),
    #[error(
        "the ledger at {0} already holds events: rebuild --from-kafka fills an empty one only. Move the data dir aside (or start with a new one) and run it again"
    )]
    NotEmpty(String),
    #[error("the record topic {0} does not exist: nothing to rebuild from (is [kafka] scale_out on, and the topic name right?)")]
    NoRecordTopic(String),
    #[error(
        "scale-out needs the deployment's {0} from the configuration, the same for every instance: a key made in this instance's data dir would be its own. Set it (README, \"Scale-out\")"
    )]
    DeploymentKey(&'static str),
    #[error("cannot keep this instance's id in {path}: {detail}")]
    InstanceId { path: String, detail: String },
}

/// librdkafka looks for topics it does not know yet every 5 minutes by default: an inbound
/// topic created after the start would wait that long for its first STOP to be read.
const METADATA_REFRESH_MS: &str = "5000";

/// Runs the consumer, the writer and the relay until `stop` turns true, then drains and
/// returns. The drain takes what is left of `k.shutdown_timeout_secs`; the caller enforces
/// the bound as a whole.
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
    let dead_letter_days = settings
        .file
        .rgpd
        .dead_letter_days
        .unwrap_or(crate::config::DEFAULT_DEAD_LETTER_DAYS);
    if k.scale_out {
        deployment_keys(&settings)?;
    }
    let consent_partitions = topics::ensure_topics(&k, dead_letter_days, &stop).await?;
    let failed = Arc::new(AtomicBool::new(false));
    let view_stop = Arc::new(AtomicBool::new(false));
    let (scale_out, view) = if k.scale_out {
        let partitions = topics::ensure_record_topics(&k, &stop).await?;
        index_secret::share(&k, &ledger).await?;
        let instance = instance_id(&k, &ledger)?;
        tracing::info!(topic = %k.topics.ledger, partitions, instance = %instance, "scale-out: Kafka is the record");
        let view = View::new(&k, &instance, ledger.clone(), metrics.clone(), partitions)?;
        let caught_up = view.caught_up.clone();
        let thread = view.spawn(view_stop.clone(), failed.clone())?;
        // Nothing is consumed before the view holds what the record topic held at start:
        // `/readyz` turns ready with the first inbound assignment, so only then.
        while !caught_up.load(Ordering::SeqCst) && !*stop.borrow() && !thread.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let so = ScaleOut {
            producer: topics::transactional_producer(&k, &instance)?,
            topics: k.topics.clone(),
            consent_partitions,
            ledger_partitions: partitions,
            assignments: Default::default(),
            caught_up: Default::default(),
        };
        (Some(so), Some(thread))
    } else {
        (None, None)
    };
    let log = ledger.clone();
    let relay = Relay {
        ledger: ledger.clone(),
        producer: topics::producer(&k)?,
        topics: k.topics.clone(),
        consent_partitions,
        metrics: metrics.clone(),
    };
    let (relay_stop_tx, relay_stop) = watch::channel(false);
    let bound = Duration::from_secs(k.shutdown_timeout_secs);
    // With scale-out the batch's transaction publishes the feed and the replies.
    let mut relay_task = if scale_out.is_none() {
        tokio::spawn(relay.run(relay_stop, bound))
    } else {
        tokio::spawn(async {})
    };

    // Two batches in flight at most: enough to keep the writer busy while the consumer polls.
    let (to_writer, from_consumer) = sync_channel(k.batch_size.max(1) * 2);
    let mut config = topics::client_config(&k);
    if !k
        .properties
        .contains_key("topic.metadata.refresh.interval.ms")
    {
        config.set("topic.metadata.refresh.interval.ms", METADATA_REFRESH_MS);
    }
    let mut ctx = Ctx::new(to_writer, ready.clone(), metrics.clone(), &k.topics.inbound);
    let mut scale_out = scale_out;
    if let Some(so) = &mut scale_out {
        so.assignments = ctx.assignments.clone();
        ctx.record_partitions = Some(so.ledger_partitions);
    }
    let consumer: BaseConsumer<Ctx> = config
        .set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000")
        .create_with_context(ctx)?;
    consumer.subscribe(&[&k.topics.inbound, &k.topics.sent])?;
    let consumer = Arc::new(consumer);
    let stop_polling = Arc::new(AtomicBool::new(false));
    let writer = Writer {
        ledger,
        settings,
        metrics,
        producer: topics::producer(&k)?,
        dead_letter_topic: k.topics.dead_letter.clone(),
        consumer: consumer.clone(),
        batch_size: k.batch_size.max(1),
        linger: Duration::from_millis(k.linger_ms),
        failed: failed.clone(),
        stopping: stop_polling.clone(),
        acked: Default::default(),
        scale_out,
    };
    let writer = std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || writer.run(from_consumer))
        .map_err(|_| KafkaModeError::Panicked("writer"))?;
    let poller = {
        let stop_polling = stop_polling.clone();
        std::thread::Builder::new()
            .name("kafka-consumer".into())
            .spawn(move || consumer::poll_loop(consumer, stop_polling))
            .map_err(|_| KafkaModeError::Panicked("consumer"))?
    };

    // Stop on the signal, or when the writer stopped on an error of its own.
    while !*stop.borrow() && !failed.load(Ordering::SeqCst) && !writer.is_finished() {
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    let stopping_since = Instant::now();
    stop_polling.store(true, Ordering::SeqCst);
    // Watched, not joined on the blocking pool: a thread stuck past the shutdown bound must
    // not hold up the runtime's own shutdown when the caller gives up on it.
    while !(poller.is_finished() && writer.is_finished()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let polled = poller.join();
    let written = writer.join();
    // The relay publishes what the last batch appended, in what is left of the bound (less
    // a second for the rest to stop); a publish still waiting then is abandoned, not lost.
    let drain = bound
        .saturating_sub(stopping_since.elapsed())
        .saturating_sub(Duration::from_secs(1));
    let _ = relay_stop_tx.send(true);
    if tokio::time::timeout(drain, &mut relay_task).await.is_err() {
        relay_task.abort();
        tracing::warn!(
            pending = log.backlog(Sink::Kafka).unwrap_or_default(),
            "stopping with unpublished log entries; they are published on the next start"
        );
    }
    view_stop.store(true, Ordering::SeqCst);
    let viewed = view.map(|v| v.join());
    polled.map_err(|_| KafkaModeError::Panicked("consumer"))?;
    written.map_err(|_| KafkaModeError::Panicked("writer"))??;
    if let Some(viewed) = viewed {
        viewed
            .map_err(|_| KafkaModeError::Panicked("view"))?
            .map_err(|e| KafkaModeError::Commit(e.into()))?;
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// This instance's id: configured, or made once and kept in the data dir beside the ledger,
/// so that a restart keeps its transactional id and fences the process it replaces.
pub fn instance_id(k: &KafkaConfig, ledger: &Ledger) -> Result<String, KafkaModeError> {
    if let Some(id) = &k.instance_id {
        return Ok(id.clone());
    }
    let dir = ledger.path().parent().unwrap_or(ledger.path());
    let file = dir.join("instance-id");
    let failed = |e: std::io::Error| KafkaModeError::InstanceId {
        path: file.display().to_string(),
        detail: e.to_string(),
    };
    match std::fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut f = std::fs::File::create(&file).map_err(failed)?;
    std::io::Write::write_all(&mut f, format!("{id}\n").as_bytes()).map_err(failed)?;
    f.sync_all().map_err(failed)?;
    Ok(id)
}

/// What `rebuild --from-kafka` took in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FromKafka {
    pub partitions: i32,
    pub events: u64,
}

/// `rebuild --from-kafka`: fills a new (or lost) instance's empty ledger from the record and
/// key topics, up to their end when it started, without consuming anything: the index
/// secret, every data key, every event and row. Refuses a ledger that already holds events,
/// so that nothing is mixed.
pub async fn rebuild_from_kafka(
    k: KafkaConfig,
    ledger: Arc<Ledger>,
    metrics: Metrics,
) -> Result<FromKafka, KafkaModeError> {
    k.validate().map_err(KafkaModeError::Config)?;
    if !ledger
        .is_fresh()
        .map_err(|e| KafkaModeError::Commit(e.into()))?
    {
        return Err(KafkaModeError::NotEmpty(
            ledger.path().display().to_string(),
        ));
    }
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        topics::client_config(&k).create()?;
    let partitions = topics::partitions(&admin, &k.topics.ledger)?;
    if partitions == 0 {
        return Err(KafkaModeError::NoRecordTopic(k.topics.ledger.clone()));
    }
    index_secret::share(&k, &ledger).await?;
    let instance = instance_id(&k, &ledger)?;
    let view = View::new(&k, &instance, ledger.clone(), metrics.clone(), partitions)?;
    let caught_up = view.caught_up.clone();
    let (stop, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let thread = view.spawn(stop.clone(), failed.clone())?;
    while !caught_up.load(Ordering::SeqCst) && !thread.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    while !thread.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    thread
        .join()
        .map_err(|_| KafkaModeError::Panicked("view"))?
        .map_err(|e| KafkaModeError::Commit(e.into()))?;
    ledger
        .sync()
        .map_err(|e| KafkaModeError::Commit(e.into()))?;
    Ok(FromKafka {
        partitions,
        events: metrics.events_adopted.get(),
    })
}

/// Scale-out's instances open each other's keys and sign for each other: both keys must come
/// from the configuration, never be made in one instance's data dir.
fn deployment_keys(settings: &Settings) -> Result<(), KafkaModeError> {
    let rgpd = &settings.file.rgpd;
    if std::env::var_os(crate::config::MASTER_KEY_ENV).is_none() && rgpd.master_key_file.is_none() {
        return Err(KafkaModeError::DeploymentKey(
            "master key (CONSENT_LEDGER_MASTER_KEY or [rgpd] master_key_file)",
        ));
    }
    if std::env::var_os(crate::config::SIGNING_KEY_ENV).is_none() && rgpd.signing_key_file.is_none()
    {
        return Err(KafkaModeError::DeploymentKey(
            "signing key (CONSENT_LEDGER_SIGNING_KEY or [rgpd] signing_key_file)",
        ));
    }
    Ok(())
}
