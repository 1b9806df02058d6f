//! The checked-in JSON Schemas must be exactly what the Rust types generate. Run with
//! `UPDATE_SCHEMAS=1` (or `consent-ledger schemas`) after changing a record type on purpose.

use std::path::Path;

#[test]
fn checked_in_schemas_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let mut drifted = Vec::new();
    for (name, schema) in consent_ledger::schemas::all() {
        let path = dir.join(name);
        let expected = consent_ledger::schemas::render(&schema);
        if update {
            std::fs::write(&path, &expected).unwrap();
            continue;
        }
        let found = std::fs::read_to_string(&path).unwrap_or_default();
        if found != expected {
            drifted.push(name);
        }
    }
    assert!(
        drifted.is_empty(),
        "schemas drifted from the Rust types: {drifted:?}; regenerate with `cargo run -- schemas` and review the diff"
    );
}
