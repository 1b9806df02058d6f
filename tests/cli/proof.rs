//! Proofs anyone can verify (issue 10): an access export made by the CLI, checked offline by
//! `verify-export` and by scripts/verify_export.py, the same good and tampered files for both.

use std::path::Path;
use std::process::Command;

use consent_ledger::proof::{export, Signer};
use serde_json::json;

use crate::common::*;

const USER_ID: &str = "FR.13491208655302741918";

/// A ledger with a person reached by number and user ID (a link, a STOP, a START) and another
/// person's STOP in between, and the access export of the first, as written by the CLI.
fn exported(env: &Env) -> std::path::PathBuf {
    let t = chrono::Utc::now().timestamp() - 600;
    env.ingest(
        &[
            wa_user_text(Some("33612345678"), Some(USER_ID), "wamid.P1", t, "STOP"),
            wa_text("33699999999", "wamid.P2", t + 10, "STOP"),
            wa_user_text(None, Some(USER_ID), "wamid.P3", t + 20, "START"),
        ]
        .join("\n"),
    );
    let proof = env.dir.path().join("proof.json");
    env.ok(&[
        "export",
        "--tenant",
        PHONE_NUMBER_ID,
        "--contact",
        "+33612345678",
        "--proof",
        proof.to_str().unwrap(),
    ]);
    proof
}

fn verify_cli(file: &Path, key: Option<&str>) -> (i32, String) {
    let mut args = vec!["verify-export".to_string(), file.display().to_string()];
    if let Some(k) = key {
        args.extend(["--public-key".into(), k.into()]);
    }
    let out = Command::new(BIN).args(&args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

fn verify_py(file: &Path, key: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_file("scripts/verify_export.py")).arg(file);
    if let Some(k) = key {
        cmd.args(["--public-key", k]);
    }
    let out = cmd.output().expect("python3 runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("No module named"),
        "scripts/verify_export.py needs the `cryptography` package (scripts/test.sh installs it): {text}"
    );
    (out.status.code().unwrap(), text)
}

#[test]
fn an_access_export_round_trips_through_both_verifiers() {
    let env = Env::new();
    let proof = exported(&env);
    let key = env.ok(&["public-key"]).trim().to_string();
    assert_eq!(key.len(), 44, "base64 of 32 bytes: {key}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&proof).unwrap()).unwrap();
    assert_eq!(doc["identifiers"], json!(["+33612345678", USER_ID]));
    let types: Vec<&str> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["IdentityLinked", "OptedOut", "OptedIn"],
        "the person's events, not the other's STOP"
    );
    for verify in [verify_cli, verify_py] {
        let (code, out) = verify(&proof, Some(&key));
        assert_eq!(code, 0, "{out}");
        assert!(out.starts_with("ok: 3 events about 2 identifiers"), "{out}");
        let (code, out) = verify(&proof, None);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("under that key only"), "{out}");
        let other = consent_ledger::proof::Signer::from_seed([9; 32]).public_key();
        assert_eq!(verify(&proof, Some(&other)).0, 1);
        let not_a_proof = env.dir.path().join("other.json");
        std::fs::write(&not_a_proof, "{\"hello\":1}\n").unwrap();
        assert_eq!(verify(&not_a_proof, None).0, 2);
    }
    for (format, needle) in [
        ("html", "<table>"),
        ("text", "withdrew consent to marketing"),
    ] {
        let out = env.dir.path().join(format!("proof.{format}"));
        env.ok(&[
            "export",
            "--tenant",
            PHONE_NUMBER_ID,
            "--contact",
            USER_ID,
            "--proof",
            out.to_str().unwrap(),
            "--format",
            format,
        ]);
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains(needle), "{text}");
    }
}

/// Any one-byte change anywhere in the file fails verification: the library checks every
/// position; both command-line verifiers check a spread of them.
#[test]
fn a_one_byte_edit_anywhere_fails_verification() {
    let env = Env::new();
    let proof = exported(&env);
    let key = env.ok(&["public-key"]).trim().to_string();
    let bytes = std::fs::read(&proof).unwrap();
    for i in 0..bytes.len() {
        let mut edited = bytes.clone();
        edited[i] = if edited[i] == b'0' { b'1' } else { b'0' };
        assert!(
            consent_ledger::proof::verify::verify(&edited, Some(&key)).is_err(),
            "an edit at byte {i} of {} went unnoticed",
            bytes.len()
        );
    }
    let edited_file = env.dir.path().join("edited.json");
    for i in (0..bytes.len()).step_by(bytes.len() / 12) {
        let mut edited = bytes.clone();
        edited[i] = if edited[i] == b'a' { b'b' } else { b'a' };
        std::fs::write(&edited_file, &edited).unwrap();
        for verify in [verify_cli, verify_py] {
            let (code, out) = verify(&edited_file, Some(&key));
            assert_eq!(code, 1, "byte {i}: {out}");
        }
    }
}

#[test]
fn an_export_of_a_contact_the_ledger_never_saw_is_refused() {
    let env = Env::new();
    exported(&env);
    let out = env.run(&[
        "export",
        "--tenant",
        PHONE_NUMBER_ID,
        "--contact",
        "+33611111111",
        "--proof",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = env.run(&[
        "export",
        "--tenant",
        PHONE_NUMBER_ID,
        "--contact",
        "+33612345678",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--contact without --proof is a usage error"
    );
}

/// Sealed fields (issue 10, erasure): an export carries each event as stored and as the
/// person reads it, with the keys between them; both verifiers open every sealed field and
/// catch a plaintext that does not match. After an erasure the events still verify, their
/// fields shown as `[erased]`, and an export made before it still verifies too.
#[test]
fn sealed_fields_open_to_what_the_export_shows_before_and_after_an_erasure() {
    let env = Env::new();
    let before = exported(&env);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&before).unwrap()).unwrap();
    assert!(doc["events"][1]["contact"]
        .as_str()
        .unwrap()
        .starts_with("enc1:i:"));
    assert_eq!(doc["opened"][1]["source"]["text"], "STOP");
    assert!(!doc["keys"].as_object().unwrap().is_empty());

    // A plaintext changed and the file signed again with the ledger's own key: only the
    // opening of the sealed field can tell.
    let seed = std::fs::read_to_string(env.data().join("signing.key")).unwrap();
    let seed: [u8; 32] =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, seed.trim())
            .unwrap()
            .try_into()
            .unwrap();
    let mut file: export::ProofFile =
        serde_json::from_slice(&std::fs::read(&before).unwrap()).unwrap();
    file.opened[1].source.text = Some("STAP".into());
    file.signature = Signer::from_seed(seed).sign(&export::unsigned_bytes(&file));
    let forged = env.dir.path().join("forged.json");
    std::fs::write(&forged, export::to_bytes(&file)).unwrap();
    for verify in [verify_cli, verify_py] {
        let (code, out) = verify(&forged, None);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("does not open to what the file shows"),
            "{out}"
        );
    }

    env.ok(&[
        "erase",
        "--tenant",
        PHONE_NUMBER_ID,
        "--contact",
        USER_ID,
        "--reason",
        "ticket",
    ]);
    let after = env.dir.path().join("after.json");
    env.ok(&[
        "export",
        "--tenant",
        PHONE_NUMBER_ID,
        "--contact",
        "+33612345678",
        "--proof",
        after.to_str().unwrap(),
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&after).unwrap()).unwrap();
    let opened = doc["opened"].as_array().unwrap();
    assert_eq!(opened.len(), 4, "the person's events and the erasure");
    assert!(opened.iter().all(|e| e["contact"] == "[erased]"), "{doc}");
    assert!(
        doc["keys"].is_null(),
        "no key is left to give: {}",
        doc["keys"]
    );
    for verify in [verify_cli, verify_py] {
        for file in [&before, &after] {
            let (code, out) = verify(file, None);
            assert_eq!(code, 0, "{}: {out}", file.display());
        }
    }
}
