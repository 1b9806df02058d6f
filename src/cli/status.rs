//! `consent-ledger status`: may this contact receive a message of this purpose now.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use consent_ledger::config::Settings;
use consent_ledger::domain::event::Purpose;
use consent_ledger::ledger::Ledger;
use consent_ledger::query;

pub fn run(
    ledger: &Ledger,
    settings: &Settings,
    tenant: &str,
    contact: &str,
    purpose: Purpose,
    json: bool,
) -> Result<ExitCode> {
    let tenant = super::tenant_arg(tenant)?;
    let contact = super::parse_contact(settings, &tenant, contact)?;
    let r = query::status(
        ledger,
        &settings.profile(&tenant),
        &tenant,
        &contact,
        purpose,
    )?;
    let mut out = super::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
    } else {
        let since = r
            .since
            .map(|s| format!(" since {}", s.to_rfc3339()))
            .unwrap_or_default();
        let verdict = match &r.reason {
            None => "may send".to_string(),
            Some(reason) => format!("may NOT send ({reason})"),
        };
        writeln!(
            out,
            "{} {} {}: {}{} — {}",
            r.tenant, r.contact, r.purpose, r.status, since, verdict
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
