//! `consent-ledger run` survives a restart of the real broker under it. In its own test binary
//! (cargo runs binaries one after another) so the restart cannot disturb other Kafka tests.

mod common;

use std::time::Duration;

use common::kafka::*;
use common::*;

fn record(line: String) -> Record {
    (format!("{PHONE_NUMBER_ID}:x"), Some(line.into_bytes()))
}

fn stream(n: usize) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    for i in 0..n {
        let body = if i % 2 == 0 { "STOP" } else { "START" };
        let from = format!("3361{:07}", i % 300);
        out.push(record(wa_text(
            &from,
            &format!("wamid.br.{i}"),
            1_763_978_400 + i as i64,
            body,
        )));
    }
    (out, n)
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_under_a_running_service_recovers_by_itself() {
    let bootstrap = bootstrap();
    if std::env::var("CONSENT_LEDGER_TEST_BROKER").as_deref() != Ok("local") {
        panic!("this test restarts the broker with scripts/kafka.sh; run it through scripts/test.sh (CONSENT_LEDGER_TEST_BROKER=local)");
    }
    let names = Names::new("brokerrestart");
    let env = Env::with_config(&names.config_toml(""));
    let (records, expected) = stream(1200);
    let (first, second) = records.split_at(600);
    produce(&bootstrap, &names.inbound, first).await;
    let svc = Service::start(&env, &bootstrap);
    consume_until(&bootstrap, &names.events, Duration::from_secs(60), |r| {
        !r.is_empty()
    });
    let status = std::process::Command::new(repo_file("scripts/kafka.sh"))
        .arg("restart-broker")
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .status()
        .unwrap();
    assert!(status.success(), "scripts/kafka.sh restart-broker failed");
    produce(&bootstrap, &names.inbound, second).await;
    let got = consume_until(&bootstrap, &names.events, Duration::from_secs(180), |r| {
        distinct_events(r).len() >= expected
    });
    assert_eq!(
        distinct_events(&got).len(),
        expected,
        "service log:\n{}",
        svc.log_text()
    );
    assert_eq!(svc.stop(), Some(0));
    let exported = env.ok(&["export"]).lines().count();
    assert_eq!(exported, expected);
    assert!(env.ok(&["verify"]).starts_with("ok: "));
}
