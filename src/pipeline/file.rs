//! File mode: the embedded default. Records come from a JSONL file or stdin, go through the
//! one commit path in batches, and the log is relayed to JSONL files in the data directory.

use std::io::BufRead;

use chrono::{DateTime, Utc};

use super::commit::{self, CommitError, Committed, Dead, Input, Sinks};
use super::deadletter::{DeadLetter, JsonlFile};
use super::relay::{self, RelayError};
use super::summary::Summary;
use crate::config::Settings;
use crate::domain::decide::Origin;
use crate::ledger::Ledger;

pub use super::relay::FileSinks;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error("cannot read input: {0}")]
    Input(std::io::Error),
}

/// Dead letters go to a JSONL file, fsynced before the batch commits; the input is
/// acknowledged by counting the batch into the run's summary.
struct FileBatch<'a> {
    dead_letter: &'a mut JsonlFile,
    input_name: &'a str,
    summary: &'a mut Summary,
}

impl Sinks for FileBatch<'_> {
    fn dead_letters(&mut self, dead: &[Dead<'_>], now: DateTime<Utc>) -> Result<(), CommitError> {
        let lines = dead.iter().map(|d| {
            tracing::warn!(
                line = d.origin.line,
                code = d.rejection.error.code(),
                "record rejected to the dead-letter file"
            );
            let bytes = d.bytes.unwrap_or_default();
            let record = DeadLetter::new(&d.rejection, d.origin, Some(self.input_name), bytes, now);
            serde_json::to_string(&record).expect("plain struct")
        });
        self.dead_letter
            .append(lines)
            .map(drop)
            .map_err(|e| CommitError::DeadLetters {
                sink: self.dead_letter.path().display().to_string(),
                detail: e.to_string(),
            })
    }

    fn acknowledge(&mut self, committed: &Committed) -> Result<(), CommitError> {
        self.summary.add(&committed.summary);
        Ok(())
    }
}

/// Runs every line of `input` through the pipeline, committing every `batch_size` lines and
/// relaying the log to the JSONL files after each batch.
pub fn ingest<R: BufRead>(
    ledger: &Ledger,
    settings: &Settings,
    input: R,
    input_name: &str,
    sinks: &mut FileSinks,
) -> Result<Summary, IngestError> {
    let batch_size = settings.batch_size();
    let mut summary = Summary::default();
    relay::drain(ledger, sinks)?;
    let mut lines = input.split(b'\n');
    let mut line_no = 0u64;
    loop {
        let mut batch: Vec<(u64, Vec<u8>)> = Vec::with_capacity(batch_size);
        while batch.len() < batch_size {
            let Some(line) = lines.next() else { break };
            let mut line = line.map_err(IngestError::Input)?;
            line_no += 1;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            batch.push((line_no, line));
        }
        if batch.is_empty() {
            break;
        }
        let inputs: Vec<Input<'_>> = batch
            .iter()
            .map(|(line, bytes)| Input::Record {
                bytes: Some(bytes),
                key: None,
                origin: Origin {
                    line: Some(*line),
                    ..Origin::default()
                },
                partition: 0,
            })
            .collect();
        let mut sink = FileBatch {
            dead_letter: &mut sinks.dead_letter,
            input_name,
            summary: &mut summary,
        };
        let committed = commit::commit(ledger, settings, &inputs, &mut sink, Utc::now())?;
        relay::drain(ledger, sinks)?;
        tracing::info!(
            records = batch.len(),
            events = committed.summary.events,
            "batch committed"
        );
    }
    Ok(summary)
}
