//! `consent-ledger schemas`: the JSON Schemas of every record that crosses a process boundary.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use consent_ledger::schemas;

pub fn run(dir: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, schema) in schemas::all() {
        let path = dir.join(name);
        std::fs::write(&path, schemas::render(&schema))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
