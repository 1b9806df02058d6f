//! Shared helpers for the black-box tests: run the real binary, build realistic traffic.
#![allow(dead_code)]

pub mod campaigns;
pub mod kafka;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_consent-ledger");
pub const PHONE_NUMBER_ID: &str = "106540352242922";

/// A data directory and an optional config, with a way to run the CLI against them.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: Option<PathBuf>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            config: None,
        }
    }

    pub fn with_config(toml: &str) -> Env {
        let env = Env::new();
        let path = env.dir.path().join("config.toml");
        std::fs::write(&path, toml).unwrap();
        Env {
            config: Some(path),
            ..env
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir").arg(self.data());
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(args)
            .env_remove("CONSENT_LEDGER_DATA_DIR")
            .env_remove("CONSENT_LEDGER_CONFIG");
        cmd
    }

    /// Runs the CLI with `stdin`, returns the output whatever the exit code.
    pub fn run_with_input(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Feed stdin from another thread: the child may fill its stderr pipe with warnings
        // before it has read all of its input.
        let mut input = child.stdin.take().unwrap();
        let data = stdin.as_bytes().to_vec();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, "")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with_input(args, "")
    }

    pub fn ok_with_input(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_with_input(args, stdin);
        assert!(
            out.status.success(),
            "consent-ledger {args:?} failed ({:?})\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `ingest --json` of `lines`; returns the summary.
    pub fn ingest(&self, lines: &str) -> serde_json::Value {
        let out = self.ok_with_input(&["ingest", "--json", "-"], lines);
        serde_json::from_str(out.trim()).unwrap()
    }

    pub fn status(&self, tenant: &str, contact: &str, purpose: &str) -> serde_json::Value {
        let out = self.ok(&[
            "status",
            "--tenant",
            tenant,
            "--contact",
            contact,
            "--purpose",
            purpose,
            "--json",
        ]);
        serde_json::from_str(out.trim()).unwrap()
    }

    /// The `event_id`s of `export`, sorted.
    pub fn exported_event_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .ok(&["export"])
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["event_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        ids.sort();
        ids
    }

    pub fn lines_of(&self, file: &str) -> Vec<serde_json::Value> {
        read_jsonl(&self.data().join(file))
    }
}

pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Files under `dir` (recursively) whose bytes contain `needle`, but the feeds and the dead
/// letters (`consent-events.jsonl`, `outbox.jsonl`, `dead-letter.jsonl`): the stated
/// exceptions to "no file of the data dir holds an identifier in clear", since subscribers
/// must learn whom to stop.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let feeds = ["consent-events.jsonl", "outbox.jsonl", "dead-letter.jsonl"];
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_containing(&path, needle));
        } else if !feeds.iter().any(|f| path.ends_with(f))
            && std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        {
            out.push(path);
        }
    }
    out
}

pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A webhook carrying one message, as Meta posts it to the business's endpoint.
pub fn wa_webhook(from: &str, message: serde_json::Value) -> String {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "33180884200", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Client"}, "wa_id": from}],
            "messages": [message]
        }}]}]
    })
    .to_string()
}

/// A WhatsApp text message webhook.
pub fn wa_text(from: &str, id: &str, ts: i64, body: &str) -> String {
    let message = serde_json::json!({"from": from, "id": id, "timestamp": ts.to_string(),
                                     "type": "text", "text": {"body": body}});
    wa_webhook(from, message)
}

/// A template quick-reply button press, answering the campaign message `context_id`.
pub fn wa_button(
    from: &str,
    id: &str,
    ts: i64,
    payload: &str,
    title: &str,
    context_id: &str,
) -> String {
    let message = serde_json::json!({"context": {"from": "33180884200", "id": context_id}, "from": from,
                                     "id": id, "timestamp": ts.to_string(), "type": "button",
                                     "button": {"payload": payload, "text": title}});
    wa_webhook(from, message)
}

/// A webhook as Meta sends it since 2026 (business-scoped user IDs): `from` only when Meta shares the number, the BSUID
/// in `from_user_id` and in the `contacts[]` profile.
pub fn wa_user_webhook(number: Option<&str>, user_id: Option<&str>, message: Value) -> String {
    let mut profile = json!({"profile": {"name": "Client"}});
    let mut message = message;
    if let Some(n) = number {
        profile["wa_id"] = json!(n);
        message["from"] = json!(n);
    }
    if let Some(u) = user_id {
        profile["user_id"] = json!(u);
        message["from_user_id"] = json!(u);
    }
    let mut value = json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "33180884200", "phone_number_id": PHONE_NUMBER_ID},
        "messages": [message]
    });
    if message_type(&value) != "system" {
        value["contacts"] = json!([profile]);
    }
    json!({"object": "whatsapp_business_account",
           "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]})
    .to_string()
}

fn message_type(value: &Value) -> String {
    value["messages"][0]["type"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn wa_user_text(
    number: Option<&str>,
    user_id: Option<&str>,
    id: &str,
    ts: i64,
    body: &str,
) -> String {
    wa_user_webhook(
        number,
        user_id,
        json!({"id": id, "timestamp": ts.to_string(), "type": "text", "text": {"body": body}}),
    )
}

/// A `user_changed_number` notice: `old` changed to `new`, and the BSUID with it.
pub fn wa_number_change(
    id: &str,
    ts: i64,
    old: &str,
    new: &str,
    old_user: &str,
    new_user: &str,
) -> String {
    wa_user_webhook(
        Some(old),
        None,
        json!({"id": id, "timestamp": ts.to_string(), "type": "system", "system": {
            "body": format!("User Client changed from {old} to {new}"),
            "wa_id": new, "type": "user_changed_number",
            "user_id": new_user, "previous_user_id": old_user}}),
    )
}

/// A normalized inbound record.
pub fn inbound(tenant: &str, id: &str, from: &str, at: &str, text: &str) -> String {
    serde_json::json!({"type": "inbound", "tenant": tenant, "channel": "sms", "message_id": id,
                       "from": from, "received_at": at, "text": text})
    .to_string()
}

/// Deterministic pseudo-random numbers (xorshift), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a traffic file should produce.
#[derive(Debug, Default, Clone, Copy)]
pub struct Expected {
    pub events: u64,
    pub lines: u64,
}

/// `n` lines of mixed WhatsApp traffic over `contacts` French mobiles: STOP, START, ARRÊT,
/// quick replies, chat, help, redeliveries and garbage. Returns the text and the number of
/// events it must append.
pub fn mixed_traffic(n: usize, contacts: u64, seed: u64) -> (String, Expected) {
    let mut rng = Rng(seed | 1);
    let mut out = String::new();
    let mut expected = Expected::default();
    let mut sent: Vec<String> = Vec::new();
    let t0 = 1_763_978_400i64;
    for i in 0..n {
        let from = format!("3361{:07}", rng.below(contacts));
        let id = format!("wamid.gen{seed}-{i}");
        let ts = t0 + i as i64;
        let line = match rng.below(20) {
            0..=4 => {
                expected.events += 1;
                wa_text(
                    &from,
                    &id,
                    ts,
                    ["STOP", "stop", "Stop svp", "ARRÊT", "STOP ALL"][rng.below(5) as usize],
                )
            }
            5..=7 => {
                expected.events += 1;
                wa_text(
                    &from,
                    &id,
                    ts,
                    ["START", "start", "UNSTOP"][rng.below(3) as usize],
                )
            }
            8 => {
                expected.events += 1;
                wa_button(&from, &id, ts, "STOP", "Se désabonner", "wamid.campaign")
            }
            9 => wa_text(&from, &id, ts, "AIDE"),
            10 => wa_text(
                &from,
                &id,
                ts,
                "Je ne peux pas m'arrêter de commander chez vous",
            ),
            11 => "{\"object\":\"whatsapp_business_account\",\"entry\":".to_string(),
            12 if !sent.is_empty() => sent[rng.below(sent.len() as u64) as usize].clone(),
            _ => wa_text(&from, &id, ts, "Bonjour, ma commande est-elle partie ?"),
        };
        sent.push(line.clone());
        out.push_str(&line);
        out.push('\n');
        expected.lines += 1;
    }
    (out, expected)
}
