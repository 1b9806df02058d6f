//! `consent-ledger run` against a real Apache Kafka broker (the one scripts/kafka.sh starts;
//! scripts/test.sh exports its address), plus librdkafka's mock cluster for faults a real
//! broker cannot produce on cue. One test binary for all of them.

#[path = "../common/mod.rs"]
mod common;

mod end_to_end;
mod erase;
mod identity;
mod iss11;
mod kafka_faults;
mod kafka_sent;
mod scale_out;
mod topic_retention;
mod webhooks;
