//! `consent-ledger stats`: opt-out statistics per campaign as a table (or JSON), and the
//! HTML report with `--html`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::UsageError;
use consent_ledger::config::Settings;
use consent_ledger::domain::analytics::TenantStats;
use consent_ledger::ledger::Ledger;
use consent_ledger::{query, report};

pub fn run(
    ledger: &Ledger,
    settings: &Settings,
    tenant: &str,
    since: Option<&str>,
    json: bool,
    html: Option<PathBuf>,
) -> Result<ExitCode> {
    let tenant = super::tenant_arg(tenant)?;
    let since = match since {
        None => None,
        Some(s) => Some(query::parse_time(s).ok_or_else(|| {
            UsageError(format!(
                "--since {s:?} is not a time (RFC 3339 or YYYY-MM-DD)"
            ))
        })?),
    };
    let stats = query::stats(ledger, &settings.profile(&tenant), &tenant, since)?;
    if let Some(path) = &html {
        std::fs::write(path, report::html(&stats))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = super::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?;
    } else {
        print_table(&mut out, &stats)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn print_table(out: &mut impl Write, stats: &TenantStats) -> Result<()> {
    let pct = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{:.2}%", r * 100.0));
    writeln!(
        out,
        "{:<24} {:>8} {:>9} {:>8} {:>8} {:>5} {:>8}  anomaly",
        "campaign", "sent", "delivered", "opt-outs", "rate", "help", "possible"
    )?;
    for c in &stats.campaigns {
        writeln!(
            out,
            "{:<24} {:>8} {:>9} {:>8} {:>8} {:>5} {:>8}  {}",
            c.campaign_id,
            c.sent,
            c.delivered
                .map_or_else(|| "-".to_string(), |d| d.to_string()),
            c.opt_outs,
            pct(c.opt_out_rate),
            c.help_requests,
            c.possible_opt_outs,
            if c.anomaly.flagged {
                format!("FLAGGED: {}", c.anomaly.reasons.join("; "))
            } else {
                "-".to_string()
            }
        )?;
    }
    writeln!(
        out,
        "{} campaigns; tenant median opt-out rate {}",
        stats.campaigns.len(),
        pct(stats.median_opt_out_rate)
    )?;
    Ok(())
}
