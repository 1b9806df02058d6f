//! `migrate`: what the storage migration rewrote, step by step.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use consent_ledger::ledger::migrate::migrate;
use consent_ledger::ledger::LedgerError;
use consent_ledger::rgpd::MasterKey;

pub fn run(dir: &Path, master: MasterKey) -> Result<ExitCode> {
    let report = migrate(dir, master).map_err(|e| match e {
        e @ LedgerError::WrongMasterKey { .. } => {
            anyhow::Error::from(super::UsageError(e.to_string()))
        }
        e => e.into(),
    })?;
    let mut out = super::stdout();
    writeln!(
        out,
        "{}: storage layout {} -> {}",
        dir.display(),
        report.from,
        report.to
    )?;
    for step in &report.steps {
        writeln!(out, "  {step}")?;
    }
    if let Some(backup) = &report.backup {
        writeln!(
            out,
            "the old layout is kept in {}; delete it once the service runs on the new one",
            backup.display()
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
