//! Issue 10: the topics that carry personal data in clear, `consent.events` (identifiers, for
//! subscribers) and the dead-letter topic (original records), get a retention when the
//! service creates them: `[kafka] consent_events_retention_days` (default 7) and `[rgpd]
//! dead_letter_days` (default 30).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use crate::common::kafka::*;
use crate::common::*;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// The topic's `retention.ms`, once the topic exists.
async fn retention_ms(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Option<u64> {
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .ok()?;
    let config = described.into_iter().next()?.ok()?;
    config.get("retention.ms")?.value.as_deref()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_creates_the_feed_and_the_dead_letter_topic_with_their_retention() {
    let bootstrap = bootstrap();
    let names = Names::new("topic-retention");
    let env = Env::with_config(&names.config_toml("[rgpd]\ndead_letter_days = 10\n"));
    let _svc = Service::start(&env, &bootstrap);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let (events, dlq) = loop {
        let events = retention_ms(&admin, &names.events).await;
        let dlq = retention_ms(&admin, &names.dlq).await;
        if events.is_some() && dlq.is_some() {
            break (events, dlq);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the service never created its topics"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        events,
        Some(7 * DAY_MS),
        "consent.events: the default 7 days"
    );
    assert_eq!(
        dlq,
        Some(10 * DAY_MS),
        "the dead-letter topic: rgpd.dead_letter_days"
    );
    let outbound = retention_ms(&admin, &names.outbound).await;
    assert_ne!(
        outbound,
        Some(7 * DAY_MS),
        "other topics keep the broker's default"
    );
}
