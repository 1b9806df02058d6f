//! `consent-ledger history`: every event of one contact, oldest first, with its proof.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;
use consent_ledger::query;

pub fn run(
    ledger: &Ledger,
    settings: &Settings,
    tenant: &str,
    contact: &str,
    json: bool,
) -> Result<ExitCode> {
    let tenant = super::tenant_arg(tenant)?;
    let contact = super::parse_contact(settings, &tenant, contact)?;
    let query::PersonHistory { events, linked } = query::history(ledger, &tenant, &contact)?;
    let mut out = super::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&events)?)?;
    } else {
        if events.is_empty() {
            writeln!(out, "no events for {} in tenant {}", contact, tenant)?;
        }
        if !linked.is_empty() {
            let others: Vec<&str> = linked.iter().map(|c| c.as_str()).collect();
            writeln!(
                out,
                "linked: {} (one person: their events are shown too)",
                others.join(", ")
            )?;
        }
        for e in &events {
            let purposes: Vec<&str> = e.purposes.iter().map(|p| p.as_str()).collect();
            writeln!(
                out,
                "{}  {:<14} {:<25} {:<10} contact={} keyword={} message={} campaign={} event={}",
                e.occurred_at.to_rfc3339(),
                e.event_type.as_str(),
                purposes.join(","),
                serde_json::to_value(e.source.kind)?.as_str().unwrap_or(""),
                e.contact,
                e.source.keyword.as_deref().unwrap_or("-"),
                e.source.message_id,
                e.campaign_id.as_deref().unwrap_or("-"),
                e.event_id
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
