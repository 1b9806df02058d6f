//! The master key, as an operator meets it: the embedded default on first start, a wrong key
//! refused before anything is written, a key file others may read refused, and rotation.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::*;

const WRONG_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn env_with_opt_out() -> Env {
    let env = Env::new();
    let summary = env.ingest(&wa_text("33612345678", "wamid.k1", 1_763_978_400, "STOP"));
    assert_eq!(summary["events"], 1);
    env
}

/// Every file under `dir` with its bytes, the ledger's own aside: its store writes to them
/// whenever it is opened, so the ledger is compared through what it holds.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.ends_with("ledger") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn write_key_file(dir: &Path, name: &str, key: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, key).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn status_code(env: &Env, master_key: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = env.command(&[
        "status",
        "--tenant",
        PHONE_NUMBER_ID,
        "--contact",
        "+33612345678",
    ]);
    match master_key {
        Some(k) => cmd.env("CONSENT_LEDGER_MASTER_KEY", k),
        None => cmd.env_remove("CONSENT_LEDGER_MASTER_KEY"),
    };
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_embedded_default_creates_a_private_master_key_and_says_so() {
    let env = Env::new();
    let out = env.run_with_input(
        &["ingest", "-"],
        &wa_text("33612345678", "wamid.k0", 1_763_978_400, "STOP"),
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("production keeps it elsewhere"), "{stderr}");
    let path = env.data().join("master.key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Said once, when created: the next command is quiet.
    let (code, stderr) = status_code(&env, None);
    assert_eq!(code, Some(0));
    assert!(!stderr.contains("master key"), "{stderr}");
}

#[test]
fn a_wrong_master_key_fails_clearly_with_exit_2_and_touches_no_data() {
    let env = env_with_opt_out();
    let before = snapshot(&env.data());
    let exported = env.ok(&["export"]);
    let (code, stderr) = status_code(&env, Some(WRONG_KEY));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("the master key does not open the ledger"),
        "{stderr}"
    );
    assert!(!stderr.contains(WRONG_KEY), "the key is never printed");
    let after = snapshot(&env.data());
    let changed: Vec<&PathBuf> = after
        .keys()
        .filter(|p| before.get(*p) != after.get(*p))
        .chain(before.keys().filter(|p| !after.contains_key(*p)))
        .collect();
    assert!(changed.is_empty(), "changed files: {changed:?}");
    assert_eq!(
        env.ok(&["export"]),
        exported,
        "the ledger holds what it held"
    );
    assert!(env.ok(&["verify"]).starts_with("ok: 1 events"));
}

#[test]
fn a_master_key_file_others_may_read_is_refused_at_start() {
    let keys = tempfile::tempdir().unwrap();
    let key = std::fs::read_to_string(env_with_opt_out().data().join("master.key")).unwrap();
    let path = write_key_file(keys.path(), "master.key", &key, 0o644);
    let env = Env::with_config(&format!(
        "[rgpd]\nmaster_key_file = {:?}\n",
        path.display().to_string()
    ));
    let out = env.run(&["verify"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.ok(&["verify"]);
    assert!(
        !env.data().join("master.key").exists(),
        "a configured key creates no embedded default"
    );
}

#[test]
fn rotation_then_only_the_new_key_opens_the_ledger() {
    let env = env_with_opt_out();
    let old = std::fs::read_to_string(env.data().join("master.key")).unwrap();
    let new = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    let new_file = write_key_file(env.dir.path(), "new.key", new, 0o600);
    let out = env.ok(&[
        "rotate-master-key",
        "--new-key-file",
        new_file.to_str().unwrap(),
    ]);
    // The STOP's number has an identity key and a text key.
    assert!(out.contains("rewrapped 2 data keys"), "{out}");
    assert!(out.contains("master.key now holds the new key"), "{out}");
    assert!(!out.contains(new), "the key is never printed");
    assert_eq!(
        std::fs::read_to_string(env.data().join("master.key"))
            .unwrap()
            .trim(),
        new
    );
    let (code, stderr) = status_code(&env, Some(old.trim()));
    assert_eq!(code, Some(2), "the old key is refused: {stderr}");
    assert_eq!(status_code(&env, Some(new)).0, Some(0));
    assert_eq!(status_code(&env, None).0, Some(0));
    assert!(env.ok(&["verify"]).starts_with("ok: 1 events"));
    assert_eq!(
        env.status(PHONE_NUMBER_ID, "+33612345678", "marketing")["status"],
        "opted_out"
    );
    let history = env.ok(&[
        "history",
        "--tenant",
        PHONE_NUMBER_ID,
        "--contact",
        "+33612345678",
    ]);
    assert!(
        !history.contains("[erased]"),
        "every field still opens: {history}"
    );
}

#[test]
fn rotation_to_the_same_key_or_without_a_new_key_is_a_usage_error() {
    let env = env_with_opt_out();
    let same = write_key_file(
        env.dir.path(),
        "same.key",
        &std::fs::read_to_string(env.data().join("master.key")).unwrap(),
        0o600,
    );
    let out = env.run(&[
        "rotate-master-key",
        "--new-key-file",
        same.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = env.run(&["rotate-master-key"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--new-key-file"));
}
