//! `consent-ledger retention`: erases the message texts of people past `[rgpd]
//! retention_days` and purges the originals of dead letters past `[rgpd] dead_letter_days`,
//! or with `--dry-run` lists what it would do.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;
use consent_ledger::pipeline::purge::purge_originals;

use super::UsageError;

pub fn run(
    ledger: &Ledger,
    settings: &Settings,
    data_dir: &Path,
    dry_run: bool,
) -> Result<ExitCode> {
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
    // The data dir's lock is held: no service appends to the dead-letter file meanwhile.
    let keep = settings
        .file
        .rgpd
        .dead_letter_retention()
        .map_err(|e| UsageError(e.to_string()))?;
    let now = chrono::Utc::now();
    let path = data_dir.join(consent_ledger::pipeline::deadletter::FILE_NAME);
    let found = purge_originals(&path, now - keep, now, dry_run)?;
    writeln!(
        out,
        "{} the originals of {} of {} dead letters in {}, rejected before {}",
        if dry_run { "would purge" } else { "purged" },
        found.purged,
        found.lines,
        path.display(),
        (now - keep).to_rfc3339()
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
