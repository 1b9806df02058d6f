//! The `Erased` event and what an erasure request must say. Pure: the ledger destroys the
//! keys and writes the suppression entries in the same batch as this event.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::contact::Contact;
use super::event::{
    Attribution, ConsentEvent, Erasure, EventSource, EventType, Purpose, SourceKind, FORMAT,
};
use super::tenant::TenantId;

/// Longest reason kept, in characters: a reason is a reference or a sentence, not a file.
pub const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErasureError {
    #[error("the reason must not be empty: say why the person is erased (e.g. \"Art. 17 request of 2026-03-01, ticket 4711\")")]
    EmptyReason,
    #[error("the reason is over {MAX_REASON_CHARS} characters")]
    LongReason,
    #[error("the reason must be one line of text, without control characters")]
    ControlCharacters,
}

/// Checks who asked and why; the reason is kept with surrounding white space trimmed.
pub fn request(requested_by: &str, reason: &str) -> Result<Erasure, ErasureError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ErasureError::EmptyReason);
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ErasureError::LongReason);
    }
    if reason.chars().any(char::is_control) {
        return Err(ErasureError::ControlCharacters);
    }
    Ok(Erasure {
        requested_by: requested_by.to_string(),
        reason: reason.to_string(),
    })
}

/// The `Erased` event of the person behind `contact` (`others`: their other identifiers).
/// `request_id` makes its message id: random, so that a later erasure of the same person
/// (after a new opt-in started a new history) is an event of its own, and free of the
/// identifier, which the event id must not reveal.
pub fn erased_event(
    tenant: &TenantId,
    contact: &Contact,
    others: Vec<Contact>,
    erasure: Erasure,
    request_id: Uuid,
    now: DateTime<Utc>,
) -> ConsentEvent {
    let message_id = format!("erasure:{request_id}");
    ConsentEvent {
        format: FORMAT,
        event_id: ConsentEvent::id_for(tenant, &message_id, EventType::Erased),
        partition: 0,
        seq: 0,
        tenant: tenant.clone(),
        contact: contact.clone(),
        channel: "ledger".into(),
        event_type: EventType::Erased,
        purposes: Purpose::ALL.to_vec(),
        occurred_at: now,
        recorded_at: now,
        source: EventSource {
            kind: SourceKind::Erasure,
            message_id,
            keyword: None,
            rule: None,
            text: None,
            language: None,
            context_message_id: None,
            topic: None,
            kafka_partition: None,
            offset: None,
            line: None,
            claimed_time: None,
        },
        campaign_id: None,
        attribution: Attribution::None,
        linked_contact: None,
        link_source: None,
        linked: others,
        erasure: Some(erasure),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::consent::ContactConsent;

    #[test]
    fn a_reason_is_required_short_and_one_line() {
        assert_eq!(request("cli:ops", "  "), Err(ErasureError::EmptyReason));
        assert_eq!(
            request("cli:ops", &"x".repeat(MAX_REASON_CHARS + 1)),
            Err(ErasureError::LongReason)
        );
        assert_eq!(
            request("cli:ops", "a\nb"),
            Err(ErasureError::ControlCharacters)
        );
        let ok = request("cli:ops", " Art. 17 request, ticket 4711 ").unwrap();
        assert_eq!(ok.reason, "Art. 17 request, ticket 4711");
    }

    #[test]
    fn the_erased_event_names_the_person_and_sets_no_consent() {
        let tenant = TenantId::new("acme").unwrap();
        let number = Contact::from_stored("+33612345678".into());
        let user = Contact::from_stored("FR.1234567890".into());
        let e = erased_event(
            &tenant,
            &number,
            vec![user.clone()],
            request("cli:ops", "ticket 1").unwrap(),
            Uuid::from_u128(1),
            Utc::now(),
        );
        assert_eq!(e.event_type, EventType::Erased);
        assert_eq!(e.linked, vec![user]);
        assert!(!e.source.message_id.contains("3361234"));
        assert_eq!(
            ContactConsent::default().apply(&e),
            ContactConsent::default()
        );
    }
}
