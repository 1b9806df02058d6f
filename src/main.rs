//! The `consent-ledger` command: parses the arguments and dispatches to [`cli`], one file per
//! command. Exit codes: 0 success, 1 failure (verify mismatch, storage error), 2 usage error.

use std::process::ExitCode;

use clap::Parser;

mod cli;

/// mimalloc: glibc's malloc and free were a quarter of the writer thread's time on a real
/// stream of small messages (BENCHMARKS.md, "Kafka throughput"). The `system-allocator`
/// feature leaves it out, so heap profilers that hook malloc (heaptrack, valgrind) see every
/// allocation.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(&args.command);
    cli::exit_code(cli::dispatch(args))
}
