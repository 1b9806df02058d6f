//! The real binary: `consent-ledger serve --listen 127.0.0.1:0` prints the address it bound,
//! answers with the configured tokens, publishes recorded events like `ingest` does, and
//! stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::api_util::*;
use serde_json::json;

#[tokio::test]
async fn serve_binds_port_zero_answers_publishes_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text()).unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_consent-ledger"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("CONSENT_LEDGER_DATA_DIR")
        .env_remove("CONSENT_LEDGER_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    assert!(!addr.ends_with(":0"), "{addr}");
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();

    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let res = client
        .post(format!("{base}/v1/tenants/acme/consent-events"))
        .bearer_auth(ACME)
        .header("idempotency-key", "agent-1")
        .json(&json!({"contact": "+33612345678", "type": "OptedOut", "source": "support_agent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let event = ok_json(res).await["event"].clone();
    let status = ok_json(
        client
            .get(format!(
                "{base}/v1/tenants/acme/contacts/%2B33612345678/consent"
            ))
            .bearer_auth(ACME)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status["may_send"], false);

    // Published to consent-events.jsonl, as `ingest` publishes its events.
    let published = data.join("consent-events.jsonl");
    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = std::fs::read_to_string(&published)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lines.len(), 1);
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line, event);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(status) = exited else {
        child.kill().unwrap();
        panic!("serve did not stop within 10 s of SIGTERM");
    };
    assert!(status.success(), "{status:?}");
}

fn config_text() -> String {
    config(64 << 20)
}
