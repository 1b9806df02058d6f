//! Black-box tests of the `consent-ledger` command: the real binary on real data dirs,
//! as a user drives it (ingest, status, check, history, export, verify, migrate, stats, …).
//! One test binary, so the crate is linked once for all of them.

#[path = "../common/mod.rs"]
mod common;

mod attribution;
mod cli;
mod clock;
mod crash;
mod erase;
mod identity;
mod init;
mod iss11;
mod lint;
mod master_key;
mod migrate;
mod proof;
mod report_html;
mod retention;
mod schemas;
mod tamper;
mod webhook_fixtures;
mod webhooks;
