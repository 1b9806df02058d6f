//! Invariant 5 in file mode: kill -9 a real `ingest` process at random points; running the same
//! input again reaches exactly the log an undisturbed run gives.

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

#[test]
fn kill_9_during_ingest_then_rerun_reaches_the_same_log() {
    let (traffic, _) = mixed_traffic(30_000, 2_000, 99);
    let reference = Env::new();
    let input = reference.dir.path().join("traffic.jsonl");
    std::fs::write(&input, &traffic).unwrap();
    reference.ok(&["ingest", input.to_str().unwrap()]);
    let expected = reference.exported_event_ids();
    assert!(expected.len() > 10_000);

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
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
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
