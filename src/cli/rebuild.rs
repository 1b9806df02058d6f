//! `consent-ledger rebuild`: the consent view, rebuilt from the log.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;
use consent_ledger::metrics::Metrics;

pub fn run(ledger: &Ledger) -> Result<ExitCode> {
    let r = ledger.rebuild()?;
    let mut out = super::stdout();
    writeln!(
        out,
        "rebuilt the consent view of {} contacts from {} events ({} rows changed)",
        r.contacts, r.events, r.changed
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `rebuild --from-kafka`: an empty ledger filled from the record topic; `verify` passes on
/// it afterwards.
pub fn from_kafka(ledger: Ledger, settings: &Settings) -> Result<ExitCode> {
    let k = settings.file.kafka.clone().with_env(std::env::vars());
    let ledger = std::sync::Arc::new(ledger);
    super::block_on(async move {
        let took =
            consent_ledger::pipeline::kafka::rebuild_from_kafka(k, ledger, Metrics::new()).await?;
        let mut out = super::stdout();
        writeln!(
            out,
            "rebuilt the ledger from the record topic: {} events from {} partitions",
            took.events, took.partitions
        )?;
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    })
}
