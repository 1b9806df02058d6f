//! STOP to `may_send:false` on the HTTP API of a running `consent-ledger run --listen`, while
//! ordinary chat flows in at a steady rate (issue 13). `scripts/bench.sh latency` starts the
//! broker and the service and runs this once per `linger_ms`.
//!
//!   cargo bench --bench stop_latency -- --bootstrap 127.0.0.1:9092 --topic T \
//!       --api http://127.0.0.1:PORT --token TOKEN [--pid PID] [--stops 1000] \
//!       [--chat-rate 5000] [--interval-ms 30] [--warmup-s 3] [--via poll|feed] [--label L]
//!
//! Chat webhooks (the `chat` mix of `webhooks`, seeded) go to topic T at `--chat-rate`
//! records/s from a thread of their own. After the warm-up, `--stops` STOPs from numbers the
//! chat never uses (+33 6 2…) follow, one every `--interval-ms` on average (uniform jitter of
//! ±50%, so that the STOPs do not keep one phase against the service's batch timer), each on
//! a producer with `linger.ms=0`. A STOP's latency runs from its produce call (the send time)
//! to the first answer of `GET …/contacts/{contact}/consent?purpose=marketing` that says
//! `may_send:false`; the time from the broker's acknowledgement is printed beside it.
//!
//! How the answer is awaited (`--via`):
//! - `poll` (default): the contact's consent is asked every 1 ms from the send on, as a
//!   sender that polls would. A measured latency is at most 1 ms plus one request's time
//!   above the true one: the resolution is the polling interval.
//! - `feed`: one long-poll of `GET …/events?wait=30` follows the ledger, which answers at the
//!   commit that appends the event; the STOP's consent is then asked once (every 1 ms until
//!   it says false, should the view ever lag the feed). No idle requests load the service;
//!   the measured latency is the feed's wake-up plus one request above the true one.
//!
//! With `--pid`, the service's CPU time over the measured window is printed too: at a rate
//! the service sustains, a smaller linger costs CPU (more, smaller batches), not records/s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer, ProducerContext,
    ThreadedProducer,
};
use rdkafka::ClientContext;
use serde_json::Value;
use tokio::sync::oneshot;

mod webhooks;

use webhooks::{Mix, Rng, PHONE_NUMBER_ID};

struct Args {
    bootstrap: String,
    topic: String,
    api: String,
    token: String,
    pid: Option<u32>,
    stops: usize,
    chat_rate: f64,
    interval: Duration,
    warmup: Duration,
    feed: bool,
    label: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        bootstrap: std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_default(),
        topic: String::new(),
        api: String::new(),
        token: String::new(),
        pid: None,
        stops: 1000,
        chat_rate: 5000.0,
        interval: Duration::from_millis(30),
        warmup: Duration::from_secs(3),
        feed: false,
        label: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            // cargo bench passes it to every harness = false target
            "--bench" => {}
            "--bootstrap" => a.bootstrap = value()?,
            "--topic" => a.topic = value()?,
            "--api" => a.api = value()?.trim_end_matches('/').to_string(),
            "--token" => a.token = value()?,
            "--pid" => a.pid = Some(number(value()?)? as u32),
            "--stops" => a.stops = number(value()?)?.max(1) as usize,
            "--chat-rate" => a.chat_rate = number(value()?)? as f64,
            "--interval-ms" => a.interval = Duration::from_millis(number(value()?)?.max(1)),
            "--warmup-s" => a.warmup = Duration::from_secs(number(value()?)?),
            "--via" => match value()?.as_str() {
                "poll" => a.feed = false,
                "feed" => a.feed = true,
                v => return Err(format!("--via {v}: poll or feed")),
            },
            "--label" => a.label = value()?,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if a.bootstrap.is_empty() || a.topic.is_empty() || a.api.is_empty() || a.token.is_empty() {
        return Err("--bootstrap, --topic, --api and --token are required".into());
    }
    Ok(a)
}

/// Delivery reports of the chat producer: a chat record the broker refused would make the
/// offered load smaller than stated.
#[derive(Default)]
struct Acks {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.ok
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Produces the chat mix at `rate` records/s until `stop`; returns how many were sent.
fn chat(a: &Args, producer: &ThreadedProducer<Acks>, stop: &AtomicBool) -> u64 {
    let mut rng = Rng::new(1 ^ 0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        // Five records a tick: one tick a millisecond at 5,000/s.
        if i % 5 == 0 {
            let due = started + Duration::from_secs_f64(i as f64 / a.chat_rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let (from, message) = Mix::Chat.message(i, rng.next());
        let key = format!("{PHONE_NUMBER_ID}:{from}");
        let value = webhooks::webhook(&from, &message);
        let mut record = BaseRecord::to(&a.topic).key(&key).payload(&value);
        while let Err((_, back)) = producer.send(record) {
            record = back;
            std::thread::sleep(Duration::from_millis(1));
        }
        i += 1;
    }
    i as u64
}

/// The STOP of the `i`-th new contact: its number without "+", and its webhook. Its message
/// id is its own (the service drops a message id it has seen as a redelivery).
fn stop_webhook(i: usize) -> (String, String) {
    let from = format!("3362{i:07}");
    let now = chrono::Utc::now().timestamp();
    let message = format!(
        r#"{{"from":"{from}","id":"wamid.latency.{i}","timestamp":"{now}","type":"text","text":{{"body":"STOP"}}}}"#
    );
    let value = webhooks::webhook(&from, &message);
    (from, value)
}

struct Api {
    client: reqwest::Client,
    base: String,
    auth: String,
}

impl Api {
    /// `may_send` for marketing; an error or an unexpected answer ends the run, since a
    /// latency measured through failures would be wrong.
    async fn may_send(&self, from: &str) -> bool {
        let url = format!("{}/contacts/%2B{from}/consent?purpose=marketing", self.base);
        let res = self.client.get(url).header("authorization", &self.auth);
        let body: Value = res
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("consent")
            .json()
            .await
            .expect("consent JSON");
        body["may_send"].as_bool().expect("may_send")
    }

    /// Asks every `every` until `may_send` is false; the time of that answer.
    async fn until_false(&self, from: &str, every: Duration) -> Instant {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !self.may_send(from).await {
                return Instant::now();
            }
        }
    }

    /// Follows the event feed from its start, telling each waiting contact when its event
    /// lands.
    async fn follow(&self, waiting: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>) {
        let mut after = 0u64;
        loop {
            let url = format!("{}/events?after={after}&wait=30&limit=1000", self.base);
            let res = self.client.get(url).header("authorization", &self.auth);
            let page: Value = res
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .expect("feed")
                .json()
                .await
                .expect("feed JSON");
            for item in page["events"].as_array().into_iter().flatten() {
                let contact = item["event"]["contact"].as_str().unwrap_or_default();
                if let Some(tx) = waiting.lock().unwrap().remove(contact) {
                    let _ = tx.send(());
                }
            }
            after = page["next"].as_u64().expect("feed next");
        }
    }
}

/// One STOP: (latency from the send, latency from the broker's acknowledgement).
async fn one_stop(
    i: usize,
    a: Arc<Args>,
    api: Arc<Api>,
    producer: FutureProducer,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>,
) -> (Duration, Duration) {
    let (from, value) = stop_webhook(i);
    let key = format!("{PHONE_NUMBER_ID}:{from}");
    let landed = if a.feed {
        let (tx, rx) = oneshot::channel();
        waiting.lock().unwrap().insert(format!("+{from}"), tx);
        Some(rx)
    } else {
        None
    };
    let sent = Instant::now();
    let record = FutureRecord::to(&a.topic).key(&key).payload(&value);
    let delivery = async {
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("STOP refused by the broker");
        Instant::now()
    };
    let answered = async {
        if let Some(rx) = landed {
            rx.await.expect("feed follower stopped");
        }
        api.until_false(&from, Duration::from_millis(1)).await
    };
    let (acked, done) = tokio::join!(delivery, answered);
    (done - sent, done.saturating_duration_since(acked))
}

/// utime + stime of a process, in seconds (Linux's USER_HZ is 100 on every architecture).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// `consent_ledger_records_read_total` from the service's /metrics.
async fn records_read(api: &Api, root: &str) -> f64 {
    let text = api
        .client
        .get(format!("{root}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with("consent_ledger_records_read_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(sorted: &[Duration]) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        percentile(sorted, 0.50),
        percentile(sorted, 0.99),
        percentile(sorted, 0.999),
        sorted.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    )
}

#[tokio::main]
async fn main() {
    let a = Arc::new(parse_args().unwrap_or_else(|e| {
        eprintln!("stop_latency: {e}");
        std::process::exit(2);
    }));
    let api = Arc::new(Api {
        client: reqwest::Client::new(),
        base: format!("{}/v1/tenants/{PHONE_NUMBER_ID}", a.api),
        auth: format!("Bearer {}", a.token),
    });
    let waiting = Arc::new(Mutex::new(HashMap::new()));
    let follower = a.feed.then(|| {
        let (api, waiting) = (api.clone(), waiting.clone());
        tokio::spawn(async move { api.follow(waiting).await })
    });

    let chat_producer: ThreadedProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create_with_context(Acks::default())
        .expect("chat producer");
    let stop_producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create()
        .expect("STOP producer");
    let stop_chat = Arc::new(AtomicBool::new(false));
    let chat_thread = {
        let (a, stop_chat, producer) = (a.clone(), stop_chat.clone(), chat_producer.clone());
        std::thread::spawn(move || chat(&a, &producer, &stop_chat))
    };

    tokio::time::sleep(a.warmup).await;
    let cpu0 = a.pid.and_then(cpu_seconds);
    let read0 = records_read(&api, &a.api).await;
    let started = Instant::now();
    let mut rng = Rng::new(0x570b);
    let mut due = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(a.stops);
    for i in 0..a.stops {
        tasks.push(tokio::spawn(one_stop(
            i,
            a.clone(),
            api.clone(),
            stop_producer.clone(),
            waiting.clone(),
        )));
        // Uniform in [0.5, 1.5) × the interval.
        let jitter = 0.5 + (rng.next() % 1000) as f64 / 1000.0;
        due += a.interval.mul_f64(jitter);
        tokio::time::sleep_until(due).await;
    }
    let mut from_send = Vec::with_capacity(a.stops);
    let mut from_ack = Vec::with_capacity(a.stops);
    for task in tasks {
        let (s, k) = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("a STOP was not reflected within 60 s")
            .expect("STOP task");
        from_send.push(s);
        from_ack.push(k);
    }
    let window = started.elapsed().as_secs_f64();
    let read = records_read(&api, &a.api).await - read0;
    let cpu = a.pid.and_then(cpu_seconds).zip(cpu0).map(|(b, a)| b - a);
    stop_chat.store(true, Ordering::Relaxed);
    let sent = chat_thread.join().expect("chat thread");
    if let Some(f) = follower {
        f.abort();
    }
    chat_producer
        .flush(Duration::from_secs(30))
        .expect("chat flush");
    let acks = chat_producer.context();
    let failed = acks.failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("stop_latency: {failed} chat records refused by the broker");
        std::process::exit(1);
    }
    from_send.sort();
    from_ack.sort();
    let via = if a.feed {
        "event feed, then consent"
    } else {
        "consent polled every 1 ms"
    };
    println!(
        "stop latency{}: {} STOPs over {window:.1} s ({via}), chat offered {:.0}/s ({sent} sent); \
         service read {:.0} records/s{}",
        if a.label.is_empty() {
            String::new()
        } else {
            format!(" [{}]", a.label)
        },
        a.stops,
        a.chat_rate,
        read / window,
        cpu.map_or(String::new(), |c| format!(
            ", used {:.2} cores ({:.1} ms CPU per 1,000 records)",
            c / window,
            c * 1e6 / read.max(1.0)
        ))
    );
    println!("  from the send: {}", summary(&from_send));
    println!("  from the ack:  {}", summary(&from_ack));
}
