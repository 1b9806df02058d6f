//! Consent recorded outside the message stream: a web-form opt-in, a support agent's opt-out,
//! a CRM import. Such a decision becomes an event exactly like a STOP does (same chain, same
//! consent view, same outbox entry to `consent.events`), so subscribers cannot tell the sources
//! apart except by `source.kind`. No reply is queued: the customer did not write to us, so
//! there is no conversation to confirm in.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::file::{relay_outbox, FileSinks};
use super::outbox_key;
use crate::domain::consent::{event_type_for, purposes_for, Request};
use crate::domain::contact::Contact;
use crate::domain::event::{Attribution, ConsentEvent, EventSource, SourceKind};
use crate::ledger::{Ledger, LedgerError, OutboxEntry, OutboxTarget, Staged};

/// The ledger partition API and import events are chained on. Inbound partitions are Kafka's;
/// these sources have no partition of their own, and one chain keeps their order auditable.
pub const PARTITION: u32 = 0;

/// Where a recorded decision came from; decides its dedupe namespace and message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `POST …/consent-events`, deduplicated by the caller's `Idempotency-Key`.
    Api,
    /// A row of `POST …/imports`, deduplicated by a digest of the row's content.
    Import,
}

impl Origin {
    pub fn kind(self) -> SourceKind {
        match self {
            Origin::Api => SourceKind::Api,
            Origin::Import => SourceKind::Import,
        }
    }

    /// The dedupe kind: separate from inbound message ids, so a caller's key can never
    /// collide with a WhatsApp message id.
    pub fn dedupe_kind(self) -> &'static str {
        match self {
            Origin::Api => "idempotency",
            Origin::Import => "import",
        }
    }

    /// The `source.message_id` of the event recorded under `key`.
    pub fn message_id(self, key: &str) -> String {
        match self {
            Origin::Api => format!("api:{key}"),
            Origin::Import => format!("import:{key}"),
        }
    }
}

/// One consent decision to record.
#[derive(Debug, Clone)]
pub struct ConsentRecord {
    pub origin: Origin,
    /// The idempotency key or the row digest: the same key never appends twice.
    pub key: String,
    pub contact: Contact,
    pub request: Request,
    /// When the person decided. Invariant 3 makes the latest decision win, so callers must not
    /// pass a time in the future: it would outrank every later STOP.
    pub occurred_at: DateTime<Utc>,
    /// Where the decision was given (`web`, `support`, `crm`, …).
    pub channel: String,
    /// A short label of the source (`web_form`, `support_agent`), kept in `source.rule`.
    pub label: Option<String>,
    /// The proof: what the person saw or said, and where; kept in `source.text`.
    pub proof: Option<String>,
    pub language: Option<String>,
    pub campaign_id: Option<String>,
    /// Line of the import file.
    pub line: Option<u64>,
}

/// What staging a record did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    Appended(Box<ConsentEvent>),
    /// The key was recorded before; `event_id` is the id the original request got when it had
    /// the same type.
    Duplicate {
        event_id: Uuid,
    },
}

/// The event id a record gets, whether or not it is appended now.
pub fn event_id(tenant: &str, record: &ConsentRecord) -> Uuid {
    let message_id = record.origin.message_id(&record.key);
    ConsentEvent::id_for(tenant, &message_id, event_type_for(record.request))
}

/// Stages one record into `staged`, exactly as [`super::Processor`] stages an inbound message:
/// dedupe, append on the chain, outbox entry to `consent.events`, dedupe mark.
pub fn stage(
    staged: &mut Staged<'_>,
    tenant: &str,
    record: &ConsentRecord,
    now: DateTime<Utc>,
) -> Result<Recorded, LedgerError> {
    let kind = record.origin.dedupe_kind();
    if staged.is_seen(tenant, &record.key, kind)? {
        return Ok(Recorded::Duplicate {
            event_id: event_id(tenant, record),
        });
    }
    let before = staged.consent(tenant, &record.contact)?;
    let (campaign_id, attribution) = match &record.campaign_id {
        Some(id) => (Some(id.clone()), Attribution::Explicit),
        None => (None, Attribution::None),
    };
    let event = ConsentEvent {
        event_id: event_id(tenant, record),
        partition: PARTITION,
        seq: staged.next_seq(PARTITION)?,
        tenant: tenant.to_string(),
        contact: record.contact.clone(),
        channel: record.channel.clone(),
        event_type: event_type_for(record.request),
        purposes: purposes_for(record.request, &before),
        occurred_at: record.occurred_at,
        recorded_at: now,
        source: EventSource {
            kind: record.origin.kind(),
            message_id: record.origin.message_id(&record.key),
            keyword: None,
            rule: record.label.clone(),
            text: record.proof.clone(),
            language: record.language.clone(),
            context_message_id: None,
            topic: None,
            kafka_partition: None,
            offset: None,
            line: record.line,
        },
        campaign_id,
        attribution,
        prev_hash: String::new(),
        hash: String::new(),
    };
    let (event, _after) = staged.append(event)?;
    staged.push_outbox(OutboxEntry {
        target: OutboxTarget::ConsentEvents,
        partition: PARTITION,
        key: outbox_key(tenant, &record.contact),
        payload: String::from_utf8(event.stored_bytes()).expect("JSON is UTF-8"),
    });
    staged.mark_seen(tenant, &record.key, kind, event.event_id.as_bytes());
    tracing::debug!(
        tenant,
        contact = %record.contact.masked(),
        origin = ?record.origin,
        event_id = %event.event_id,
        "consent recorded"
    );
    Ok(Recorded::Appended(Box::new(event)))
}

/// Records one decision in its own durable batch. Blocking (takes the writer lock, fsyncs).
pub fn record_one(
    ledger: &Ledger,
    tenant: &str,
    record: &ConsentRecord,
    now: DateTime<Utc>,
) -> Result<Recorded, LedgerError> {
    let mut staged = ledger.stage();
    let recorded = stage(&mut staged, tenant, record, now)?;
    staged.commit()?;
    Ok(recorded)
}

/// The event `event_id` of one contact, if the ledger holds it: what a replayed request is
/// answered with.
pub fn find_event(
    ledger: &Ledger,
    tenant: &str,
    contact: &Contact,
    event_id: Uuid,
) -> Result<Option<ConsentEvent>, LedgerError> {
    Ok(ledger
        .history(tenant, contact)?
        .into_iter()
        .find(|e| e.event_id == event_id))
}

/// File mode's publisher for a long-running process (`serve`): relays the outbox to the JSONL
/// sinks after every commit, so events recorded over HTTP reach `consent-events.jsonl` the
/// same way `ingest` publishes its own. Returns when `shutdown` resolves, after a last relay.
pub async fn relay_files_on_commit(
    ledger: Arc<Ledger>,
    sinks: FileSinks,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut commits = ledger.subscribe();
    let sinks = Arc::new(std::sync::Mutex::new(sinks));
    let relay = || {
        let (ledger, sinks) = (ledger.clone(), sinks.clone());
        tokio::task::spawn_blocking(move || {
            let mut sinks = sinks.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = relay_outbox(&ledger, &mut sinks) {
                tracing::error!(error = %e, "cannot relay the outbox to the JSONL files");
            }
        })
    };
    let _ = relay().await;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            changed = commits.changed() => {
                if changed.is_err() {
                    break;
                }
                let _ = relay().await;
            }
            () = &mut shutdown => break,
        }
    }
    let _ = relay().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::consent::Status;
    use crate::domain::event::{EventType, Purpose};
    use chrono::TimeZone;

    fn record(key: &str, request: Request, at: i64) -> ConsentRecord {
        ConsentRecord {
            origin: Origin::Api,
            key: key.into(),
            contact: Contact::from_stored("+33612345678".into()),
            request,
            occurred_at: Utc.timestamp_opt(at, 0).unwrap(),
            channel: "web".into(),
            label: Some("web_form".into()),
            proof: Some("Checkbox ticked".into()),
            language: None,
            campaign_id: None,
            line: None,
        }
    }

    #[test]
    fn a_recorded_opt_out_is_chained_published_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let now = Utc.timestamp_opt(5_000, 0).unwrap();
        let stop = record("k1", Request::OptOut { all: true }, 1_000);
        let Recorded::Appended(event) = record_one(&ledger, "acme", &stop, now).unwrap() else {
            panic!("first time must append");
        };
        assert_eq!(event.event_type, EventType::OptedOut);
        assert_eq!(event.purposes, Purpose::ALL.to_vec());
        assert_eq!(event.source.kind, SourceKind::Api);
        assert_eq!(event.source.message_id, "api:k1");
        assert_eq!((event.partition, event.seq), (PARTITION, 1));
        assert_eq!(ledger.outbox_len(), 1);

        let again = record_one(&ledger, "acme", &stop, now).unwrap();
        assert_eq!(
            again,
            Recorded::Duplicate {
                event_id: event.event_id
            }
        );
        assert_eq!(ledger.event_count(), 1);
        let found = find_event(&ledger, "acme", &stop.contact, event.event_id).unwrap();
        assert_eq!(found.as_ref(), Some(&*event));

        // The same key in another tenant is another request.
        assert!(matches!(
            record_one(&ledger, "other", &stop, now).unwrap(),
            Recorded::Appended(_)
        ));
        let start = record("k2", Request::OptIn, 2_000);
        record_one(&ledger, "acme", &start, now).unwrap();
        let c = ledger.consent("acme", &start.contact).unwrap();
        assert_eq!(c.marketing.status, Status::OptedIn);
        assert_eq!(c.transactional.status, Status::OptedIn);
        assert!(ledger.verify().unwrap().ok());
    }
}
