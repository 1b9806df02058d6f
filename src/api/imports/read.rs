//! The body, already whole in memory, read row by row, CSV or NDJSON (rows.rs): each row
//! checked on its own and the valid ones committed in batches, so the parsed rows of a large file never
//! sit in memory all at once and other writers get the ledger between two batches.

use chrono::Utc;

use super::rows::{self, Row};
use super::{row, ImportReport, RejectedRow, Stop};
use crate::config::{Settings, TenantProfile};
use crate::domain::decide::ConsentRecord;
use crate::domain::tenant::TenantId;
use crate::ledger::Ledger;
use crate::pipeline::commit::{self, Input, Recorded, Respond};

/// Rejected rows listed in the answer; the count goes on beyond.
const MAX_LISTED: usize = 1000;

/// One import's reading state: the rows waiting for their batch and the answer so far.
pub(super) struct Importer {
    /// Scale-out: the valid rows go onto the inbound topic at the end, in one transaction.
    pub(super) forward: Option<std::sync::Arc<crate::api::forward::Forward>>,
    pub(super) forwarded: Vec<ConsentRecord>,
    pub(super) settings: std::sync::Arc<Settings>,
    pub(super) tenant: TenantId,
    pub(super) profile: std::sync::Arc<TenantProfile>,
    pub(super) batch: usize,
    pub(super) report: ImportReport,
}

impl Importer {
    pub(super) fn csv(&mut self, ledger: &Ledger, input: &[u8]) -> Result<(), Stop> {
        let (rows, ignored) = rows::csv(input).map_err(Stop::Header)?;
        self.report.ignored_columns = ignored;
        self.rows(ledger, rows)
    }

    pub(super) fn ndjson(&mut self, ledger: &Ledger, input: &[u8]) -> Result<(), Stop> {
        self.rows(ledger, rows::ndjson(input))
    }

    fn rows(&mut self, ledger: &Ledger, rows: impl Iterator<Item = Row>) -> Result<(), Stop> {
        let mut pending = Vec::new();
        for (line, row) in rows {
            self.report.rows += 1;
            let record =
                row.and_then(|r| row::record(&self.profile, line, r).map_err(|e| e.to_string()));
            match record {
                Ok(record) => pending.push(record),
                Err(reason) => self.reject(line, reason),
            }
            if pending.len() >= self.batch {
                self.commit(ledger, &mut pending)?;
            }
        }
        self.commit(ledger, &mut pending)?;
        if let Some(forward) = &self.forward {
            forward
                .all(&self.tenant, &self.forwarded)
                .map_err(Stop::Forward)?;
            self.report.accepted = Some(self.forwarded.len() as u64);
        }
        Ok(())
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
        if self.forward.is_some() {
            self.forwarded.append(pending);
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
