//! Issue 14: several `run` instances in one consumer group, Kafka as the record
//! (`[kafka] scale_out = true`). Every instance reads the whole record topic into its own
//! ledger, so each answers for every contact; each inbound partition's chain has one writer.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::kafka::*;
use crate::common::*;

const TOKEN: &str = "scale-out-token";
/// The deployment's keys, the same for every instance (base64 of 32 bytes each).
const MASTER_KEY: &str = "c2NhbGUtb3V0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=";
const SIGNING_KEY: &str = "c2NhbGUtb3V0LXNpZ25pbmcta2V5LTMyLWJ5dGVzISE=";

fn config(names: &Names) -> String {
    names
        .config_toml_with(
            "scale_out = true",
            &format!(
                "[tenants.acme]\nphone_number_ids = [\"{PHONE_NUMBER_ID}\"]\napi_tokens_sha256 = [\"{}\"]\n",
                hex::encode(Sha256::digest(TOKEN.as_bytes()))
            ),
        )
        .replace("partitions = 3\n", "partitions = 6\n")
        .replace(
            "[kafka.topics]\n",
            &format!(
                "[kafka.topics]\nledger = \"{}.ledger\"\nkeys = \"{}.keys\"\n",
                names.inbound, names.inbound
            ),
        )
}

/// The deployment's keys as every instance and CLI command of a test gets them.
const KEYS: [(&str, &str); 2] = [
    ("CONSENT_LEDGER_MASTER_KEY", MASTER_KEY),
    ("CONSENT_LEDGER_SIGNING_KEY", SIGNING_KEY),
];

fn instance(env: &Env, bootstrap: &str) -> Service {
    Service::start_with(env, bootstrap, &KEYS)
}

/// A metric's value summed over its label sets (0 when absent).
fn metric(svc: &Service, name: &str) -> i64 {
    svc.metrics()
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as i64
}

/// `may_send` for marketing to `contact`, through `svc`'s API.
fn may_send(svc: &Service, contact: &str) -> Option<bool> {
    let path = format!(
        "/v1/tenants/acme/contacts/{}/consent?purpose=marketing",
        contact.replace('+', "%2B")
    );
    let (status, body) = svc.get_as(&path, Some(TOKEN))?;
    if status != 200 {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(&body).ok()?["may_send"].as_bool()
}

fn stop_record(from: &str, id: &str, ts: i64, body: &str) -> Record {
    (
        format!("{PHONE_NUMBER_ID}:{from}"),
        Some(wa_text(from, id, ts, body).into_bytes()),
    )
}

/// `n` messages over `contacts` numbers: STOP, START, a French STOP and chat; returns the
/// records and how many events they make.
fn stream(n: usize, contacts: u64, seed: u64) -> (Vec<Record>, usize) {
    let mut rng = Rng(seed);
    let mut events = 0;
    let records = (0..n)
        .map(|i| {
            let from = format!("3362{:07}", rng.below(contacts));
            let body = match rng.below(4) {
                0 => "STOP",
                1 => "START",
                2 => "Stop svp",
                _ => "Bonjour !",
            };
            events += usize::from(body != "Bonjour !");
            stop_record(
                &from,
                &format!("wamid.so{seed}.{i}"),
                1_763_978_400 + i as i64,
                body,
            )
        })
        .collect();
    (records, events)
}

/// Waits until every instance's view holds `events` events (its own and adopted).
fn wait_for_views(instances: &[&Service], events: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let seen: Vec<i64> = instances
            .iter()
            .map(|s| {
                metric(s, "consent_ledger_events_appended_total")
                    + metric(s, "consent_ledger_events_adopted_total")
            })
            .collect();
        if seen.iter().all(|n| *n >= events) {
            return;
        }
        assert!(
            Instant::now() < deadline && !instances.iter().any(|s| s.has_exited()),
            "views hold {seen:?} of {events} events (or an instance stopped); logs:\n{}",
            instances
                .iter()
                .map(|s| s.log_text())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_topic_with_another_partition_count_than_the_inbound_topic_is_refused() {
    let bootstrap = bootstrap();
    let names = Names::new("scale-mismatch");
    create_topic(&bootstrap, &names.inbound, 6).await;
    create_topic(&bootstrap, &format!("{}.ledger", names.inbound), 3).await;
    let env = Env::with_config(&config(&names));
    let mut svc = instance(&env, &bootstrap);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = svc.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not refuse to start"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let log = svc.log_text();
    assert!(
        log.contains(&format!(
            "the record topic {}.ledger has 3 partitions and the inbound topic {} has 6",
            names.inbound, names.inbound
        )),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_one_instance_processed_is_answered_by_the_other() {
    let (bootstrap, names) = deployment("scale-query").await;
    let (_a_env, _b_env, a, b) = two(&names, &bootstrap, true);
    // Six people, so that each instance's partitions get some of them.
    let people: Vec<String> = (0..6).map(|i| format!("33620000{i:03}")).collect();
    let records: Vec<Record> = people
        .iter()
        .enumerate()
        .map(|(i, p)| stop_record(p, &format!("wamid.q.{i}"), 1_763_978_400, "STOP"))
        .collect();
    produce(&bootstrap, &names.inbound, &records).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    for p in &people {
        let contact = format!("+{p}");
        while may_send(&a, &contact) != Some(false) || may_send(&b, &contact) != Some(false) {
            assert!(
                Instant::now() < deadline,
                "{contact}: a says {:?}, b says {:?}; logs:\n{}\n----\n{}",
                may_send(&a, &contact),
                may_send(&b, &contact),
                a.log_text(),
                b.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let (own_a, own_b) = (
        metric(&a, "consent_ledger_events_appended_total"),
        metric(&b, "consent_ledger_events_appended_total"),
    );
    assert_eq!(own_a + own_b, 6, "each STOP written once, by one instance");
    assert!(
        metric(&a, "consent_ledger_events_adopted_total") == own_b
            && metric(&b, "consent_ledger_events_adopted_total") == own_a,
        "each took in the other's events"
    );
}

/// The broker and the names of a new deployment, its inbound topic made with 6 partitions.
async fn deployment(test: &str) -> (String, Names) {
    let bootstrap = bootstrap();
    let names = Names::new(test);
    create_topic(&bootstrap, &names.inbound, 6).await;
    (bootstrap, names)
}

/// Two instances of the deployment, each with its own data dir; `ready`: once both are.
fn two(names: &Names, bootstrap: &str, ready: bool) -> (Env, Env, Service, Service) {
    let (a_env, b_env) = (
        Env::with_config(&config(names)),
        Env::with_config(&config(names)),
    );
    let a = instance(&a_env, bootstrap);
    let b = instance(&b_env, bootstrap);
    if ready {
        wait_ready(&a);
        wait_ready(&b);
    }
    (a_env, b_env, a, b)
}

fn wait_ready(svc: &Service) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !svc.get("/readyz").is_some_and(|(s, _)| s == 200) {
        assert!(
            Instant::now() < deadline,
            "never ready; log:\n{}",
            svc.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_the_stream_and_end_with_the_same_view() {
    let (bootstrap, names) = deployment("scale-share").await;
    let (records, expected) = stream(100_000, 5_000, 14);
    let (a_env, b_env, a, b) = two(&names, &bootstrap, false);
    let started = Instant::now();
    produce_with(&bootstrap, &names.inbound, &records, &[("linger.ms", "20")]).await;
    wait_for_views(&[&a, &b], expected as i64, Duration::from_secs(600));
    let (own_a, own_b) = (
        metric(&a, "consent_ledger_events_appended_total"),
        metric(&b, "consent_ledger_events_appended_total"),
    );
    assert!(
        own_a > 0 && own_b > 0,
        "both took a share: {own_a} and {own_b}"
    );
    assert_eq!(own_a + own_b, expected as i64, "every event written once");
    eprintln!("views complete after {:?}", started.elapsed());
    same_answers(&a, &b, (0..5_000u64).step_by(50));
    let report = stop_and_compare(vec![(a, &a_env), (b, &b_env)], expected);
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["heads"].as_object().map(|h| h.len()),
        Some(6),
        "one chain per partition"
    );
}

/// Waits until `svc` has written `events` events itself: a point mid-stream.
fn wait_until_written(svc: &Service, events: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(svc, "consent_ledger_events_appended_total") < events as i64 {
        assert!(
            Instant::now() < deadline,
            "wrote too little; log:\n{}",
            svc.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops each instance and verifies its ledger (`verify --json`): each holds `events` events
/// and verifies, and all reports (chain heads included) are equal. Returns the report.
fn stop_and_compare(pairs: Vec<(Service, &Env)>, events: usize) -> serde_json::Value {
    let mut reports = Vec::new();
    for (svc, env) in pairs {
        assert_eq!(svc.stop(), Some(0));
        let out = env
            .command(&["verify", "--json"])
            .envs(KEYS)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["events"], events, "{report}");
        reports.push(report);
    }
    assert!(reports.windows(2).all(|w| w[0] == w[1]), "{reports:?}");
    reports.pop().expect("one instance at least")
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_one_instance_mid_stream_loses_doubles_and_destroys_nothing() {
    let (bootstrap, names) = deployment("scale-kill").await;
    let (records, expected) = stream(10_000, 2_000, 15);
    let (a_env, b_env, a, b) = two(&names, &bootstrap, true);
    produce_with(&bootstrap, &names.inbound, &records, &[("linger.ms", "20")]).await;
    // Mid-stream: both have written, neither is done.
    wait_until_written(&a, expected / 8);
    a.kill9();
    // b takes a's partitions over once the group drops a, and a's open transaction is
    // aborted by the broker.
    wait_for_views(&[&b], expected as i64, Duration::from_secs(300));
    eprintln!(
        "{}",
        b.log_text()
            .lines()
            .filter(|l| l.contains("caught up") || l.contains("assigned"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // a comes back on its own data dir, from where its last write left its cursors: ready
    // means its view holds what the record topic held when it started, all of b's work.
    let a = instance(&a_env, &bootstrap);
    wait_ready(&a);
    // Regression: the retention sweep at a's restart ran before its view had caught up, took
    // the text keys of events not yet taken in for keys without events, destroyed them and
    // tombstoned them for every instance. Nothing was erased here: no tombstone may exist.
    std::thread::sleep(Duration::from_secs(1));
    let keys = consume_until(
        &bootstrap,
        &format!("{}.keys", names.inbound),
        Duration::from_secs(5),
        |_| false,
    );
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|m| rdkafka::Message::payload(m).is_some()),
        "a key was tombstoned though nothing was erased; a's log:\n{}",
        a.log_text()
    );
    stop_and_compare(vec![(a, &a_env), (b, &b_env)], expected);
}

/// An instance paused past its session timeout (a stall, a VM migration, a frozen container)
/// is dropped from the group while it holds records it read; when it goes on, the broker
/// refuses that batch's transaction (its group generation is gone). It must abort the batch,
/// read it again and go on, not stop: the instance used to stop on any refused transaction.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_paused_past_its_session_timeout_aborts_the_refused_batch_and_goes_on() {
    let (bootstrap, names) = deployment("scale-pause").await;
    let (records, expected) = stream(20_000, 2_000, 16);
    let (a_env, b_env, a, b) = two(&names, &bootstrap, true);
    produce_with(&bootstrap, &names.inbound, &records, &[("linger.ms", "20")]).await;
    wait_until_written(&a, expected / 10);
    // Mid-stream, with records read and not yet written: frozen for longer than the session
    // timeout (6 s), well under the transaction timeout (60 s).
    a.pause();
    std::thread::sleep(Duration::from_secs(10));
    a.resume();
    wait_for_views(&[&a, &b], expected as i64, Duration::from_secs(300));
    let a_log = a.log_text();
    assert!(
        a.get("/readyz").is_some_and(|(s, _)| s == 200),
        "a stopped or is not ready after the pause; log:\n{a_log}"
    );
    assert!(
        metric(&a, "consent_ledger_transactions_aborted_total") >= 1
            && a_log.contains("its records are read again"),
        "the pause did not make the broker refuse a transaction; log:\n{a_log}"
    );
    let (own_a, own_b) = (
        metric(&a, "consent_ledger_events_appended_total"),
        metric(&b, "consent_ledger_events_appended_total"),
    );
    assert_eq!(own_a + own_b, expected as i64, "every event written once");
    stop_and_compare(vec![(a, &a_env), (b, &b_env)], expected);
}

/// A dead-letter topic that takes less than the producer sends (`max.message.bytes` of 8 KB):
/// in scale-out the broker's refusal dooms the batch's transaction, so the batch is aborted
/// and read again with its dead letter a size smaller each time, until it fits. The STOP
/// behind the poison record counts, and the instance stays up.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_its_topic_refuses_for_size_is_cut_smaller_and_the_stop_behind_it_counts() {
    let (bootstrap, names) = deployment("scale-dlq").await;
    create_topic_with(&bootstrap, &names.dlq, 3, &[("max.message.bytes", "8192")]).await;
    let env = Env::with_config(&config(&names));
    let svc = instance(&env, &bootstrap);
    wait_ready(&svc);
    let from = "33620009999";
    let poison = format!(r#"{{"not":"a webhook","pad":"{}"}}"#, "x".repeat(40_000));
    let records = vec![
        (
            format!("{PHONE_NUMBER_ID}:{from}"),
            Some(poison.into_bytes()),
        ),
        stop_record(from, "wamid.dlq.1", 1_763_978_400, "STOP"),
    ];
    produce(&bootstrap, &names.inbound, &records).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while may_send(&svc, &format!("+{from}")) != Some(false) {
        assert!(
            Instant::now() < deadline && !svc.has_exited(),
            "the STOP behind the poison record never counted; log:\n{}",
            svc.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dead = consume_until(&bootstrap, &names.dlq, Duration::from_secs(30), |r| {
        !r.is_empty()
    });
    assert_eq!(dead.len(), 1, "one dead letter, once");
    assert_eq!(header(&dead[0], "dlq.truncated").as_deref(), Some("true"));
    assert_eq!(
        header(&dead[0], "dlq.original.size").as_deref(),
        Some("40028")
    );
    assert!(
        metric(&svc, "consent_ledger_transactions_aborted_total") >= 1,
        "{}",
        svc.log_text()
    );
    assert_eq!(svc.stop(), Some(0));
}

/// `METHOD path` with extra header lines and `body` on `svc`'s API: status and body.
fn request(svc: &Service, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = svc.addr().expect("the API listens");
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

fn post(svc: &Service, path: &str, headers: &str, body: &str) -> (u16, String) {
    request(svc, "POST", path, headers, body)
}

fn delete(svc: &Service, path: &str) -> (u16, String) {
    request(svc, "DELETE", path, "", "")
}

#[tokio::test(flavor = "multi_thread")]
async fn api_writes_and_imports_go_through_kafka_and_every_instance_answers_for_them() {
    let (bootstrap, names) = deployment("scale-api").await;
    let (_a_env, _b_env, a, b) = two(&names, &bootstrap, true);
    // POST consent-events?QUERY with Idempotency-Key KEY: status, JSON answer, raw answer.
    let record = |svc: &Service, query: &str, key: &str, body: &str| {
        let (status, text) = post(
            svc,
            &format!("/v1/tenants/acme/consent-events{query}"),
            &format!("Content-Type: application/json\r\nIdempotency-Key: {key}\r\n"),
            body,
        );
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        (status, json, text)
    };

    // Without a wait: 202 and the event's id, the decision on its way.
    let (status, answer, body) = record(
        &a,
        "",
        "api-1",
        r#"{"contact":"+33640000001","type":"OptedOut","channel":"support","source":"agent"}"#,
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(answer["accepted"], true);
    let event_id = answer["event_id"].as_str().unwrap().to_string();

    // With a wait: 201 and the event, once this instance's view holds it.
    let (status, answer, body) = record(
        &b,
        "?wait=20",
        "api-2",
        r#"{"contact":"+33640000002","type":"OptedOut","scope":"all"}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(answer["event"]["source"]["kind"], "api", "{body}");

    // An import through a, all rows in one transaction.
    let csv = "contact,status,occurred_at\n+33640000003,opted_out,2026-11-01T10:00:00Z\n+33640000004,opted_out,2026-11-01T10:00:00Z\nnot-a-number,opted_out,2026-11-01T10:00:00Z\n";
    let (status, body) = post(
        &a,
        "/v1/tenants/acme/imports",
        "Content-Type: text/csv\r\n",
        csv,
    );
    assert_eq!(status, 202, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (report["accepted"].as_u64(), report["rejected"].as_u64()),
        (Some(2), Some(1)),
        "{report}"
    );

    // Every instance answers for every decision, whoever wrote it.
    let deadline = Instant::now() + Duration::from_secs(30);
    for contact in [
        "+33640000001",
        "+33640000002",
        "+33640000003",
        "+33640000004",
    ] {
        while may_send(&a, contact) != Some(false) || may_send(&b, contact) != Some(false) {
            assert!(
                Instant::now() < deadline,
                "{contact} is not opted out on both instances"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // The key again, through the other instance: the original event from its view.
    let (status, answer, body) = record(
        &b,
        "",
        "api-1",
        r#"{"contact":"+33640000001","type":"OptedOut","channel":"support","source":"agent"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer["event"]["event_id"], event_id.as_str());
    // The key for another decision: 409, as on a single instance.
    let (status, answer, body) = record(
        &a,
        "",
        "api-1",
        r#"{"contact":"+33640000001","type":"OptedIn"}"#,
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        answer["type"]
            .as_str()
            .map(|t| t.ends_with("idempotency-key-reused")),
        Some(true),
        "{body}"
    );
}

/// Both instances' API answers for the marketing consent of `+3362` and each of `numbers`
/// (7 digits) are the same, but for the time each answered.
fn same_answers(x: &Service, y: &Service, numbers: impl Iterator<Item = u64>) {
    for i in numbers {
        let path = format!("/v1/tenants/acme/contacts/%2B3362{i:07}/consent?purpose=marketing");
        let answer = |svc: &Service| {
            let (status, body) = svc.get_as(&path, Some(TOKEN)).expect("the API answers");
            assert_eq!(status, 200, "{body}");
            let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v.as_object_mut().unwrap().remove("checked_at");
            v
        };
        assert_eq!(
            answer(x),
            answer(y),
            "both instances answer alike for {path}"
        );
    }
}

/// Events in `svc`'s view: written by it or taken from the others.
fn in_view(svc: &Service) -> i64 {
    metric(svc, "consent_ledger_events_appended_total")
        + metric(svc, "consent_ledger_events_adopted_total")
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_from_one_instance_to_three_and_back_mid_stream_keeps_the_state_exact() {
    let (bootstrap, names) = deployment("scale-123").await;
    let (records, expected) = stream(12_000, 2_000, 16);
    let thirds: Vec<&[Record]> = records.chunks(4_000).collect();
    let envs: Vec<Env> = (0..3).map(|_| Env::with_config(&config(&names))).collect();
    let a = instance(&envs[0], &bootstrap);
    wait_ready(&a);
    // A first third as a backlog: b and c join while a works through it.
    produce_with(
        &bootstrap,
        &names.inbound,
        thirds[0],
        &[("linger.ms", "20")],
    )
    .await;
    wait_for("a to write", Duration::from_secs(120), || in_view(&a) > 0);
    let b = instance(&envs[1], &bootstrap);
    let c = instance(&envs[2], &bootstrap);
    wait_ready(&b);
    wait_ready(&c);
    // The second third with three instances, each owning two partitions.
    produce_with(
        &bootstrap,
        &names.inbound,
        thirds[1],
        &[("linger.ms", "20")],
    )
    .await;
    wait_for("b and c to write", Duration::from_secs(120), || {
        metric(&b, "consent_ledger_events_appended_total") > 0
            && metric(&c, "consent_ledger_events_appended_total") > 0
    });
    // Back to one while the stream goes on: b and c leave with the last third in the topic.
    produce_with(
        &bootstrap,
        &names.inbound,
        thirds[2],
        &[("linger.ms", "20")],
    )
    .await;
    assert_eq!(b.stop(), Some(0));
    assert_eq!(c.stop(), Some(0));
    wait_for_views(&[&a], expected as i64, Duration::from_secs(300));
    stop_and_compare(vec![(a, &envs[0])], expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_brand_new_instance_joins_and_answers_for_everyone_once_ready() {
    let bootstrap = bootstrap();
    let names = Names::new("scale-new");
    create_topic(&bootstrap, &names.inbound, 6).await;
    let (records, expected) = stream(3_000, 300, 17);
    let (a_env, d_env) = (
        Env::with_config(&config(&names)),
        Env::with_config(&config(&names)),
    );
    let a = instance(&a_env, &bootstrap);
    produce_with(&bootstrap, &names.inbound, &records, &[("linger.ms", "20")]).await;
    wait_for_views(&[&a], expected as i64, Duration::from_secs(120));
    // d starts from an empty data dir: it takes the index secret, the keys and every event
    // from Kafka before it reads a message, and only then says it is ready.
    let d = instance(&d_env, &bootstrap);
    wait_ready(&d);
    assert_eq!(
        metric(&d, "consent_ledger_events_adopted_total"),
        expected as i64,
        "ready means the view holds what the record topic held"
    );
    same_answers(&a, &d, (0..300u64).step_by(7));
    let report = stop_and_compare(vec![(a, &a_env), (d, &d_env)], expected);

    // A lost instance's ledger, rebuilt offline from the record topic, verifies the same.
    let e_env = Env::with_config(&config(&names));
    let out = e_env
        .command(&["rebuild", "--from-kafka"])
        .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
        .envs(KEYS)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{expected} events from 6 partitions")),
        "{text}"
    );
    let out = e_env
        .command(&["verify", "--json"])
        .envs(KEYS)
        .output()
        .unwrap();
    let rebuilt: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rebuilt, report,
        "the rebuilt ledger holds the same chains and view"
    );
    let again = e_env
        .command(&["rebuild", "--from-kafka"])
        .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
        .env("CONSENT_LEDGER_MASTER_KEY", MASTER_KEY)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "a ledger that holds events is not filled again"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds events"));
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_partitions_added_while_running_are_held_until_the_record_topic_has_them() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
    use rdkafka::producer::FutureRecord;
    let bootstrap = bootstrap();
    let names = Names::new("scale-grow");
    create_topic(&bootstrap, &names.inbound, 6).await;
    let env = Env::with_config(&config(&names));
    let a = instance(&env, &bootstrap);
    wait_ready(&a);
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
    admin
        .create_partitions(
            &[NewPartitions::new(&names.inbound, 8)],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    wait_for(
        "the added partitions to be held",
        Duration::from_secs(60),
        || metric(&a, "consent_ledger_inbound_partitions_unmatched") == 2,
    );
    assert!(a
        .log_text()
        .contains("the inbound topic has more partitions than the record topic"));
    // A STOP on an added partition waits in Kafka; one on an old partition goes through.
    let p = producer(&bootstrap);
    for (partition, from) in [(7, "33650000007"), (1, "33650000001")] {
        let value = wa_text(
            from,
            &format!("wamid.grow.{partition}"),
            1_763_978_400,
            "STOP",
        );
        p.send(
            FutureRecord::<str, str>::to(&names.inbound)
                .partition(partition)
                .key(from)
                .payload(&value),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    wait_for("the STOP on partition 1", Duration::from_secs(30), || {
        may_send(&a, "+33650000001") == Some(false)
    });
    // Given the time the STOP on partition 1 took, and then some.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        may_send(&a, "+33650000007"),
        Some(true),
        "nothing read beyond the record topic"
    );
    assert_eq!(a.stop(), Some(0), "held partitions do not hold the stop up");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_through_one_instance_erases_everywhere_and_tombstones_the_keys() {
    let (bootstrap, names) = deployment("scale-erase").await;
    let (a_env, b_env, a, b) = two(&names, &bootstrap, true);
    let records: Vec<Record> = (0..6)
        .map(|i| {
            let from = format!("3366000000{i}");
            stop_record(&from, &format!("wamid.er.{i}"), 1_763_978_400, "STOP")
        })
        .collect();
    produce(&bootstrap, &names.inbound, &records).await;
    wait_for_views(&[&a, &b], 6, Duration::from_secs(60));

    let (status, body) = delete(
        &a,
        "/v1/tenants/acme/contacts/%2B33660000003?reason=customer%20request&wait=20",
    );
    assert_eq!(status, 200, "{body}");
    let erased: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(erased["type"], "Erased", "{erased}");
    // The other instance knows it too: same event, the person still excluded from marketing.
    wait_for("b to hold the erasure", Duration::from_secs(30), || {
        delete(&b, "/v1/tenants/acme/contacts/%2B33660000003?reason=again").0 == 200
    });
    let (_, again) = delete(&b, "/v1/tenants/acme/contacts/%2B33660000003?reason=again");
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        again["event_id"], erased["event_id"],
        "one erasure, seen from both"
    );
    assert_eq!(may_send(&b, "+33660000003"), Some(false));

    // Its data keys are tombstoned on the key topic, so no instance, new or rebuilt, gets
    // them back.
    let keys = consume_until(
        &bootstrap,
        &format!("{}.keys", names.inbound),
        Duration::from_secs(30),
        |r| r.iter().any(|m| rdkafka::Message::payload(m).is_none()),
    );
    assert!(
        keys.iter().any(|m| rdkafka::Message::payload(m).is_none()),
        "a tombstone on the key topic"
    );
    let report = stop_and_compare(vec![(a, &a_env), (b, &b_env)], 7);

    // An instance that joins after the erasure finds the person's earlier events sealed under
    // keys that are gone: it takes them in as erased, gets ready and agrees with the others.
    let c_env = Env::with_config(&config(&names));
    let c = instance(&c_env, &bootstrap);
    wait_ready(&c);
    assert_eq!(may_send(&c, "+33660000003"), Some(false));
    assert_eq!(may_send(&c, "+33660000002"), Some(false));
    assert_eq!(stop_and_compare(vec![(c, &c_env)], 7), report);
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_out_without_the_deployment_keys_in_the_configuration_is_refused() {
    let bootstrap = bootstrap();
    let names = Names::new("scale-keys");
    let env = Env::with_config(&config(&names));
    // The master key configured, the signing key left to the data dir: refused.
    let mut svc = Service::start_with(
        &env,
        &bootstrap,
        &[("CONSENT_LEDGER_MASTER_KEY", MASTER_KEY)],
    );
    let status = svc.child.wait().unwrap();
    assert!(!status.success());
    let log = svc.log_text();
    assert!(
        log.contains("scale-out needs the deployment's signing key"),
        "{log}"
    );
}

/// Regression: two instances starting at once on a new deployment raced the creation of the
/// record topic; one asked for offsets of partitions the broker did not know yet and stopped
/// ("UnknownPartition"). Both must come up and share the work.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_starting_together_on_a_new_deployment_both_get_ready() {
    let bootstrap = bootstrap();
    let names = Names::new("scale-race");
    // No topic exists: both instances create them, at the same moment.
    let (_a_env, _b_env, a, b) = two(&names, &bootstrap, true);
    assert!(
        a.log_text().contains("Kafka is the record")
            && b.log_text().contains("Kafka is the record")
    );
    produce(
        &bootstrap,
        &names.inbound,
        &[stop_record(
            "33670000001",
            "wamid.race",
            1_763_978_400,
            "STOP",
        )],
    )
    .await;
    wait_for("the STOP on both", Duration::from_secs(30), || {
        may_send(&a, "+33670000001") == Some(false) && may_send(&b, "+33670000001") == Some(false)
    });
}

/// Issue 14, the key race: a new identifier whose first records reach two instances at once
/// gets a data key from each. Both keys survive on the key topic, and every instance, and one
/// that joins later, reads every event of it. Each contact's STOP and START go to partitions
/// three apart, which the range and the round-robin assignors alike give to different
/// instances of two.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_that_make_keys_for_one_new_identifier_at_once_both_read_its_events() {
    use rdkafka::producer::FutureRecord;

    let (bootstrap, names) = deployment("scale-keyrace").await;
    let (a_env, b_env, a, b) = two(&names, &bootstrap, true);
    const BATCH: u64 = 20;
    let p = producer(&bootstrap);
    // Chat on every partition first, until both instances read some: the group has settled
    // with partitions on each.
    for partition in 0..6 {
        let body = wa_text(
            "33679999999",
            &format!("wamid.kr.warm.{partition}"),
            1_763_978_000,
            "Bonjour",
        );
        p.send(
            FutureRecord::<[u8], [u8]>::to(&names.inbound)
                .partition(partition)
                .payload(body.as_bytes()),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
    }
    wait_for("both instances to read", Duration::from_secs(60), || {
        let read = |s: &Service| metric(s, "consent_ledger_records_read_total");
        read(&a) > 0 && read(&b) > 0 && read(&a) + read(&b) >= 6
    });
    // Rounds of new contacts until some slot got a key from each instance on the key topic
    // (the race is likely in every round, not certain).
    let mut contacts = 0;
    let mut raced = 0;
    while raced == 0 {
        assert!(
            contacts < 5 * BATCH,
            "no identifier got two keys in 5 rounds"
        );
        let mut sends = Vec::new();
        for c in contacts..contacts + BATCH {
            let from = format!("3367{c:07}");
            for (i, word) in ["STOP", "START"].into_iter().enumerate() {
                let partition = ((c + 3 * i as u64) % 6) as i32;
                let body = wa_text(
                    &from,
                    &format!("wamid.kr.{c}.{i}"),
                    1_763_978_400 + i as i64,
                    word,
                );
                let key = format!("{PHONE_NUMBER_ID}:{from}");
                sends.push(
                    p.send_result(
                        FutureRecord::to(&names.inbound)
                            .partition(partition)
                            .key(key.as_bytes())
                            .payload(body.as_bytes()),
                    )
                    .map_err(|(e, _)| e),
                );
            }
        }
        for sent in sends {
            sent.expect("queued")
                .await
                .expect("delivered")
                .expect("acked");
        }
        contacts += BATCH;
        wait_for_views(&[&a, &b], (contacts * 2) as i64, Duration::from_secs(60));
        let keys = consume_settled(
            &bootstrap,
            &format!("{}.keys", names.inbound),
            Duration::from_secs(30),
            Duration::from_secs(2),
            |r| !r.is_empty(),
        );
        let mut ids: std::collections::BTreeMap<Vec<u8>, std::collections::BTreeSet<Vec<u8>>> =
            Default::default();
        for m in &keys {
            let Some(key) = rdkafka::Message::key(m) else {
                continue;
            };
            if let Some(at) = key.iter().rposition(|b| *b == b'#') {
                ids.entry(key[..at].to_vec())
                    .or_default()
                    .insert(key[at + 1..].to_vec());
            }
        }
        raced = ids.values().filter(|v| v.len() > 1).count();
    }
    eprintln!("{raced} key slots of {contacts} contacts got a key from each instance");
    let events = (contacts * 2) as i64;

    let history_reads = |svc: &Service| {
        for c in 0..contacts {
            let path = format!("/v1/tenants/acme/contacts/%2B3367{c:07}/history");
            let (status, body) = svc.get_as(&path, Some(TOKEN)).expect("the API answers");
            assert_eq!(status, 200, "{body}");
            let history: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                history["events"].as_array().map(Vec::len),
                Some(2),
                "{body}"
            );
            assert!(
                !body.contains("[erased]"),
                "{raced} raced; contact {c}: {body}"
            );
        }
    };
    history_reads(&a);
    history_reads(&b);
    let report = stop_and_compare(vec![(a, &a_env), (b, &b_env)], events as usize);
    let c_env = Env::with_config(&config(&names));
    let c = instance(&c_env, &bootstrap);
    wait_ready(&c);
    history_reads(&c);
    assert_eq!(stop_and_compare(vec![(c, &c_env)], events as usize), report);
}
