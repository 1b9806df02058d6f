//! `consent-ledger run`: the service, consuming Kafka (and serving the HTTP API with
//! `--listen`) until SIGTERM or SIGINT. The wiring is [`consent_ledger::app::run`]; this binds
//! the address and waits.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use consent_ledger::app;
use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;
use consent_ledger::shutdown::Shutdown;

pub fn run(ledger: Ledger, settings: Settings, listen: Option<String>) -> Result<ExitCode> {
    super::block_on(async move {
        let shutdown = Shutdown::signal();
        let listener = match listen {
            Some(addr) => {
                let listener = TcpListener::bind(&addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                super::announce(&listener)?;
                Some(listener)
            }
            None => None,
        };
        let (ledger, settings) = (Arc::new(ledger), Arc::new(settings));
        app::run(listener, ledger, settings, shutdown.wait())
            .await
            .map_err(super::app_error)?;
        Ok(ExitCode::SUCCESS)
    })
}
