//! File-mode ingest throughput, batch commit latency and the ledger's size on disk, through
//! the library exactly as `consent-ledger ingest` runs it: decode, classify, decide, one atomic
//! write and fsync per batch, the log relayed to JSONL files.
//!
//!   cargo bench --bench ingest -- [RECORDS] [BATCH_SIZE] [MIX]
//!
//! The traffic is WhatsApp webhooks as Meta sends them, one of the mixes of `webhooks`
//! (shared with the Kafka traffic generator): `consent` by default (30% STOP variants, 15%
//! START, 5% quick replies, 5% help, 45% ordinary chat over 50,000 French mobiles), `chat`
//! (2% consent keywords over 200,000 mobiles) or `stops` (every record a new STOP).

use std::io::Cursor;
use std::time::Instant;

use consent_ledger::config::{ConfigFile, Settings};
use consent_ledger::ledger::Ledger;
use consent_ledger::pipeline::file::{ingest, FileSinks};
use consent_ledger::rgpd::MasterKey;

mod webhooks;

/// The binary's allocator (src/main.rs), so that the library runs here as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use webhooks::{Mix, Rng};

fn traffic(n: usize, mix: Mix) -> String {
    let mut out = String::with_capacity(n * 420);
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    for i in 0..n {
        let (from, message) = mix.message(i, rng.next());
        out.push_str(&webhooks::webhook(&from, &message));
        out.push('\n');
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let records: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let batch: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mix: Mix = args
        .get(2)
        .map(|m| m.parse().expect("mix"))
        .unwrap_or(Mix::Consent);
    let input = traffic(records, mix);
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = Ledger::open(&dir.path().join("ledger"), MasterKey::generate()).expect("ledger");
    let file = ConfigFile {
        batch_size: Some(batch),
        ..ConfigFile::default()
    };
    let settings = Settings::from_file(file).expect("settings");
    let mut sinks = FileSinks::in_dir(dir.path(), None);
    let started = Instant::now();
    let summary = ingest(
        &ledger,
        &settings,
        Cursor::new(input.as_bytes()),
        "bench",
        &mut sinks,
    )
    .expect("ingest");
    let secs = started.elapsed().as_secs_f64();
    let batches = records.div_ceil(batch);
    println!(
        "ingest: {records} records in {secs:.2} s = {:.0} records/s, {:.0} events/s ({} events, {} replies), \
         batch size {batch}: {batches} transactions+fsyncs, {:.1} ms per batch",
        records as f64 / secs,
        summary.events as f64 / secs,
        summary.events,
        summary.replies,
        secs * 1000.0 / batches as f64
    );
    ledger.sync().expect("sync");
    println!(
        "ledger on disk: {:.1} MB ({:.0} bytes per record, {:.0} per event)",
        dir_size(&dir.path().join("ledger")) as f64 / 1e6,
        dir_size(&dir.path().join("ledger")) as f64 / records as f64,
        dir_size(&dir.path().join("ledger")) as f64 / summary.events.max(1) as f64
    );
    let started = Instant::now();
    let report = ledger.verify().expect("verify");
    assert!(report.ok(), "{:?}", report.problems);
    println!(
        "verify: {} events in {:.2} s",
        report.events,
        started.elapsed().as_secs_f64()
    );
}

/// Bytes of every file under `dir`.
fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_size(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}
