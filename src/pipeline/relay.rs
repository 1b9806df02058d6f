//! File mode's relay: follows the event log and the reply log from the file sink's cursors
//! and appends to `consent-events.jsonl` and `outbox.jsonl`. A crash between an append and
//! the cursor move writes the same lines again on restart: readers dedupe by `event_id` /
//! `message_id`, exactly as Kafka subscribers do. Kafka mode's relay is
//! [`super::kafka::relay`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::deadletter::JsonlFile;
use crate::ledger::{Ledger, LedgerError, LogEntry, Sink, Stream};

/// Entries read from the log per append.
const CHUNK: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
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
                &dead_letter.unwrap_or_else(|| data_dir.join(super::deadletter::FILE_NAME)),
            ),
            consent_events: JsonlFile::new(&data_dir.join("consent-events.jsonl")),
            outbound: JsonlFile::new(&data_dir.join("outbox.jsonl")),
        }
    }
}

pub(crate) fn output_err(file: &JsonlFile) -> impl FnOnce(std::io::Error) -> RelayError + '_ {
    move |source| RelayError::Output {
        path: file.path().display().to_string(),
        source,
    }
}

/// Publishes everything the file sink has not published yet; returns how many entries.
pub fn drain(ledger: &Ledger, sinks: &mut FileSinks) -> Result<usize, RelayError> {
    let mut total = 0;
    for stream in Stream::ALL {
        let file = match stream {
            Stream::Events => &mut sinks.consent_events,
            Stream::Replies => &mut sinks.outbound,
        };
        loop {
            let entries = ledger.unpublished(Sink::File, stream, CHUNK)?;
            if entries.is_empty() {
                break;
            }
            let lines = entries
                .iter()
                .filter(|e| !e.payload.is_empty())
                .map(|e| String::from_utf8_lossy(&e.payload).into_owned());
            file.append(lines).map_err(output_err(file))?;
            advance(ledger, Sink::File, &entries)?;
            total += entries.len();
        }
    }
    if total > 0 {
        ledger.flush_cursors()?;
    }
    Ok(total)
}

/// Moves each partition's cursor to the last of `entries` its sink acknowledged.
pub(crate) fn advance(
    ledger: &Ledger,
    sink: Sink,
    entries: &[LogEntry],
) -> Result<(), LedgerError> {
    let mut last = std::collections::BTreeMap::new();
    for e in entries {
        let seq = last.entry((e.stream, e.partition)).or_insert(e.seq);
        *seq = (*seq).max(e.seq);
    }
    for ((stream, partition), seq) in last {
        ledger.advance(sink, stream, partition, seq)?;
    }
    Ok(())
}

/// File mode's publisher for a long-running process (`serve`): drains the log to the JSONL
/// files after every commit, so events recorded over HTTP reach `consent-events.jsonl` the
/// same way `ingest` publishes its own. Returns when `shutdown` resolves, after a last drain.
pub async fn relay_files_on_commit(
    ledger: Arc<Ledger>,
    sinks: FileSinks,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut commits = ledger.subscribe();
    let sinks = Arc::new(std::sync::Mutex::new(sinks));
    let relay = || {
        let (ledger, sinks) = (ledger.clone(), sinks.clone());
        tokio::task::spawn_blocking(move || {
            let mut sinks = sinks.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = drain(&ledger, &mut sinks) {
                tracing::error!(error = %e, "cannot relay the log to the JSONL files");
            }
        })
    };
    let _ = relay().await;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            changed = commits.changed() => {
                if changed.is_err() {
                    break;
                }
                let _ = relay().await;
            }
            () = &mut shutdown => break,
        }
    }
    let _ = relay().await;
}
