//! `consent-ledger lint-template`: does a WhatsApp template offer an opt-out. Exit 1 when a
//! template is not compliant, 2 when the input is not a template.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Result;

use super::UsageError;
use consent_ledger::template;

pub fn run(file: &str, json: bool) -> Result<ExitCode> {
    let mut text = String::new();
    super::open_input(file)?
        .read_to_string(&mut text)
        .map_err(|e| UsageError(format!("cannot read {file}: {e}")))?;
    let report = template::lint_str(&text).map_err(|e| UsageError(format!("{file}: {e}")))?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else if report.compliant {
        writeln!(
            out,
            "{} ({}, {}): compliant",
            report.template, report.language, report.category
        )?;
    } else {
        writeln!(
            out,
            "{} ({}, {}): NOT compliant, {} problem(s)",
            report.template,
            report.language,
            report.category,
            report.problems.len()
        )?;
        for p in &report.problems {
            writeln!(out, "{}  {}: {}", p.pointer, p.code, p.message)?;
            writeln!(out, "    fix: {}", p.suggestion)?;
        }
    }
    out.flush()?;
    Ok(if report.compliant {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
