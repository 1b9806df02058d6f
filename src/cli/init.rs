//! `consent-ledger init`: a commented starter config with the STOP automation set up.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::UsageError;

pub fn run(language: &str, tenant: &str, output: Option<&Path>, force: bool) -> Result<ExitCode> {
    let text = consent_ledger::init::config_file(language, tenant)
        .map_err(|e| UsageError(e.to_string()))?;
    let Some(path) = output else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    // create_new, not an exists() check: a file appearing in between is not overwritten either.
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            UsageError(format!(
                "{} already exists; use --force to overwrite it",
                path.display()
            ))
        } else {
            UsageError(format!("cannot write {}: {e}", path.display()))
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "wrote {}: edit the lines marked EDIT, then use it with --config {}",
        path.display(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
