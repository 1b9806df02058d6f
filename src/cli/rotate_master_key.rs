//! `rotate-master-key`: rewraps every stored key under a new master key, in one transaction.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use consent_ledger::config::{read_master_key_file, write_private, MasterKeySource};
use consent_ledger::ledger::Ledger;
use consent_ledger::rgpd::MasterKey;

use super::UsageError;

/// Where the new key may come from besides `--new-key-file`.
pub const NEW_KEY_ENV: &str = "CONSENT_LEDGER_NEW_MASTER_KEY";

/// The new key: `--new-key-file`, else `CONSENT_LEDGER_NEW_MASTER_KEY`.
pub fn new_key(file: Option<&Path>) -> Result<MasterKey, UsageError> {
    if let Some(path) = file {
        return read_master_key_file(path).map_err(|e| UsageError(e.to_string()));
    }
    let value = std::env::var(NEW_KEY_ENV).map_err(|_| {
        UsageError(format!(
            "give the new master key with --new-key-file FILE (mode 0600) or {NEW_KEY_ENV}"
        ))
    })?;
    MasterKey::from_base64(&value)
        .ok_or_else(|| UsageError(format!("{NEW_KEY_ENV} is not base64 of 32 bytes")))
}

/// `old_check`: the current key's key-check value, to refuse a "rotation" to the same key.
pub fn run(
    ledger: Ledger,
    old_check: [u8; 32],
    new: MasterKey,
    source: &MasterKeySource,
) -> Result<ExitCode> {
    if new.key_check() == old_check {
        return Err(UsageError("the new master key is the current one".into()).into());
    }
    let path = ledger.path().to_path_buf();
    let count = ledger.rotate_master_key(&new)?;
    let mut out = super::stdout();
    writeln!(
        out,
        "{}: rewrapped {count} data keys and the index secret under the new master key",
        path.display()
    )?;
    match source {
        MasterKeySource::Embedded { path, .. } => {
            replace_key_file(path, &new)?;
            writeln!(out, "{} now holds the new key", path.display())?;
        }
        MasterKeySource::Env | MasterKeySource::File(_) => writeln!(
            out,
            "configure the new key (CONSENT_LEDGER_MASTER_KEY or [rgpd] master_key_file) on every instance now: the old key no longer opens this ledger"
        )?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Replaces the embedded default's key file with `key`, so that the file always holds one
/// whole key (see [`write_private`]).
fn replace_key_file(path: &Path, key: &MasterKey) -> Result<()> {
    write_private(path, &key.to_base64(), false)
        .with_context(|| format!("cannot replace {}", path.display()))
}
