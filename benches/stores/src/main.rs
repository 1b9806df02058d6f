//! sled, fjall and redb side by side on the ledger's own rows (issue 13: durable opt-out
//! events/s and disk bytes per event, stated per structure).
//!
//!   consent-ledger-stores-bench LEDGER_DIR [--batch 500] [--runs 3] [--seed 1] [--work DIR]
//!       [--engines sled,fjall,redb] [--keep] [--in-key-order]
//!
//! LEDGER_DIR is a closed ledger's directory (DATA_DIR/ledger, a fjall store since layout 6), written by `consent-ledger
//! run` or `ingest`; `scripts/bench.sh stores` makes one from new STOPs. Its rows are replayed
//! into a fresh store of each engine, batch by batch, each batch one atomic write made durable
//! before the next (see `workload` for how the replay maps to a real commit and what it leaves
//! out). Each run replays once into every engine, in an order that rotates from run to run, so
//! that a change in the machine's load falls on all of them; a figure is the median of the runs.
//! `--in-key-order` writes the hash-keyed trees in key order too, as if their keys grew with
//! the log: not the ledger's workload, a measure of what random placement costs each engine.
//!
//! Disk is the blocks allocated to the store's files once it is closed (what `du` counts; the
//! files' lengths, which `du -sb` counts, are shown too), with each engine's own account of
//! it. The input ledger's own size is taken before the tool opens it: a store's recovery at
//! open may rewrite part of a directory, so only a ledger's first reading gives its size as written.
//! Prints a markdown report.

mod engines;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};

use engines::Engine;
use workload::{tree_bytes, Workload};

struct Args {
    ledger: PathBuf,
    batch: usize,
    runs: usize,
    /// None: every tree in key order (`--in-key-order`).
    seed: Option<u64>,
    work: Option<PathBuf>,
    /// Leave the stores in the work dir, to look at them.
    keep: bool,
    engines: Vec<Engine>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        ledger: PathBuf::new(),
        batch: 500,
        runs: 3,
        seed: Some(1),
        work: None,
        keep: false,
        engines: vec![Engine::Sled, Engine::Fjall, Engine::Redb],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--batch" => args.batch = value()?.parse().context("--batch")?,
            "--runs" => args.runs = value()?.parse().context("--runs")?,
            "--seed" => args.seed = Some(value()?.parse().context("--seed")?),
            "--in-key-order" => args.seed = None,
            "--work" => args.work = Some(value()?.into()),
            "--keep" => args.keep = true,
            "--engines" => {
                args.engines = value()?
                    .split(',')
                    .map(Engine::parse)
                    .collect::<anyhow::Result<_>>()?
            }
            flag if flag.starts_with("--") => bail!("unknown option {flag}"),
            path => args.ledger = path.into(),
        }
    }
    if args.ledger.as_os_str().is_empty() || args.batch == 0 || args.runs == 0 {
        bail!("usage: consent-ledger-stores-bench LEDGER_DIR [--batch 500] [--runs 3] [--seed 1] [--work DIR] [--engines sled,fjall,redb] [--keep] [--in-key-order]");
    }
    Ok(args)
}

/// One replay: events/s, the 99th percentile of a batch's commit, the share of the time spent
/// in the call that makes a batch durable, disk after close.
struct Run {
    rate: f64,
    p99_ms: f64,
    durable_share: f64,
    disk: Disk,
    detail: String,
}

fn replay(engine: Engine, dir: &Path, w: &Workload) -> anyhow::Result<Run> {
    let mut store = engine.open(dir, w)?;
    let mut commits = Vec::with_capacity(w.batches);
    let mut durable = 0.0;
    let started = Instant::now();
    for b in 0..w.batches {
        let t = Instant::now();
        durable += store.commit(w, b)?.as_secs_f64();
        commits.push(t.elapsed().as_secs_f64());
    }
    let secs = started.elapsed().as_secs_f64();
    let detail = store.detail(w.events as u64)?;
    drop(store);
    let disk = Disk::of(dir);
    commits.sort_by(f64::total_cmp);
    Ok(Run {
        rate: w.events as f64 / secs,
        p99_ms: commits[(commits.len() * 99 / 100).min(commits.len() - 1)] * 1000.0,
        durable_share: durable / secs,
        disk,
        detail,
    })
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let input_disk = Disk::of(&args.ledger);
    let w = Workload::read(&args.ledger, args.batch, args.seed)?;
    let work = args.work.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("consent-ledger-stores-{}", std::process::id()))
    });
    let mut runs: Vec<Vec<Run>> = args.engines.iter().map(|_| Vec::new()).collect();
    for run in 0..args.runs {
        for k in 0..args.engines.len() {
            let i = (run + k) % args.engines.len();
            let engine = args.engines[i];
            let dir = work.join(format!("{}-{run}", engine.name()));
            if dir.exists() {
                bail!("{} exists: the replay needs a fresh store", dir.display());
            }
            let r = replay(engine, &dir, &w)?;
            eprintln!(
                "run {}: {:5} {:7.0} events/s, p99 commit {:6.1} ms, {:.0} bytes/event on disk",
                run + 1,
                engine.name(),
                r.rate,
                r.p99_ms,
                r.disk.allocated as f64 / w.events as f64
            );
            if !args.keep {
                std::fs::remove_dir_all(&dir)?;
            }
            runs[i].push(r);
        }
    }
    if !args.keep {
        let _ = std::fs::remove_dir(&work);
    }
    report(&args, &w, input_disk, &runs);
    Ok(())
}

fn report(args: &Args, w: &Workload, input_disk: Disk, runs: &[Vec<Run>]) {
    let n = w.events as f64;
    let rows: usize = w.trees.iter().map(|t| t.rows.len()).sum();
    println!(
        "Input: {} events in {} ({} rows in {} trees, {:.1} rows per event), replayed in {} \
         batches of {} events, {}; its own directory: {:.1} MB on disk, {:.0} bytes per \
         event ({:.0} apparent, as `du -sb` counts).\n",
        w.events,
        args.ledger.display(),
        rows,
        w.trees.len(),
        rows as f64 / n,
        w.batches,
        args.batch,
        match args.seed {
            Some(seed) => format!("hash-keyed trees in a shuffled order (seed {seed})"),
            None => "every tree in key order".to_string(),
        },
        input_disk.allocated as f64 / 1e6,
        input_disk.allocated as f64 / n,
        input_disk.apparent as f64 / n
    );
    println!("| tree | rows | key bytes / event | value bytes / event | bytes / event |");
    println!("|---|---|---|---|---|");
    for t in &w.trees {
        let (k, v) = tree_bytes(t);
        let every = if t.every_batch { " (every batch)" } else { "" };
        println!(
            "| `{}`{every} | {} | {:.1} | {:.1} | {:.1} |",
            t.name,
            t.rows.len(),
            k as f64 / n,
            v as f64 / n,
            (k + v) as f64 / n
        );
    }
    let (keys, values) = w
        .trees
        .iter()
        .map(tree_bytes)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let logical = (keys + values) as f64 / n;
    println!(
        "| **all trees** | {rows} | {:.1} | {:.1} | **{logical:.1}** |\n",
        keys as f64 / n,
        values as f64 / n
    );

    let mut head = "| engine |".to_string();
    for r in 1..=args.runs {
        head.push_str(&format!(" run {r} |"));
    }
    println!(
        "{head} median durable events/s | in the durable call | p99 batch commit | \
         on disk after close | bytes / event | disk / logical | apparent bytes / event |"
    );
    println!(
        "|---|{}---|---|---|---|---|---|---|",
        "---|".repeat(args.runs)
    );
    for (engine, rs) in args.engines.iter().zip(runs) {
        let cells: String = rs.iter().map(|r| format!(" {:.0} |", r.rate)).collect();
        let disk = median(rs.iter().map(|r| r.disk.allocated as f64));
        let apparent = median(rs.iter().map(|r| r.disk.apparent as f64));
        println!(
            "| {} |{cells} **{:.0}** | {:.0}% | {:.1} ms | {:.1} MB | **{:.0}** | {:.1}x | {:.0} |",
            engine.name(),
            median(rs.iter().map(|r| r.rate)),
            median(rs.iter().map(|r| r.durable_share)) * 100.0,
            median(rs.iter().map(|r| r.p99_ms)),
            disk / 1e6,
            disk / n,
            disk / n / logical,
            apparent / n
        );
    }
    println!();
    for (engine, rs) in args.engines.iter().zip(runs) {
        if let Some(last) = rs.last() {
            println!("- {} (last run): {}", engine.name(), last.detail);
        }
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        len if len % 2 == 1 => v[len / 2],
        len => (v[len / 2 - 1] + v[len / 2]) / 2.0,
    }
}

/// The files under a directory: their lengths (what `du -sb` counts) and the blocks allocated
/// to them (what `du` counts). They differ for sparse files: fjall sizes each journal file
/// up front without writing it.
#[derive(Clone, Copy, Default)]
struct Disk {
    apparent: u64,
    allocated: u64,
}

impl Disk {
    fn of(dir: &Path) -> Disk {
        use std::os::unix::fs::MetadataExt;
        let mut total = Disk::default();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let Ok(meta) = e.metadata() else { continue };
            let d = if meta.is_dir() {
                Disk::of(&e.path())
            } else {
                Disk {
                    apparent: meta.len(),
                    allocated: meta.blocks() * 512,
                }
            };
            total.apparent += d.apparent;
            total.allocated += d.allocated;
        }
        total
    }
}
