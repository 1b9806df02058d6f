//! `serve`: webhook records go through the one commit path, and the 200 waits for it. One
//! thread writes them: it takes every delivery waiting when it starts a batch and commits
//! them together, so a burst of deliveries costs a few fsyncs rather than one each, and each
//! request is answered once the batch holding it is durable. Dead letters (what the receiver
//! set apart, and what the commit path rejects) are appended and fsynced to
//! `dead-letter.jsonl` before the batch commits, as `ingest` does.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{Delivered, Part, Provider, Unavailable};
use crate::config::Settings;
use crate::domain::decide::Origin;
use crate::ledger::Ledger;
use crate::metrics::{Metrics, ReasonLabels};
use crate::pipeline::commit::{self, CommitError, Committed, Dead, Input, Sinks};
use crate::pipeline::deadletter::{DeadLetter, JsonlFile};
use crate::pipeline::Rejection;

/// Deliveries committed together at most: enough to absorb a burst, few enough that one
/// batch's transaction stays small.
const BATCH: usize = 256;

struct Job {
    provider: Provider,
    parts: Vec<Part>,
    done: oneshot::Sender<Result<Delivered, Unavailable>>,
}

pub(super) struct LedgerSink {
    jobs: mpsc::Sender<Job>,
}

impl LedgerSink {
    /// Starts the writer thread; it stops when the sink is dropped.
    pub fn start(
        ledger: Arc<Ledger>,
        settings: Arc<Settings>,
        dead_letter: &Path,
        metrics: Metrics,
    ) -> LedgerSink {
        let (jobs, queue) = mpsc::channel::<Job>();
        let mut writer = Writer {
            ledger,
            settings,
            dead_letter: JsonlFile::new(dead_letter),
            metrics,
        };
        std::thread::Builder::new()
            .name("webhook-writer".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    batch.extend(queue.try_iter().take(BATCH - 1));
                    writer.write(batch);
                }
            })
            .expect("spawning a thread");
        LedgerSink { jobs }
    }

    pub async fn deliver(
        &self,
        provider: Provider,
        parts: Vec<Part>,
    ) -> Result<Delivered, Unavailable> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            provider,
            parts,
            done,
        };
        self.jobs.send(job).map_err(|_| Unavailable::Stopping)?;
        answer.await.map_err(|_| Unavailable::Stopping)?
    }
}

struct Writer {
    ledger: Arc<Ledger>,
    settings: Arc<Settings>,
    dead_letter: JsonlFile,
    metrics: Metrics,
}

impl Writer {
    fn write(&mut self, batch: Vec<Job>) {
        let started = Instant::now();
        // Which job each input belongs to, to count and label its dead letters.
        let mut inputs = Vec::new();
        let mut owners = Vec::new();
        let mut set_apart = Vec::new();
        for (j, job) in batch.iter().enumerate() {
            for part in &job.parts {
                match part {
                    Part::Record { key, bytes } => {
                        inputs.push(Input::Record {
                            bytes: Some(bytes),
                            key: Some(key.as_bytes()),
                            origin: Origin::default(),
                            partition: 0,
                        });
                        owners.push(j);
                    }
                    Part::Unusable { bytes, rejection } => set_apart.push((j, rejection, bytes)),
                }
            }
        }
        let mut per_job = vec![Delivered::default(); batch.len()];
        let mut sinks = DeadLetters {
            file: &mut self.dead_letter,
            jobs: &batch,
            inputs: &inputs,
            owners: &owners,
            set_apart: &set_apart,
            per_job: &mut per_job,
            metrics: &self.metrics,
        };
        let result = commit::commit(
            &self.ledger,
            &self.settings,
            &inputs,
            &mut sinks,
            Utc::now(),
        );
        let result = result.map(|committed| self.count(&committed, started));
        for (j, job) in batch.into_iter().enumerate() {
            let answer = match &result {
                Ok(()) => Ok(Delivered {
                    records: owners.iter().filter(|o| **o == j).count(),
                    ..per_job[j]
                }),
                Err(e) => Err(Unavailable::Ledger(e.to_string())),
            };
            let _ = job.done.send(answer);
        }
    }

    fn count(&self, committed: &Committed, started: Instant) {
        let m = &self.metrics;
        m.batches.inc();
        m.records_read.inc_by(committed.summary.read);
        m.events_appended.inc_by(committed.summary.events);
        m.clock_corrected.inc_by(committed.summary.clock_corrected);
        m.commit_seconds.observe(started.elapsed().as_secs_f64());
    }
}

/// The batch's dead letters, to the file before the batch commits.
struct DeadLetters<'a, 'b> {
    file: &'a mut JsonlFile,
    jobs: &'a [Job],
    inputs: &'a [Input<'b>],
    owners: &'a [usize],
    set_apart: &'a [(usize, &'b Rejection, &'b Vec<u8>)],
    per_job: &'a mut [Delivered],
    metrics: &'a Metrics,
}

impl DeadLetters<'_, '_> {
    /// The job whose input `d` came from: the commit path hands back the input's own origin.
    fn owner(&self, d: &Dead<'_>) -> usize {
        let index = self.inputs.iter().position(
            |i| matches!(i, Input::Record { origin, .. } if std::ptr::eq(origin, d.origin)),
        );
        index.map_or(0, |i| self.owners[i])
    }

    fn line(
        &mut self,
        job: usize,
        rejection: &Rejection,
        bytes: &[u8],
        now: DateTime<Utc>,
    ) -> String {
        let provider = self.jobs[job].provider;
        self.per_job[job].dead_lettered += 1;
        self.metrics
            .dead_lettered
            .get_or_create(&ReasonLabels {
                reason: rejection.error.code().to_string(),
            })
            .inc();
        tracing::warn!(
            provider = provider.as_str(),
            code = rejection.error.code(),
            "webhook record dead-lettered"
        );
        let origin = Origin::default();
        let record = DeadLetter::new(rejection, &origin, Some(provider.source()), bytes, now);
        serde_json::to_string(&record).expect("plain struct")
    }
}

impl Sinks for DeadLetters<'_, '_> {
    fn dead_letters(&mut self, dead: &[Dead<'_>], now: DateTime<Utc>) -> Result<(), CommitError> {
        let mut lines = Vec::new();
        for &(job, rejection, bytes) in self.set_apart {
            lines.push(self.line(job, rejection, bytes, now));
        }
        for d in dead {
            let job = self.owner(d);
            lines.push(self.line(job, &d.rejection, d.bytes.unwrap_or_default(), now));
        }
        self.file
            .append(lines)
            .map(drop)
            .map_err(|e| CommitError::DeadLetters {
                sink: self.file.path().display().to_string(),
                detail: e.to_string(),
            })
    }

    fn acknowledge(&mut self, _: &Committed) -> Result<(), CommitError> {
        Ok(())
    }
}
