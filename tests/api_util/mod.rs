//! Shared by the HTTP black-box tests: an in-process server on 127.0.0.1:0 (the real
//! `api::serve`, with its listener and shutdown signal passed in), tokens, and a client.
#![allow(dead_code)]

use std::sync::Arc;

use consent_ledger::api::{self, AppState};
use consent_ledger::config::RgpdConfig;
use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;
use consent_ledger::metrics::Metrics;
use consent_ledger::pipeline::file::{ingest, FileSinks};
use consent_ledger::proof::Signer;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const ACME: &str = "acme-secret-token";
pub const GLOBEX: &str = "globex-secret-token";
pub const ADMIN: &str = "admin-secret-token";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
/// The test ledger's signing key seed: a fixed key, so a test can name its public key.
pub const SIGNING_SEED: [u8; 32] = [42; 32];

pub fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// acme (France, WhatsApp number mapped), globex (US, strict opt-in), an admin token.
pub fn config(max_body_bytes: u64) -> String {
    format!(
        "[api]\nmax_body_bytes = {max_body_bytes}\nadmin_tokens_sha256 = [\"{}\"]\n\
         [tenants.acme]\nregion = \"FR\"\nphone_number_ids = [\"{PHONE_NUMBER_ID}\"]\n\
         api_tokens_sha256 = [\"{}\"]\n\
         [tenants.globex]\nregion = \"US\"\nmarketing_requires_opt_in = true\n\
         api_tokens_sha256 = [\"{}\"]\n",
        sha(ADMIN),
        sha(ACME),
        sha(GLOBEX)
    )
}

pub struct Server {
    pub base: String,
    pub state: AppState,
    pub settings: Arc<Settings>,
    pub client: Client,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start() -> Server {
        Server::with_config(&config(64 << 20)).await
    }

    pub async fn with_config(toml: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let settings = Arc::new(Settings::from_file(toml::from_str(toml).unwrap()).unwrap());
        let ledger =
            Arc::new(Ledger::open(&dir.path().join("ledger"), master_key(dir.path())).unwrap());
        ledger.sign_with(Signer::from_seed(SIGNING_SEED));
        let state = AppState::new(ledger, settings.clone(), Metrics::new());
        state.readiness().set_ready();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(api::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Server {
            base,
            state,
            settings,
            client: Client::new(),
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str, token: &str) -> RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(token)
    }

    pub fn delete(&self, path: &str, token: &str) -> RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(token)
    }

    pub fn post(&self, path: &str, token: &str) -> RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(token)
    }

    /// POST of a body in `content_type` with a token; the answer, whatever its status.
    pub async fn post_body(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.post(path, token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// The `/metrics` scrape, as text.
    pub async fn metrics(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().await.unwrap();
        res.text().await.unwrap()
    }

    /// GET with a token; asserts 200 and returns the JSON body.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let res = self.get(path, token).send().await.unwrap();
        ok_json(res).await
    }

    /// Runs `lines` through `ingest` in this process, on the server's ledger.
    pub async fn ingest(&self, lines: String) {
        let ledger = self.state.ledger.clone();
        let settings = self.settings.clone();
        let data = self.dir.path().join("data");
        tokio::task::spawn_blocking(move || {
            let mut sinks = FileSinks::in_dir(&data, None);
            ingest(&ledger, &settings, lines.as_bytes(), "test", &mut sinks).unwrap()
        })
        .await
        .unwrap();
    }

    /// Stops the server the way `serve` does on SIGTERM and waits for it to return.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

pub async fn ok_json(res: Response) -> Value {
    let status = res.status();
    let text = res.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Asserts an RFC 9457 problem with this status; returns it.
pub async fn problem(res: Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status, "{:?}", res.headers());
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = res.text().await.unwrap();
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{text}"
    );
    let p: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(p["status"], status, "{p}");
    assert!(p["type"].is_string() && p["title"].is_string(), "{p}");
    assert!(
        !p["detail"].as_str().unwrap_or("").is_empty(),
        "a problem needs a detail: {p}"
    );
    p
}

/// A normalized inbound SMS record for `ingest`.
pub fn inbound(tenant: &str, id: &str, from: &str, at: &str, text: &str) -> String {
    serde_json::json!({"type": "inbound", "tenant": tenant, "channel": "sms", "message_id": id,
                       "from": from, "received_at": at, "text": text})
    .to_string()
        + "\n"
}

/// The master key the CLI uses on the same data dir (the embedded default's file).
fn master_key(data_dir: &std::path::Path) -> consent_ledger::rgpd::MasterKey {
    RgpdConfig::default().master_key(data_dir).unwrap().0
}
