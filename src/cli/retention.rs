//! `consent-ledger retention`: erases the message texts of people past `[rgpd]
//! retention_days`, or with `--dry-run` lists them.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;

use super::UsageError;

pub fn run(ledger: &Ledger, settings: &Settings, dry_run: bool) -> Result<ExitCode> {
    let retention = settings
        .file
        .rgpd
        .retention()
        .map_err(|e| UsageError(e.to_string()))?;
    let cutoff = chrono::Utc::now() - retention;
    let expired = ledger.expired_texts(cutoff)?;
    let mut out = super::stdout();
    for e in &expired {
        let who: Vec<String> = e.identifiers.iter().map(|c| c.masked()).collect();
        let last = e
            .last_event
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "no event".into());
        writeln!(
            out,
            "{}\t{}\tlast event {last}\t{} text keys",
            e.tenant,
            if who.is_empty() {
                "-".to_string()
            } else {
                who.join(",")
            },
            e.text_keys()
        )?;
    }
    let keys: usize = expired.iter().map(|e| e.text_keys()).sum();
    if dry_run {
        writeln!(
            out,
            "would erase the message texts of {} people ({keys} text keys), last event before {}",
            expired.len(),
            cutoff.to_rfc3339()
        )?;
    } else {
        let destroyed = ledger.erase_texts(&expired)?;
        writeln!(
            out,
            "erased the message texts of {} people ({destroyed} text keys destroyed), last event before {}",
            expired.len(),
            cutoff.to_rfc3339()
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
