//! The webhook receivers of `serve` (issue 12), in-process: the real `app::serve` wiring on
//! 127.0.0.1:0 with its data directory, driven with requests signed in the test as Meta and
//! Twilio sign them (tests/common/webhooks.rs), then read back through the API.

mod twilio;
mod whatsapp;

use std::path::PathBuf;
use std::sync::Arc;

use consent_ledger::app;
use consent_ledger::config::RgpdConfig;
use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;
use reqwest::{Client, Response};
use serde_json::Value;

use crate::api_util::{ok_json, sha, ACME, PHONE_NUMBER_ID};

pub const APP_SECRET: &str = "meta-app-secret-2026";
/// The secret before a rotation, still listed while Meta may sign with it.
pub const OLD_APP_SECRET: &str = "meta-app-secret-2025";
pub const VERIFY_TOKEN: &str = "verify-me-9f2c";
pub const AUTH_TOKEN: &str = "twilio-auth-token-1";
pub const PUBLIC_URL: &str = "https://sms.example.com/webhooks/twilio/sms";
/// acme's Twilio number.
pub const SMS_NUMBER: &str = "+14155550100";

/// acme (WhatsApp number mapped, one Twilio number) with both webhooks; `extra` is appended
/// (`[webhooks]` limits).
pub fn config(extra: &str) -> String {
    format!(
        "[tenants.acme]\nregion = \"FR\"\nlanguages = [\"fr\", \"en\"]\n\
         phone_number_ids = [\"{PHONE_NUMBER_ID}\"]\nsms_numbers = [\"{SMS_NUMBER}\"]\n\
         api_tokens_sha256 = [\"{}\"]\n\
         [webhooks.whatsapp]\nverify_token = \"{VERIFY_TOKEN}\"\n\
         app_secrets = [\"{APP_SECRET}\", \"{OLD_APP_SECRET}\"]\n\
         [webhooks.twilio]\nauth_tokens = [\"{AUTH_TOKEN}\"]\npublic_url = \"{PUBLIC_URL}\"\n{extra}",
        sha(ACME)
    )
}

/// `serve` in-process, as the binary wires it.
pub struct Hooked {
    pub base: String,
    pub client: Client,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), app::AppError>>>,
}

impl Hooked {
    pub async fn start(toml: &str) -> Hooked {
        let dir = tempfile::tempdir().unwrap();
        let settings = Arc::new(Settings::from_file(toml::from_str(toml).unwrap()).unwrap());
        let data = dir.path().join("data");
        let ledger = Arc::new(Ledger::open(&data.join("ledger"), master_key(&data)).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            app::serve(listener, ledger, settings, &data, shutdown).await
        });
        Hooked {
            base,
            client: Client::new(),
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A POST of `body` to `/webhooks/whatsapp`, signed when `signature` is given.
    pub async fn whatsapp(&self, body: &str, signature: Option<String>) -> Response {
        let mut req = self
            .client
            .post(format!("{}/webhooks/whatsapp", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(s) = signature {
            req = req.header("x-hub-signature-256", s);
        }
        req.send().await.unwrap()
    }

    /// A POST of Twilio's form to `path` (with its query), signed when `signature` is given.
    pub async fn twilio(
        &self,
        path: &str,
        params: &[(&str, &str)],
        signature: Option<String>,
    ) -> Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(crate::common::webhooks::form(params));
        if let Some(s) = signature {
            req = req.header("x-twilio-signature", s);
        }
        req.send().await.unwrap()
    }

    /// acme's consent for `contact`, through the API.
    pub async fn consent(&self, contact: &str) -> Value {
        self.get(&format!("contacts/{}/consent", contact.replace('+', "%2B")))
            .await
    }

    pub async fn history(&self, contact: &str) -> Vec<Value> {
        let h = self
            .get(&format!("contacts/{}/history", contact.replace('+', "%2B")))
            .await;
        h["events"].as_array().cloned().unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Value {
        let res = self
            .client
            .get(format!("{}/v1/tenants/acme/{path}", self.base))
            .bearer_auth(ACME)
            .send()
            .await
            .unwrap();
        ok_json(res).await
    }

    pub async fn metrics(&self) -> String {
        let res = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        res.text().await.unwrap()
    }

    /// The dead-letter file's lines.
    pub fn dead_letters(&self) -> Vec<Value> {
        crate::common::read_jsonl(&self.data().join("dead-letter.jsonl"))
    }

    /// Stops `serve` as SIGTERM does (its relay publishes what was committed) and hands
    /// back the directory, to read what it left.
    pub async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
        self.dir
    }
}

#[test]
fn the_openapi_document_describes_the_receivers_without_a_token() {
    let doc = consent_ledger::api::openapi::document();
    for (path, method) in [
        ("/webhooks/whatsapp", "get"),
        ("/webhooks/whatsapp", "post"),
        ("/webhooks/twilio/sms", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not described");
        assert!(
            op.get("security").is_none(),
            "{method} {path}: the signature is the authentication"
        );
    }
}

/// The master key the CLI uses on the same data dir (the embedded default's file).
fn master_key(data_dir: &std::path::Path) -> consent_ledger::rgpd::MasterKey {
    RgpdConfig::default().master_key(data_dir).unwrap().0
}
