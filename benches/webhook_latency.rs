//! Latency of the WhatsApp receiver under `serve`: signed webhooks posted by concurrent
//! clients to the real `app::serve` wiring on 127.0.0.1, each answered once its record is
//! committed (one commit per batch of waiting deliveries, fsync included). Prints p50, p95,
//! p99 and the slowest answer, and the throughput.
//!
//!   cargo bench --bench webhook_latency -- [REQUESTS] [CONCURRENCY]
//!
//! The traffic is the mix of `webhooks` (the ingest and Kafka benchmarks' generator), one
//! message per webhook. Client and server share the machine, so the figures include the
//! client's share of the CPU.

use std::sync::Arc;
use std::time::{Duration, Instant};

use consent_ledger::api::webhooks::signature::meta_sign;
use consent_ledger::app;
use consent_ledger::config::Settings;
use consent_ledger::ledger::Ledger;
use consent_ledger::rgpd::MasterKey;

mod webhooks;

use webhooks::{Rng, PHONE_NUMBER_ID};

const SECRET: &str = "bench-app-secret";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let requests: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);

    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[tenants.acme]\nphone_number_ids = [\"{PHONE_NUMBER_ID}\"]\n\
         [webhooks.whatsapp]\nverify_token = \"v\"\napp_secrets = [\"{SECRET}\"]\n"
    );
    let settings = Arc::new(Settings::from_file(toml::from_str(&config).unwrap()).unwrap());
    let data = dir.path().join("data");
    let ledger = Arc::new(Ledger::open(&data.join("ledger"), MasterKey::generate()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/whatsapp",
        listener.local_addr().unwrap()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        app::serve(listener, ledger, settings, &data, shutdown).await
    });

    let mut rng = Rng::new(0x5eed);
    let bodies: Vec<(String, String)> = (0..requests)
        .map(|i| {
            let (from, message) = webhooks::Mix::Consent.message(i, rng.next());
            let body = webhooks::webhook(&from, &message);
            let signature = meta_sign(body.as_bytes(), SECRET.as_bytes());
            (body, signature)
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (bodies, next, client, url) =
                (bodies.clone(), next.clone(), client.clone(), url.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((body, signature)) = bodies.get(i) else {
                        break;
                    };
                    let sent = Instant::now();
                    let res = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-hub-signature-256", signature)
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 200);
                    let _ = res.bytes().await.unwrap();
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests);
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "webhook latency, {requests} signed webhooks, {concurrency} concurrent clients: \
         p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.0} webhooks/s",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.95)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
        requests as f64 / elapsed.as_secs_f64()
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
