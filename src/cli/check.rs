//! `consent-ledger check`: the campaign audience filter. The contacts that may be sent to go
//! to stdout, so the output is the send list; the others are explained on stderr, each at
//! every line it appears, for the person cleaning the list.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};

use consent_ledger::config::Settings;
use consent_ledger::domain::event::Purpose;
use consent_ledger::ledger::Ledger;
use consent_ledger::query::{Audience, Repeats, Verdict};

pub fn run(
    ledger: &Ledger,
    settings: &Settings,
    tenant: &str,
    purpose: Purpose,
    file: &str,
) -> Result<ExitCode> {
    let tenant = super::tenant_arg(tenant)?;
    let profile = settings.profile(&tenant);
    let mut audience = Audience::new(
        ledger,
        &profile,
        &tenant,
        purpose,
        Repeats::ReportEachExclusion,
    );
    let mut out = super::stdout();
    let mut err = std::io::stderr().lock();
    let mut reader = super::open_input(file)?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .context("cannot read the contact list")?
            == 0
        {
            break;
        }
        // One line of another encoding is one bad contact, not the end of the list (as HTTP).
        let text = match std::str::from_utf8(&line) {
            Ok(text) => text,
            Err(_) => {
                audience.not_a_contact();
                let shown = String::from_utf8_lossy(&line);
                writeln!(err, "invalid\t{}\tnot UTF-8 text", shown.trim())?;
                continue;
            }
        };
        let input = text.trim();
        if input.is_empty() {
            continue;
        }
        match audience.check(input)? {
            Verdict::Allowed(c) => {
                out.write_all(c.as_str().as_bytes())?;
                out.write_all(b"\n")?;
            }
            Verdict::Excluded {
                contact,
                reason,
                since,
            } => {
                let since = since.map(|s| s.to_rfc3339()).unwrap_or_default();
                writeln!(err, "excluded\t{contact}\t{reason}\t{since}")?;
            }
            Verdict::Invalid { input, reason } => writeln!(err, "invalid\t{input}\t{reason}")?,
            Verdict::Duplicate(_) => {}
        }
    }
    out.flush()?;
    let c = audience.counts();
    writeln!(
        err,
        "checked {} contacts: {} allowed, {} excluded, {} invalid, {} duplicates",
        c.checked, c.allowed, c.excluded, c.invalid, c.duplicates
    )?;
    Ok(ExitCode::SUCCESS)
}
