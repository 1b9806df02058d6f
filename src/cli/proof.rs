//! The proof commands: `export --contact --proof` (an access export), `verify-export` (its
//! offline check) and `public-key` (the key it is checked against).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;
use consent_ledger::proof::{export, render, verify};

use super::UsageError;

pub fn export(
    ledger: &Ledger,
    settings: &Settings,
    tenant: Option<&str>,
    contact: &str,
    format: Option<&str>,
    path: &Path,
) -> Result<ExitCode> {
    let tenant = super::tenant_arg(
        tenant.ok_or_else(|| UsageError("an access export needs --tenant".into()))?,
    )?;
    let contact = super::parse_contact(settings, &tenant, contact)?;
    let form = render::Form::parse(format.unwrap_or("json")).map_err(UsageError)?;
    let file = match export::build(ledger, &tenant, &contact, chrono::Utc::now()) {
        Ok(file) => file,
        Err(export::ExportError::Unknown(who)) => {
            eprintln!("no event about {who} in tenant {tenant}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    std::fs::write(path, form.bytes(&file))
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "wrote the access export of {} ({} events, {} identifiers) to {}",
        contact.masked(),
        file.events.len(),
        file.identifiers.len(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn verify_export(path: &Path, public_key: Option<&str>) -> Result<ExitCode> {
    let bytes = std::fs::read(path)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
    let mut out = super::stdout();
    match verify::verify(&bytes, public_key) {
        Ok(v) => {
            writeln!(
                out,
                "ok: {} events about {} identifiers, every one tied to a head signed by key {}",
                v.events,
                v.identifiers.len(),
                v.fingerprint()
            )?;
            if !v.key_given {
                writeln!(
                    out,
                    "note: checked against the key inside the file; this proves the file is intact under that key only. Pass --public-key with the ledger's key (consent-ledger public-key) to prove who signed it."
                )?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ verify::VerifyError::NotAProof(_)) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

pub fn public_key(ledger: &Ledger) -> Result<ExitCode> {
    let signer = ledger
        .signer()
        .ok_or_else(|| anyhow::anyhow!("this ledger has no signing key"))?;
    let mut out = super::stdout();
    writeln!(out, "{}", signer.public_key())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
