//! The wiring of the two long-running modes, `serve` and `run`: which tasks start, what each
//! is given, and in what order they stop. Like mini-redis' `server::run`, each takes its
//! listener and a shutdown future, so a test binds 127.0.0.1:0, drives the process in-process
//! and stops it cleanly; the binary passes a bound address and [`Shutdown::signal`].

use std::future::Future;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinError;

use crate::api::webhooks::{WebhookError, Webhooks};
use crate::api::{self, AppState};
use crate::config::Settings;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::pipeline::file::FileSinks;
use crate::pipeline::kafka::{self, KafkaModeError};
use crate::pipeline::purge::purge_at_start;
use crate::pipeline::relay::relay_files_on_commit;
use crate::shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The HTTP server, or the address of its listener.
    #[error(transparent)]
    Http(#[from] std::io::Error),
    #[error(transparent)]
    Kafka(#[from] KafkaModeError),
    #[error("the relay of the log to the JSONL files failed")]
    Relay(#[source] JoinError),
    #[error("the HTTP server task failed")]
    HttpTask(#[source] JoinError),
    /// A webhook secret that cannot be read (`env:NAME` unset), or its producer.
    #[error(transparent)]
    Webhooks(#[from] WebhookError),
    #[error("did not stop within kafka.shutdown_timeout_secs ({0} s); exited with work pending, which the next start reads again")]
    ShutdownTimedOut(u64),
}

/// Erases the message texts past retention (`[rgpd] retention_days`) at start, then once a
/// day, until `stop`. A failed run is logged and tried again the next day.
///
/// Scale-out (`forward`): the first run waits until the instance is ready, its view holding
/// what the record topic held at start, and text keys no event of the view uses yet are left
/// alone, since their event may not be taken in yet; what it destroys it tombstones on the
/// key topic.
async fn retention_daily(
    ledger: Arc<Ledger>,
    retention: chrono::Duration,
    forward: Option<(Arc<crate::api::forward::Forward>, Arc<AtomicBool>)>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    if let Some((_, ready)) = &forward {
        while !ready.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = &mut stop => return,
            }
        }
    }
    let scaled = forward.is_some();
    loop {
        let l = ledger.clone();
        let run = tokio::task::spawn_blocking(move || {
            let mut expired = l.expired_texts(chrono::Utc::now() - retention)?;
            if scaled {
                expired.retain(|e| e.last_event.is_some());
            }
            // Their records on the key topic, named while the keys are still here.
            let mut slots = Vec::new();
            for slot in expired.iter().flat_map(|e| e.slots()) {
                slots.extend(l.key_records(slot)?);
            }
            l.erase_texts(&expired)
                .map(|keys| (expired.len(), keys, slots))
        })
        .await;
        match run {
            Ok(Ok((people, keys, slots))) if keys > 0 => {
                tracing::info!(people, keys, "erased the message texts past retention");
                if let Some((forward, _)) = &forward {
                    if let Err(e) = forward.tombstone_keys(&slots).await {
                        tracing::error!(error = %e, "cannot tombstone the expired text keys on the key topic; the next daily run tries again");
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot apply the retention of message texts")
            }
            _ => {}
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(24 * 60 * 60)) => {}
            () = &mut stop => break,
        }
    }
}

/// The retention of message texts (validated when the settings loaded).
fn retention_of(settings: &Settings) -> chrono::Duration {
    let default = chrono::Duration::days(i64::from(crate::config::DEFAULT_RETENTION_DAYS));
    settings.file.rgpd.retention().unwrap_or(default)
}

/// Webhook secrets written `env:NAME` are read from the process environment.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// File mode as a service: the HTTP API on `listener`, without a Kafka consumer. Events
/// recorded or imported over HTTP are published to `data_dir`'s `consent-events.jsonl` (and
/// replies to `outbox.jsonl`), as `ingest` publishes its own. Returns once `shutdown` has
/// resolved, the requests in flight have finished, and the last commits are published.
pub async fn serve(
    listener: TcpListener,
    ledger: Arc<Ledger>,
    settings: Arc<Settings>,
    data_dir: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let addr = listener.local_addr()?;
    let metrics = Metrics::new();
    crate::domain::contact::warm_up(settings.regions());
    // Before the webhook receivers can append to it.
    if let Ok(keep) = settings.file.rgpd.dead_letter_retention() {
        if let Err(e) = purge_at_start(&data_dir.join(crate::pipeline::deadletter::FILE_NAME), keep)
        {
            tracing::error!(error = %e, "cannot purge the dead letters' originals");
        }
    }
    let webhooks = Webhooks::into_ledger(&settings, ledger.clone(), data_dir, &metrics, &env_var)?;
    let retention = retention_of(&settings);
    let state = AppState::new(ledger.clone(), settings, metrics).with_webhooks(webhooks);
    state.readiness().set_ready();
    // The relay outlives the server, so what the last requests recorded is published too.
    let served = Shutdown::new();
    tokio::spawn(retention_daily(
        ledger.clone(),
        retention,
        None,
        served.wait(),
    ));
    let relay = tokio::spawn(relay_files_on_commit(
        ledger,
        FileSinks::in_dir(data_dir, None),
        served.wait(),
    ));
    tracing::info!(%addr, "serving the HTTP API");
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutdown requested; finishing the requests in flight");
    };
    let result = api::serve(listener, state, shutdown).await;
    served.trigger();
    let relayed = relay.await;
    result?;
    relayed.map_err(AppError::Relay)
}

/// Kafka mode: consumes the inbound topic into the ledger and publishes consent events and
/// replies until `shutdown` resolves, then finishes the batch in flight. With a `listener`,
/// also serves the HTTP API, ready once the consumer has an inbound partition; it stops after
/// the consumer, whether the consumer stopped on `shutdown` or on an error.
///
/// The stop is bounded: `kafka.shutdown_timeout_secs` after `shutdown` (or after the consumer
/// stopped on its own), it returns [`AppError::ShutdownTimedOut`] whatever is still pending, a
/// dead letter the broker refuses, a publish, a slow client's request. Nothing is lost by it:
/// only what is durable was acknowledged, and the rest is read again on the next start.
pub async fn run(
    listener: Option<TcpListener>,
    ledger: Arc<Ledger>,
    settings: Arc<Settings>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let kafka_config = settings.file.kafka.clone().with_env(std::env::vars());
    let bound = kafka_config.shutdown_timeout_secs;
    crate::domain::contact::warm_up(settings.regions());
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let stop = Shutdown::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested; finishing the batch in flight");
        trigger.trigger();
    });
    let consumed = Shutdown::new();
    let forward = if kafka_config.scale_out {
        let instance = kafka::instance_id(&kafka_config, &ledger)?;
        let forward = crate::api::forward::Forward::new(&kafka_config, &instance)
            .map_err(KafkaModeError::Client)?;
        Some(Arc::new(forward))
    } else {
        None
    };
    tokio::spawn(retention_daily(
        ledger.clone(),
        retention_of(&settings),
        forward.clone().map(|f| (f, ready.clone())),
        stop.wait(),
    ));
    let http = match listener {
        Some(listener) => {
            let webhooks = Webhooks::onto_kafka(&settings, &kafka_config, &metrics, &env_var)?;
            let state = AppState::new(ledger.clone(), settings.clone(), metrics.clone())
                .with_webhooks(webhooks)
                .with_forward(forward.clone());
            let readiness = state.readiness();
            readiness.follow(
                ready.clone(),
                "the Kafka consumer has no partition of the inbound topic assigned",
            );
            readiness.set_ready();
            tracing::info!(addr = %listener.local_addr()?, "serving the HTTP API");
            Some(tokio::spawn(api::serve(listener, state, consumed.wait())))
        }
        None => None,
    };
    let work = async {
        let result = kafka::run(
            kafka_config,
            settings,
            ledger,
            metrics,
            ready,
            stop.receiver(),
        )
        .await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "the Kafka consumer stopped");
        }
        // Stopped on its own (an error): the bound runs from now.
        stop.trigger();
        consumed.trigger();
        if let Some(http) = http {
            http.await.map_err(AppError::HttpTask)??;
        }
        Ok(result?)
    };
    let limit = {
        let stopped = stop.wait();
        async move {
            stopped.await;
            tokio::time::sleep(Duration::from_secs(bound)).await;
        }
    };
    tokio::select! {
        done = work => done,
        () = limit => {
            tracing::error!(
                shutdown_timeout_secs = bound,
                "still stopping after the shutdown timeout; exiting with work pending"
            );
            Err(AppError::ShutdownTimedOut(bound))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use super::*;
    use crate::config::ConfigFile;
    use crate::rgpd::MasterKey;

    /// One HTTP/1.1 request on a fresh connection; the status line of the answer.
    fn status_line(addr: std::net::SocketAddr, path: &str) -> String {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serve_answers_on_port_zero_and_returns_when_shut_down() {
        let dir = tempfile::tempdir().unwrap();
        let ledger =
            Arc::new(Ledger::open(&dir.path().join("ledger"), MasterKey::generate()).unwrap());
        let settings = Arc::new(Settings::from_file(ConfigFile::default()).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let server = tokio::spawn({
            let (data_dir, shutdown) = (dir.path().to_path_buf(), shutdown.wait());
            async move { serve(listener, ledger, settings, &data_dir, shutdown).await }
        });
        let ready = tokio::task::spawn_blocking(move || status_line(addr, "/readyz"))
            .await
            .unwrap();
        assert_eq!(ready, "HTTP/1.1 200 OK");
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("serve returns once shut down")
            .unwrap()
            .unwrap();
    }
}
