//! `consent-ledger export`: the audit log, every event with its proof fields.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use consent_ledger::ledger::Ledger;
use consent_ledger::query::{self, ExportFormat};

pub fn run(ledger: &Ledger, tenant: Option<&str>, format: ExportFormat) -> Result<ExitCode> {
    let mut out = super::stdout();
    query::export(ledger, tenant, None, format, &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
