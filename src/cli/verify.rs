//! `consent-ledger verify`: re-hash the log and compare the consent view with a fold of it.
//! Exit 1 on any mismatch, so a scheduled check can alert.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use consent_ledger::ledger::Ledger;

pub fn run(ledger: &Ledger, json: bool) -> Result<ExitCode> {
    let report = ledger.verify()?;
    let mut out = super::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else if report.ok() {
        writeln!(
            out,
            "ok: {} events in {} partitions verify; the consent view of {} contacts matches the log",
            report.events, report.partitions, report.contacts
        )?;
    } else {
        for p in &report.problems {
            writeln!(out, "MISMATCH {p}")?;
        }
        writeln!(
            out,
            "verify failed: {} problems in {} events",
            report.problems.len(),
            report.events
        )?;
    }
    out.flush()?;
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
