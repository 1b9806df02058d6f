//! `consent-ledger serve`: the HTTP API over the ledger in file mode, without a Kafka
//! consumer. Events recorded or imported over HTTP are published to the data directory's
//! `consent-events.jsonl`, as `ingest` publishes its own.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;

use consent_ledger::api::{self, AppState};
use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;
use consent_ledger::metrics::Metrics;
use consent_ledger::pipeline::file::FileSinks;
use consent_ledger::pipeline::relay::relay_files_on_commit;

pub fn serve(
    ledger: Ledger,
    settings: Settings,
    listen: &str,
    data_dir: &Path,
) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| crate::UsageError(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr()?;
        let ledger = Arc::new(ledger);
        let state = AppState::new(ledger.clone(), Arc::new(settings), Metrics::new());
        state.readiness().set_ready();
        let (stop_tx, stop) = watch::channel(false);
        let relay = tokio::spawn(relay_files_on_commit(
            ledger,
            FileSinks::in_dir(data_dir, None),
            stopped(stop.clone()),
        ));
        // Scripts and tests that ask for port 0 read the real address from this line.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")?;
        stdout.flush()?;
        drop(stdout);
        tracing::info!(%addr, "serving the HTTP API");
        tokio::spawn(async move {
            crate::service::shutdown_signal().await;
            tracing::info!("shutdown requested; finishing the requests in flight");
            let _ = stop_tx.send(true);
        });
        api::serve(listener, state, stopped(stop)).await?;
        relay.await.context("the outbox relay failed")?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
