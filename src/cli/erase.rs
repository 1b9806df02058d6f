//! `consent-ledger erase`: erases a person (RGPD Art. 17) and prints the `Erased` event.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use consent_ledger::config::Settings;
use consent_ledger::domain::erasure;
use consent_ledger::ledger::{Erased, Ledger};
use consent_ledger::pipeline::commit::API_PARTITION;
use consent_ledger::pipeline::relay::{self, FileSinks};

use super::UsageError;

pub fn run(
    ledger: &Ledger,
    settings: &Settings,
    data_dir: &Path,
    tenant: &str,
    contact: &str,
    reason: &str,
) -> Result<ExitCode> {
    if settings
        .file
        .kafka
        .clone()
        .with_env(std::env::vars())
        .scale_out
    {
        return Err(UsageError(
            "with [kafka] scale_out = true the record is Kafka: an erasure written into this instance's ledger would fork a chain. Erase through the API of a running instance (DELETE /v1/tenants/{tenant}/contacts/{contact}), which writes it through Kafka".into(),
        )
        .into());
    }
    let tenant = super::tenant_arg(tenant)?;
    let contact = super::parse_contact(settings, &tenant, contact)?;
    let request = erasure::request(&cli_user(), reason).map_err(|e| UsageError(e.to_string()))?;
    let outcome = ledger.erase(
        &tenant,
        &contact,
        request,
        API_PARTITION,
        chrono::Utc::now(),
    )?;
    let event = match outcome {
        Erased::Now(event) => event,
        Erased::Before(event) => {
            eprintln!(
                "{} was already erased at {}; nothing changed",
                contact.masked(),
                event.recorded_at.to_rfc3339()
            );
            event
        }
        Erased::Unknown => {
            eprintln!(
                "error: the ledger holds nothing about {} in tenant {tenant}",
                contact.masked()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    // The file feeds carry the Erased record, so their readers erase their copies too.
    relay::drain(ledger, &mut FileSinks::in_dir(data_dir, None))?;
    let mut out = super::stdout();
    writeln!(out, "{}", String::from_utf8_lossy(&event.stored_bytes()))?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Who asked, as the `Erased` event records it: the operating-system user.
fn cli_user() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()));
    format!("cli:{user}")
}
