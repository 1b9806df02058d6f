//! `consent-ledger rebuild`: the consent view, rebuilt from the log.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use consent_ledger::ledger::Ledger;

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
