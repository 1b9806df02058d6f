//! `consent-ledger serve`: the HTTP API in file mode (no Kafka consumer) until SIGTERM or
//! SIGINT. The wiring is [`consent_ledger::app::serve`]; this binds the address and waits.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use tokio::net::TcpListener;

use super::UsageError;
use consent_ledger::app;
use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;
use consent_ledger::shutdown::Shutdown;

pub fn run(ledger: Ledger, settings: Settings, listen: &str, data_dir: &Path) -> Result<ExitCode> {
    super::block_on(async move {
        let shutdown = Shutdown::signal();
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| UsageError(format!("cannot listen on {listen}: {e}")))?;
        super::announce(&listener)?;
        let (ledger, settings) = (Arc::new(ledger), Arc::new(settings));
        app::serve(listener, ledger, settings, data_dir, shutdown.wait())
            .await
            .map_err(super::app_error)?;
        Ok(ExitCode::SUCCESS)
    })
}
