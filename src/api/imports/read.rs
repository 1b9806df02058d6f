//! The body, already whole in memory, read row by row, CSV or NDJSON: each row checked on
//! its own and the valid ones committed in batches, so the parsed rows of a large file never
//! sit in memory all at once and other writers get the ledger between two batches.

use chrono::Utc;

use super::row;
use super::{ImportReport, ImportRow, RejectedRow, Stop};
use crate::config::{Settings, TenantProfile};
use crate::domain::decide::ConsentRecord;
use crate::domain::tenant::TenantId;
use crate::ledger::Ledger;
use crate::pipeline::commit::{self, Input, Recorded, Respond};

/// Rejected rows listed in the answer; the count goes on beyond.
const MAX_LISTED: usize = 1000;

/// One import's reading state: the rows waiting for their batch and the answer so far.
pub(super) struct Importer {
    pub(super) settings: std::sync::Arc<Settings>,
    pub(super) tenant: TenantId,
    pub(super) profile: std::sync::Arc<TenantProfile>,
    pub(super) batch: usize,
    pub(super) report: ImportReport,
}

impl Importer {
    pub(super) fn csv(&mut self, ledger: &Ledger, input: &[u8]) -> Result<(), Stop> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(input);
        let header = rdr
            .headers()
            .map_err(|e| Stop::Header(e.to_string()))?
            .clone();
        let names: Vec<String> = header.iter().map(|h| h.to_ascii_lowercase()).collect();
        let column = |name: &str| names.iter().position(|n| n == name);
        let missing: Vec<&str> = ["contact", "status", "occurred_at"]
            .into_iter()
            .filter(|c| column(c).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Stop::Header(format!(
                "the first line must be a header naming the columns; missing: {} (found: {})",
                missing.join(", "),
                names.join(", ")
            )));
        }
        let known = ["contact", "status", "occurred_at", "source", "scope"];
        // Two columns of the same name would leave one of them silently unread.
        if let Some(twice) = known
            .iter()
            .find(|k| names.iter().filter(|n| n == k).count() > 1)
        {
            return Err(Stop::Header(format!(
                "the column {twice} appears more than once in the header; keep one (found: {})",
                names.join(", ")
            )));
        }
        self.report.ignored_columns = names
            .iter()
            .filter(|n| !known.contains(&n.as_str()))
            .cloned()
            .collect();
        let idx: Vec<Option<usize>> = known.iter().map(|k| column(k)).collect();
        let mut pending = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match rdr.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    if record.iter().all(str::is_empty) {
                        continue;
                    }
                    let get = |i: usize| {
                        idx[i]
                            .and_then(|c| record.get(c))
                            .filter(|v| !v.is_empty())
                            .map(str::to_string)
                    };
                    let row = ImportRow {
                        contact: get(0),
                        status: get(1),
                        occurred_at: get(2),
                        source: get(3),
                        scope: get(4),
                    };
                    self.row(line, row, &mut pending);
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    self.report.rows += 1;
                    self.reject(line, format!("unreadable CSV row: {e}"));
                }
            }
            if pending.len() >= self.batch {
                self.commit(ledger, &mut pending)?;
            }
        }
        self.commit(ledger, &mut pending)
    }

    pub(super) fn ndjson(&mut self, ledger: &Ledger, input: &[u8]) -> Result<(), Stop> {
        let mut pending = Vec::new();
        for (line, bytes) in (1u64..).zip(input.split(|b| *b == b'\n')) {
            let text = String::from_utf8_lossy(bytes);
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<ImportRow>(&text) {
                Ok(row) => self.row(line, row, &mut pending),
                Err(e) => {
                    self.report.rows += 1;
                    self.reject(line, format!("invalid JSON: {e}"));
                }
            }
            if pending.len() >= self.batch {
                self.commit(ledger, &mut pending)?;
            }
        }
        self.commit(ledger, &mut pending)
    }

    fn row(&mut self, line: u64, row: ImportRow, pending: &mut Vec<ConsentRecord>) {
        self.report.rows += 1;
        match row::record(&self.profile, line, row) {
            Ok(record) => pending.push(record),
            Err(reason) => self.reject(line, reason.to_string()),
        }
    }

    fn reject(&mut self, line: u64, reason: String) {
        self.report.rejected += 1;
        if self.report.rejections.len() < MAX_LISTED {
            self.report.rejections.push(RejectedRow { line, reason });
        }
    }

    /// Appends the valid rows read so far, in one durable batch. Rows are parsed before the
    /// batch opens, so a slow upload never holds the ledger's writer lock.
    fn commit(&mut self, ledger: &Ledger, pending: &mut Vec<ConsentRecord>) -> Result<(), Stop> {
        if pending.is_empty() {
            return Ok(());
        }
        let inputs: Vec<Input<'_>> = pending
            .iter()
            .map(|record| Input::Consent {
                tenant: &self.tenant,
                record,
            })
            .collect();
        let committed = commit::commit(ledger, &self.settings, &inputs, &mut Respond, Utc::now())?;
        for r in &committed.recorded {
            match r {
                Recorded::Appended(_) => self.report.imported += 1,
                Recorded::Duplicate { .. } => self.report.duplicates += 1,
            }
        }
        pending.clear();
        Ok(())
    }
}
