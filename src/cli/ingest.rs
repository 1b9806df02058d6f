//! `consent-ledger ingest`: file mode, the pipeline over a file or stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;
use consent_ledger::pipeline::file::{ingest, FileSinks};
use consent_ledger::pipeline::purge::purge_at_start;

pub fn run(
    ledger: &Ledger,
    settings: &Settings,
    data_dir: &Path,
    file: &str,
    json: bool,
    dead_letter: Option<PathBuf>,
) -> Result<ExitCode> {
    let mut sinks = FileSinks::in_dir(data_dir, dead_letter);
    let keep = settings.file.rgpd.dead_letter_retention()?;
    purge_at_start(sinks.dead_letter.path(), keep)?;
    let summary = ingest(ledger, settings, super::open_input(file)?, file, &mut sinks)?;
    ledger.settle()?;
    let mut out = super::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    } else {
        writeln!(
            out,
            "read {} records: {} opted out, {} opted in, {} help, {} no change, {} possible opt-out, {} duplicates, {} rejected",
            summary.read, summary.opted_out, summary.opted_in, summary.help, summary.no_change,
            summary.possible_opt_out, summary.duplicates, summary.rejected
        )?;
        if summary.sent + summary.statuses > 0 {
            writeln!(
                out,
                "campaign analytics: {} sent records, {} delivery statuses",
                summary.sent, summary.statuses
            )?;
        }
        if summary.rejected > 0 {
            writeln!(
                out,
                "rejected records are in {}",
                sinks.dead_letter.path().display()
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
