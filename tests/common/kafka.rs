//! Helpers for tests against a real Kafka broker: the one scripts/kafka.sh started
//! (scripts/test.sh exports its address), or the developer's own via KAFKA_BOOTSTRAP_SERVERS.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

use super::BIN;

/// The broker to test against. Fails loudly without one: a Kafka test that silently passes
/// when no broker is there proves nothing.
pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| {
        panic!(
            "KAFKA_BOOTSTRAP_SERVERS is not set: run the suite with scripts/test.sh (it starts a broker), \
             or `export KAFKA_BOOTSTRAP_SERVERS=$(scripts/kafka.sh start)`"
        )
    })
}

/// A Kafka record to produce: key and value (`None` is a null value, a tombstone).
pub type Record = (String, Option<Vec<u8>>);

/// Topic and group names unique to one test run.
pub struct Names {
    pub inbound: String,
    pub sent: String,
    pub events: String,
    pub outbound: String,
    pub dlq: String,
    pub group: String,
}

impl Names {
    pub fn new(test: &str) -> Names {
        let run = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let p = format!("t.{test}.{run}");
        Names {
            inbound: format!("{p}.inbound"),
            sent: format!("{p}.sent"),
            events: format!("{p}.events"),
            outbound: format!("{p}.outbound"),
            dlq: format!("{p}.dlq"),
            group: format!("{p}.group"),
        }
    }

    pub fn config_toml(&self, extra: &str) -> String {
        format!(
            "[kafka]\ngroup_id = \"{}\"\nbatch_size = 200\nlinger_ms = 20\npartitions = 3\n\
             [kafka.topics]\ninbound = \"{}\"\nsent = \"{}\"\nconsent_events = \"{}\"\noutbound = \"{}\"\ndead_letter = \"{}\"\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n{extra}",
            self.group, self.inbound, self.sent, self.events, self.outbound, self.dlq
        )
    }
}

pub fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer")
}

/// Produces `(key, value)` records in order and waits for every ack.
pub async fn produce(bootstrap: &str, topic: &str, records: &[Record]) {
    let p = producer(bootstrap);
    for (key, value) in records {
        let mut r: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).key(key.as_str());
        if let Some(v) = value {
            r = r.payload(v.as_slice());
        }
        p.send(r, Duration::from_secs(60))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

/// Creates `topic` with `partitions` (so tests control the partition count).
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    create_topic_with(bootstrap, topic, partitions, &[]).await;
}

/// [`create_topic`] with topic configs, such as `max.message.bytes`.
pub async fn create_topic_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let mut t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        t = t.set(key, value);
    }
    admin
        .create_topics(&[t], &AdminOptions::new())
        .await
        .expect("create topic");
}

/// How many records may arrive between two evaluations of a `consume_until` condition.
/// Conditions such as `distinct_events(r).len() >= n` parse every record read so far;
/// evaluating one after each record made the reader quadratic, and in a debug build it fell
/// about two minutes behind a service that had published 3,000 events in five seconds.
const CHECK_EVERY: usize = 500;

/// Reads `topic` from the beginning until `until(&records)` holds or `timeout` passes.
/// `until` runs whenever the topic is drained for the moment, and every [`CHECK_EVERY`]
/// records while it is not.
pub fn consume_until(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    until: impl Fn(&[OwnedMessage]) -> bool,
) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut checked = 0;
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.detach());
            if out.len() - checked < CHECK_EVERY {
                continue;
            }
        }
        checked = out.len();
        if until(&out) {
            break;
        }
    }
    out
}

/// Like [`consume_until`], then keeps reading for `settle` more, so duplicates show up.
pub fn consume_settled(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    settle: Duration,
    until: impl Fn(&[OwnedMessage]) -> bool,
) -> Vec<OwnedMessage> {
    let settle_from = std::cell::Cell::new(None::<Instant>);
    consume_until(bootstrap, topic, timeout + settle, |r| {
        if settle_from.get().is_none() && until(r) {
            settle_from.set(Some(Instant::now()));
        }
        settle_from.get().is_some_and(|t| t.elapsed() >= settle)
    })
}

/// Polls `check` until it holds, failing the test after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn json_of(m: &OwnedMessage) -> serde_json::Value {
    serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or(serde_json::Value::Null)
}

pub fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Distinct `event_id`s on a consent-events topic.
pub fn distinct_events(records: &[OwnedMessage]) -> std::collections::HashSet<String> {
    records
        .iter()
        .filter_map(|m| json_of(m)["event_id"].as_str().map(str::to_string))
        .collect()
}

/// A `consent-ledger run` child process, with its HTTP API on a free port for its metrics.
pub struct Service {
    pub child: Child,
    pub log: PathBuf,
    addr: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Service {
    pub fn start(env: &super::Env, bootstrap: &str) -> Service {
        Service::start_with(env, bootstrap, &[])
    }

    /// [`Service::start`] with extra environment variables (keys, an instance id).
    pub fn start_with(env: &super::Env, bootstrap: &str, vars: &[(&str, &str)]) -> Service {
        let log = env
            .dir
            .path()
            .join(format!("service-{}.log", uuid::Uuid::new_v4().simple()));
        let mut child = env
            .command(&["run", "--listen", "127.0.0.1:0"])
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
            .env("CONSENT_LEDGER_LOG", "info,rdkafka=warn")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start consent-ledger run");
        let _ = BIN;
        let addr = std::sync::Arc::new(std::sync::Mutex::new(None));
        let stdout = child.stdout.take().expect("piped");
        let found = addr.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(a) = line.strip_prefix("listening on ") {
                    *found.lock().unwrap() = Some(a.trim().to_string());
                }
            }
        });
        Service { child, log, addr }
    }

    /// Where its HTTP API listens, once it said so.
    pub fn addr(&self) -> Option<String> {
        self.addr.lock().unwrap().clone()
    }

    /// The service's metrics, as OpenMetrics text (empty when it does not answer).
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let Some(addr) = self.addr.lock().unwrap().clone() else {
            return String::new();
        };
        let Ok(mut conn) = std::net::TcpStream::connect(&addr) else {
            return String::new();
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(conn, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        let mut text = String::new();
        let _ = conn.read_to_string(&mut text);
        text
    }

    /// Where a stream of events stands, stage by stage, for a failure message: which one
    /// was behind when a wait ran out.
    pub fn stages(&self, read_by_test: usize) -> String {
        let metrics = self.metrics();
        let sum = |name: &str| -> i64 {
            metrics
                .lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as i64
        };
        format!(
            "inbound lag {} | ledger events appended {} | log not yet published {} | published (events and replies) {} | read by the test {}",
            sum("consent_ledger_consumer_lag{"),
            sum("consent_ledger_events_appended_total"),
            sum("consent_ledger_outbox_pending"),
            sum("consent_ledger_published_total"),
            read_by_test
        )
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, and the exit code (the service must drain and exit 0).
    pub fn stop(mut self) -> Option<i32> {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                self.signal("-KILL");
                panic!(
                    "service did not stop within 60 s after SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the process has ended (a zombie not yet waited for counts), without waiting.
    pub fn has_exited(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .map(str::trim_start)
                .is_some_and(|s| s.starts_with('Z'))
        })
    }

    /// SIGSTOP: the process stands still, its heartbeats too, as in a long stall or a frozen
    /// container; [`Service::resume`] lets it go on.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// kill -9: no cleanup of any kind.
    pub fn kill9(mut self) {
        // A service that already stopped would make the kill (and the test) prove nothing.
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "the service had exited ({status}) before kill -9; log:\n{}",
                self.log_text()
            );
        }
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Produces records with a producer of `settings` (compression, size limits): all are sent
/// before any acknowledgement is awaited, so that they travel in batches.
pub async fn produce_with(
    bootstrap: &str,
    topic: &str,
    records: &[Record],
    settings: &[(&str, &str)],
) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "120000");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let p: FutureProducer = config.create().expect("producer");
    let sends: Vec<_> = records
        .iter()
        .map(|(key, value)| {
            let mut r: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).key(key.as_str());
            if let Some(v) = value {
                r = r.payload(v.as_slice());
            }
            p.send(r, Duration::from_secs(60))
        })
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.map_err(|(e, _)| e).expect("produce");
    }
}

impl Service {
    /// `GET path` on the service's HTTP API: the status code and the body, or `None` when it
    /// does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.get_as(path, None)
    }

    /// [`Service::get`] with a bearer token.
    pub fn get_as(&self, path: &str, token: Option<&str>) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let addr = self.addr()?;
        let mut conn = std::net::TcpStream::connect(&addr).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        write!(conn, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").ok()?;
        let mut text = String::new();
        conn.read_to_string(&mut text).ok()?;
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
        Some((status, body.unwrap_or_default()))
    }

    /// Waits until the service's log holds `text`, failing the test with the log after
    /// `timeout`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the service never logged {text:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Names {
    /// Like [`Names::config_toml`], with `kafka` lines in the `[kafka]` table itself (`extra`
    /// lands after `[kafka.properties]`).
    pub fn config_toml_with(&self, kafka: &str, extra: &str) -> String {
        self.config_toml(extra)
            .replacen("[kafka]\n", &format!("[kafka]\n{kafka}\n"), 1)
    }
}
