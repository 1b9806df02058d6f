//! `consent-ledger run`: the long-running service. Wires the Kafka pipeline (and the HTTP API
//! when `--listen` is given) to one ledger, and turns SIGTERM/SIGINT into a clean drain.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;

use consent_ledger::api::{self, AppState};
use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;
use consent_ledger::metrics::Metrics;
use consent_ledger::pipeline::kafka;

pub fn run(ledger: Ledger, settings: Settings, listen: Option<String>) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let kafka_config = settings.file.kafka.clone().with_env(std::env::vars());
        let ledger = Arc::new(ledger);
        let settings = Arc::new(settings);
        let metrics = Metrics::new();
        let ready = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested; finishing the batch in flight");
            let _ = stop_tx.send(true);
        });
        // The HTTP server stops after the consumer, whether it stopped on a signal or an error.
        let consumer_done = watch::Sender::new(false);
        let http = match listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                let state = AppState::new(ledger.clone(), settings.clone(), metrics.clone());
                let readiness = state.readiness();
                readiness.follow(
                    ready.clone(),
                    "the Kafka consumer has no partitions assigned yet",
                );
                readiness.set_ready();
                println!("listening on {}", listener.local_addr()?);
                tracing::info!(addr = %listener.local_addr()?, "serving the HTTP API");
                let mut http_stop = consumer_done.subscribe();
                let shutdown = async move {
                    let _ = http_stop.wait_for(|done| *done).await;
                };
                Some(tokio::spawn(api::serve(listener, state, shutdown)))
            }
            None => None,
        };
        let consumed = kafka::run(kafka_config, settings, ledger, metrics, ready, stop).await;
        consumer_done.send_replace(true);
        if let Some(http) = http {
            http.await.context("the HTTP server task failed")??;
        }
        consumed?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on SIGTERM (docker stop, Kubernetes) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
