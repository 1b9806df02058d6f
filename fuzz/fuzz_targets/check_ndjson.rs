//! The fuzz target `check_ndjson`: its properties are [`consent_ledger::fuzz_targets::check_ndjson`], which
//! the unit tests also run on the regression inputs and on mutated seeds at every `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| consent_ledger::fuzz_targets::check_ndjson::check(data));
