//! `migrate`: what the storage migration rewrote, step by step.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use consent_ledger::ledger::migrate::migrate;

pub fn run(dir: &Path) -> Result<ExitCode> {
    let report = migrate(dir)?;
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
