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
    no_transparent_huge_pages();
    let args = cli::Cli::parse();
    cli::init_logging(&args.command);
    cli::exit_code(cli::dispatch(args))
}

/// mimalloc asks the kernel for transparent huge pages on its arenas, and a 2 MiB page stays
/// resident as long as one small block in it lives. Under a steady stream of writes `serve`
/// held 40 to 80 MB more with them (BENCHMARKS.md, "Soak"), and a 1,000,000-contact `check`
/// was no faster.
fn no_transparent_huge_pages() {
    #[cfg(all(target_os = "linux", not(feature = "system-allocator")))]
    // Ignored on error: a kernel without the flag keeps its default, which is only slower to
    // give memory back.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}
