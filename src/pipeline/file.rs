//! File mode: the embedded default. Records come from a JSONL file or stdin, go through the
//! same stages as Kafka mode, and the outbox is relayed to JSONL files in the data directory.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::deadletter::{DeadLetter, JsonlFile};
use super::{Processor, Rejection, Summary};
use crate::config::Settings;
use crate::domain::decide::Origin;
use crate::ledger::{Ledger, LedgerError, OutboxTarget};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot read input: {0}")]
    Input(std::io::Error),
    #[error("cannot write {path}: {source}")]
    Output {
        path: String,
        source: std::io::Error,
    },
}

/// Where file mode writes what it produces.
pub struct FileSinks {
    pub dead_letter: JsonlFile,
    pub consent_events: JsonlFile,
    pub outbound: JsonlFile,
}

impl FileSinks {
    pub fn in_dir(data_dir: &Path, dead_letter: Option<PathBuf>) -> Self {
        FileSinks {
            dead_letter: JsonlFile::new(
                &dead_letter.unwrap_or_else(|| data_dir.join("dead-letter.jsonl")),
            ),
            consent_events: JsonlFile::new(&data_dir.join("consent-events.jsonl")),
            outbound: JsonlFile::new(&data_dir.join("outbox.jsonl")),
        }
    }
}

fn output_err(file: &JsonlFile) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Output {
        path: file.path().display().to_string(),
        source,
    }
}

/// Publishes everything in the outbox to the JSONL sinks, then removes it from the outbox.
/// A crash between the two writes the same lines again on restart: consumers dedupe by
/// `event_id` / `message_id`, exactly as with Kafka.
pub fn relay_outbox(ledger: &Ledger, sinks: &mut FileSinks) -> Result<usize, IngestError> {
    let mut total = 0;
    loop {
        let pending = ledger.outbox_pending(10_000)?;
        if pending.is_empty() {
            return Ok(total);
        }
        let (mut events, mut messages, mut ids) = (vec![], vec![], vec![]);
        for (id, entry) in pending {
            ids.push(id);
            match entry.target {
                OutboxTarget::ConsentEvents => events.push(entry.payload),
                OutboxTarget::OutboundMessages => messages.push(entry.payload),
            }
        }
        sinks
            .consent_events
            .append(events)
            .map_err(output_err(&sinks.consent_events))?;
        sinks
            .outbound
            .append(messages)
            .map_err(output_err(&sinks.outbound))?;
        ledger.outbox_ack(&ids)?;
        total += ids.len();
    }
}

/// Runs every line of `input` through the pipeline, committing every `batch_size` lines.
pub fn ingest<R: BufRead>(
    ledger: &Ledger,
    settings: &Settings,
    input: R,
    input_name: &str,
    sinks: &mut FileSinks,
) -> Result<Summary, IngestError> {
    let processor = Processor::new(settings);
    let batch_size = settings.batch_size();
    let mut summary = Summary::default();
    relay_outbox(ledger, sinks)?;
    let mut lines = input.split(b'\n');
    let mut line_no = 0u64;
    loop {
        let mut staged = ledger.stage();
        let mut dead = Vec::new();
        let mut batch = Summary::default();
        let mut taken = 0;
        let now = Utc::now();
        while taken < batch_size {
            let Some(line) = lines.next() else { break };
            let mut line = line.map_err(IngestError::Input)?;
            line_no += 1;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            taken += 1;
            let origin = Origin {
                line: Some(line_no),
                ..Origin::default()
            };
            let rejected: Vec<Rejection> =
                processor.process(&mut staged, &line, &origin, 0, now, &mut batch)?;
            for r in &rejected {
                tracing::warn!(
                    line = line_no,
                    code = r.error.code(),
                    "record rejected to the dead-letter file"
                );
                let record = DeadLetter::new(r, &origin, Some(input_name), &line, now);
                dead.push(serde_json::to_string(&record).expect("plain struct"));
            }
        }
        if taken == 0 {
            break;
        }
        // Dead letters first: a crash between the two writes repeats a dead letter on the
        // next run instead of losing it.
        sinks
            .dead_letter
            .append(dead)
            .map_err(output_err(&sinks.dead_letter))?;
        let committed = staged.commit()?;
        relay_outbox(ledger, sinks)?;
        tracing::info!(
            records = taken,
            events = committed.events,
            "batch committed"
        );
        summary.add(&batch);
    }
    Ok(summary)
}
