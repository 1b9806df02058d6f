//! Invariant 5 in file mode: kill -9 a real `ingest` process at random points; running the same
//! input again reaches exactly the log an undisturbed run gives.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn kill_9_during_ingest_then_rerun_reaches_the_same_log() {
    // 12,000 messages: a debug build takes about 9 s for them, so every kill (0.1 to 1 s
    // after the start) lands mid-ingest.
    let (traffic, _) = mixed_traffic(12_000, 2_000, 99);
    let reference = Env::new();
    let input = reference.dir.path().join("traffic.jsonl");
    std::fs::write(&input, &traffic).unwrap();
    reference.ok(&["ingest", input.to_str().unwrap()]);
    let expected = reference.exported_event_ids();
    assert!(expected.len() > 4_000);

    let crashed = Env::with_config("batch_size = 200\n");
    let mut rng = Rng(0xdead_beef);
    let mut killed = 0;
    for _ in 0..5 {
        let mut child = crashed
            .command(&["ingest", input.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100 + rng.below(900)));
        match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap(); // SIGKILL
                killed += 1;
            }
            Some(status) => assert!(status.success(), "ingest failed on its own: {status}"),
        }
        child.wait().unwrap();
    }
    assert!(
        killed > 0,
        "at least one run must have been killed mid-ingest"
    );
    crashed.ok(&["ingest", input.to_str().unwrap()]);
    assert_eq!(
        crashed.exported_event_ids(),
        expected,
        "same events as an undisturbed run"
    );
    let verify = crashed.ok(&["verify"]);
    assert!(verify.starts_with("ok: "), "{verify}");
    // Every appended event reached consent-events.jsonl at least once.
    let published: std::collections::HashSet<String> = crashed
        .lines_of("consent-events.jsonl")
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(published.len(), expected.len());
}

/// The crash of CI at d4ab3b3: a first start killed while the storage engine created its
/// trees left a ledger no later start could open ("No such file or directory"). Kill points
/// spread over an undisturbed first start, however fast this machine is.
#[test]
fn kill_9_during_a_first_start_leaves_a_ledger_that_opens() {
    let input = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/whatsapp-webhooks.jsonl"
    );
    let reference = Env::new();
    let started = Instant::now();
    reference.ok(&["ingest", input]);
    let whole = started.elapsed().as_millis() as u64;
    let expected = reference.exported_event_ids().len();
    let mut rng = Rng(0x0f1e_57a7);
    for round in 0..8 {
        let env = Env::new();
        let mut child = env
            .command(&["ingest", input])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ms = rng.below(whole.max(1));
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        child.wait().unwrap();
        env.ok(&["ingest", input]);
        assert_eq!(
            env.exported_event_ids().len(),
            expected,
            "round {round}, killed after {ms} of {whole} ms"
        );
    }
}
