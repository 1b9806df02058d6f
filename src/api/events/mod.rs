//! Consent events in and out over HTTP: recording a decision taken elsewhere (a web form, a
//! support agent, a CRM), and the long-poll feed that automations without Kafka follow to
//! stop a flow the moment a customer opts out.
//!
//! `record.rs`: `POST …/consent-events`, one decision through the commit path.
//! `feed.rs`: `GET …/events`, the tenant's events in append order, long-polled.

pub mod feed;
pub mod record;

use super::openapi::schema_ref;

/// Both answers carry events as the schemars-generated `ConsentEvent` schema, the one
/// subscribers of `consent.events` read, rather than a second description of it.
fn consent_event() -> utoipa::openapi::Ref {
    schema_ref("ConsentEvent")
}
