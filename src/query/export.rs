//! The audit log: every event with its proof fields, as JSON lines or CSV (for the people
//! who open it in a spreadsheet), its personal fields opened (`[erased]` where a key was
//! destroyed). The hashes cover the stored form, whose fields are sealed: `verify` checks
//! them in place, and an access export carries both forms and the keys between them.
//! `export` and `GET /v1/tenants/{t}/export` write this.

use std::io::{self, Write};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::event::ConsentEvent;
use crate::domain::tenant::TenantId;
use crate::ledger::{Ledger, LedgerError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    #[default]
    Jsonl,
    Csv,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 2] = [ExportFormat::Jsonl, ExportFormat::Csv];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown export format {0:?} (expected jsonl or csv)")]
pub struct UnknownFormat(pub String);

impl FromStr for ExportFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// Why an export stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes the events recorded at or after `since` (an incremental export takes the time of
/// the previous one): all of them in log order (partition, then chain order), or those of
/// `tenant` in append order, read through the tenant's index so that an export costs in
/// proportion to the tenant's own events. Streams: one event in memory at a time.
pub fn export<W: Write + ?Sized>(
    ledger: &Ledger,
    tenant: Option<&TenantId>,
    since: Option<DateTime<Utc>>,
    format: ExportFormat,
    out: &mut W,
) -> Result<(), ExportError> {
    write_header(format, out)?;
    let events: Box<dyn Iterator<Item = Result<ConsentEvent, LedgerError>>> = match tenant {
        Some(t) => Box::new(ledger.tenant_events(t, 0).map(|r| r.map(|(_, e)| e))),
        None => Box::new(ledger.events()),
    };
    for event in events {
        let event = event?;
        if since.is_some_and(|s| event.recorded_at < s) {
            continue;
        }
        let event = ledger.open_event(event)?;
        match format {
            ExportFormat::Jsonl => {
                out.write_all(&event.stored_bytes())?;
                out.write_all(b"\n")?;
            }
            ExportFormat::Csv => writeln!(out, "{}", csv_row(&event))?,
        }
    }
    Ok(())
}

/// What an export writes before its first event, so an export that matches no event is this
/// alone: the CSV header, nothing for JSON lines.
pub fn write_header<W: Write + ?Sized>(format: ExportFormat, out: &mut W) -> io::Result<()> {
    if format == ExportFormat::Csv {
        writeln!(out, "{}", CSV_COLUMNS.join(","))?;
    }
    Ok(())
}

/// Columns of the CSV audit export, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "event_id",
    "partition",
    "seq",
    "tenant",
    "contact",
    "channel",
    "type",
    "purposes",
    "occurred_at",
    "recorded_at",
    "source_kind",
    "message_id",
    "keyword",
    "rule",
    "text",
    "language",
    "context_message_id",
    "campaign_id",
    "attribution",
    "topic",
    "kafka_partition",
    "offset",
    "line",
    "prev_hash",
    "hash",
];

/// One event as a CSV row (RFC 4180 quoting).
pub fn csv_row(e: &ConsentEvent) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let fields: Vec<String> = vec![
        e.event_id.to_string(),
        e.partition.to_string(),
        e.seq.to_string(),
        e.tenant.to_string(),
        e.contact.to_string(),
        e.channel.clone(),
        e.event_type.as_str().to_string(),
        e.purposes
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(";"),
        e.occurred_at.to_rfc3339(),
        e.recorded_at.to_rfc3339(),
        serde_name(&e.source.kind),
        e.source.message_id.clone(),
        opt(&e.source.keyword),
        opt(&e.source.rule),
        opt(&e.source.text),
        opt(&e.source.language),
        opt(&e.source.context_message_id),
        opt(&e.campaign_id),
        serde_name(&e.attribution),
        opt(&e.source.topic),
        num(e.source.kafka_partition.map(i64::from)),
        num(e.source.offset),
        num(e.source.line.map(|l| l as i64)),
        e.prev_hash.clone(),
        e.hash.clone(),
    ];
    fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",")
}

/// First characters a spreadsheet reads as the start of a formula (CWE-1236).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One cell, RFC 4180 quoted. The audit file is opened in spreadsheets and its texts come from
/// customers and callers, so a cell that could start a formula gets OWASP's leading single
/// quote; E.164 contacts (`+33…`) too, since a spreadsheet would evaluate them as well.
fn csv_field(f: &str) -> String {
    let f = if f.starts_with(FORMULA_STARTS) {
        format!("'{f}")
    } else {
        f.to_string()
    };
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f
    }
}

/// The serde name of a unit enum value (`quick_reply`, `reply_context`).
fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("STOP"), "STOP");
        assert_eq!(csv_field("stop, please"), "\"stop, please\"");
        assert_eq!(csv_field("say \"stop\"\n"), "\"say \"\"stop\"\"\n\"");
    }

    #[test]
    fn csv_cells_that_could_start_a_formula_are_quoted_with_an_apostrophe() {
        assert_eq!(csv_field("=STOP"), "'=STOP");
        assert_eq!(csv_field("+33612345678"), "'+33612345678");
        assert_eq!(csv_field("-1+1"), "'-1+1");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tx"), "'\tx");
        assert_eq!(csv_field("\rx"), "\"'\rx\"");
        assert_eq!(csv_field("=1,2"), "\"'=1,2\"");
        assert_eq!(csv_field("STOP =1"), "STOP =1");
    }

    #[test]
    fn formats_read_back_their_own_names() {
        for f in ExportFormat::ALL {
            assert_eq!(f.as_str().parse::<ExportFormat>().unwrap(), f);
            let json = format!("\"{}\"", f.as_str());
            assert_eq!(serde_json::from_str::<ExportFormat>(&json).unwrap(), f);
        }
        assert!("xml".parse::<ExportFormat>().is_err());
    }
}
