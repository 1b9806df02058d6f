//! The properties of the fuzz targets of `fuzz/`, one module per target: each `check` takes
//! any bytes and panics where a property does not hold. Public only for `fuzz/`: not an API.
//!
//! Two drivers run them. `scripts/fuzz.sh` feeds them to libFuzzer, coverage-guided, for as
//! long as one likes (README, "Tests"). And the unit tests below run every target at every
//! `cargo test`, CI included: on the inputs of the bugs found so far
//! (`fuzz/regressions/TARGET/`), on real inputs (the project's webhook fixtures, keyword
//! corpus, templates and bodies), and on those inputs mutated by proptest (bytes flipped,
//! inserted, cut and spliced). CI runs no libFuzzer: its own build of every dependency under
//! coverage flags, with cargo-fuzz itself, took a third of the suite's CPU.

use std::sync::{Arc, OnceLock};

use crate::config::{ConfigFile, Settings, TenantProfile};
use crate::domain::tenant::TenantId;

/// The profile of a tenant of the default config with a region, so national numbers parse:
/// what the body readers read with.
fn profile() -> &'static TenantProfile {
    static PROFILE: OnceLock<Arc<TenantProfile>> = OnceLock::new();
    PROFILE.get_or_init(|| {
        let mut file = ConfigFile::default();
        file.defaults.region = Some("FR".into());
        let settings = Settings::from_file(file).expect("the default config is valid");
        settings.profile(&TenantId::new("acme").expect("a valid tenant id"))
    })
}

pub mod check_ndjson;
pub mod classify;
pub mod decode;
pub mod import_rows;
pub mod lint_template;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// The files of `dir` (none when it does not exist), sorted.
    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        out.retain(|p| p.is_file());
        out.sort();
        out
    }

    /// The non-empty lines of a text file.
    fn lines(path: &Path) -> Vec<Vec<u8>> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.as_bytes().to_vec())
            .collect()
    }

    /// The inputs a target starts from: its regression inputs, then real inputs.
    fn seeds(target: &str) -> Vec<Vec<u8>> {
        let root = root();
        let mut out: Vec<Vec<u8>> = files(&root.join("fuzz/regressions").join(target))
            .iter()
            .filter(|p| p.extension().is_none())
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        // tests/fixtures/webhooks/SHAPE/*.json: each file a map of named webhooks.
        let webhooks = || {
            let mut all = Vec::new();
            let shapes = std::fs::read_dir(root.join("tests/fixtures/webhooks")).unwrap();
            for shape in shapes.filter_map(|e| e.ok().map(|e| e.path())) {
                for path in files(&shape) {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if let Ok(serde_json::Value::Object(named)) = serde_json::from_str(&text) {
                        all.extend(named.values().map(|v| v.to_string().into_bytes()));
                    }
                }
            }
            all
        };
        match target {
            "decode" => {
                out.extend(webhooks());
                out.extend(lines(&root.join("examples/whatsapp-webhooks.jsonl")));
                for path in files(&root.join("tests/fixtures")) {
                    if path.extension().is_some_and(|e| e == "jsonl") {
                        out.extend(lines(&path));
                    }
                }
            }
            "classify" => {
                let corpus = lines(&root.join("tests/fixtures/keywords/corpus.jsonl"));
                for (i, line) in corpus.iter().enumerate() {
                    let case: serde_json::Value = serde_json::from_slice(line).unwrap();
                    let text = case["text"].as_str().unwrap_or_default();
                    out.push([&[i as u8][..], text.as_bytes()].concat());
                }
            }
            "import_rows" => {
                let csv = "contact,status,occurred_at,source\n+33612345678,opted_out,2025-11-24T10:00:00Z,crm\n0612345679,opted_in,2025-01-01,shop\nUS.13491208655302741918,opted_out,2025-02-01,\n";
                let ndjson = "{\"contact\":\"+33612345678\",\"status\":\"opted_out\",\"occurred_at\":\"2025-11-24T10:00:00Z\"}\n{\"contact\":\"06 12 34 56 79\",\"status\":\"opted_in\"}\n";
                out.push([b"\x00".as_slice(), csv.as_bytes()].concat());
                out.push([b"\x00\xEF\xBB\xBF".as_slice(), csv.as_bytes()].concat());
                out.push([b"\x01".as_slice(), ndjson.as_bytes()].concat());
            }
            "check_ndjson" => {
                let audience = std::fs::read(root.join("examples/audience.txt")).unwrap();
                out.push([b"\xfe\x00\x00".as_slice(), &audience].concat());
                out.push([b"\x0f\x40\x00".as_slice(), &audience].concat());
            }
            "lint_template" => {
                for path in files(&root.join("examples/templates")) {
                    out.push(std::fs::read(path).unwrap());
                }
            }
            other => panic!("no seeds for {other}"),
        }
        assert!(out.len() > 1, "{target}: no seeds found");
        out
    }

    /// One edit of an input: what libFuzzer's simplest mutators do.
    #[derive(Debug, Clone)]
    enum Edit {
        Flip(usize, u8),
        Insert(usize, Vec<u8>),
        Cut(usize, usize),
        Splice(usize, usize, usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        // Bytes that change how JSON, CSV and text read.
        let token = prop::sample::select(vec![
            b"\"".to_vec(),
            b"{".to_vec(),
            b"}".to_vec(),
            b"[]".to_vec(),
            b"null".to_vec(),
            b",".to_vec(),
            b"\n".to_vec(),
            b"\r".to_vec(),
            b"\\u0000".to_vec(),
            b"\xEF\xBB\xBF".to_vec(),
            b"\xff".to_vec(),
            b"99999999999999999999".to_vec(),
            b"STOP".to_vec(),
            b"+33".to_vec(),
            "\u{0130}\u{00df}".as_bytes().to_vec(),
        ]);
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Flip(at, b)),
            (any::<usize>(), token).prop_map(|(at, t)| Edit::Insert(at, t)),
            (any::<usize>(), 1usize..64).prop_map(|(at, n)| Edit::Cut(at, n)),
            (any::<usize>(), any::<usize>(), 1usize..64)
                .prop_map(|(from, to, n)| Edit::Splice(from, to, n)),
        ]
    }

    fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
        for e in edits {
            let len = data.len().max(1);
            match e {
                Edit::Flip(at, b) => {
                    if let Some(byte) = data.get_mut(at % len) {
                        *byte ^= b | 1;
                    }
                }
                Edit::Insert(at, token) => {
                    let at = at % (data.len() + 1);
                    data.splice(at..at, token.iter().copied());
                }
                Edit::Cut(at, n) => {
                    let at = at % len;
                    let end = (at + n).min(data.len());
                    if at < end {
                        data.drain(at..end);
                    }
                }
                Edit::Splice(from, to, n) => {
                    let from = from % len;
                    let end = (from + n).min(data.len());
                    let piece: Vec<u8> = data.get(from..end).unwrap_or_default().to_vec();
                    let to = to % (data.len() + 1);
                    data.splice(to..to, piece);
                }
            }
        }
        data
    }

    /// Every seed of `target` as it is, then `cases` of them mutated.
    fn run(target: &str, check: fn(&[u8]), cases: u32) {
        let seeds = seeds(target);
        for seed in &seeds {
            check(seed);
        }
        let config = ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        let strategy = (0..seeds.len(), prop::collection::vec(edit(), 1..8));
        proptest::test_runner::TestRunner::new(config)
            .run(&strategy, |(i, edits)| {
                check(&apply(seeds[i].clone(), &edits));
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn fuzz_target_decode() {
        run("decode", super::decode::check, 10_000);
    }

    #[test]
    fn fuzz_target_classify() {
        run("classify", super::classify::check, 4_000);
    }

    #[test]
    fn fuzz_target_import_rows() {
        run("import_rows", super::import_rows::check, 8_000);
    }

    #[test]
    fn fuzz_target_check_ndjson() {
        run("check_ndjson", super::check_ndjson::check, 1_500);
    }

    #[test]
    fn fuzz_target_lint_template() {
        run("lint_template", super::lint_template::check, 4_000);
    }
}
