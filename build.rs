//! Compiles every language file of `src/domain/language/` into the library, so that adding a
//! language is adding one file: this lists the folder and writes the `include_str!` table.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

const FOLDER: &str = "src/domain/language";

fn main() {
    println!("cargo:rerun-if-changed={FOLDER}");
    let dir = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join(FOLDER);
    let mut files: Vec<(String, String)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable language folder entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .map(|path| {
            let code = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("language file names are UTF-8")
                .to_string();
            let path = path.to_str().expect("UTF-8 path").to_string();
            (code, path)
        })
        .collect();
    // Sorted so the generated file, and thus the build, does not depend on directory order.
    files.sort();
    let mut out = String::from("&[\n");
    for (code, path) in &files {
        let _ = writeln!(out, "    ({code:?}, include_str!({path:?})),");
    }
    out.push(']');
    let target = Path::new(&env::var("OUT_DIR").expect("set by cargo")).join("language_files.rs");
    fs::write(&target, out).unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
}
