//! Step 1 of the commit path on its own: decoding a record, resolving its tenant and contacts
//! and classifying its messages. None of it reads the ledger: it depends on the record, the
//! config and the batch's clock only, so a batch's records can be prepared on two threads
//! while the decisions (step 2) are still taken one by one, in input order, against the
//! ledger. On a real stream nearly all of a batch's time is here (BENCHMARKS.md, "Kafka
//! throughput"): most messages are chat, which step 2 ends at once.

use chrono::{DateTime, Utc};

use super::commit::Rejection;
use super::resolve;
use crate::config::Settings;
use crate::domain::analytics::SentRef;
use crate::domain::contact::Contact;
use crate::domain::decide::{self, Classified, ConsentRecord, Origin, Resolved};
use crate::domain::event::Erasure;
use crate::domain::inbound::{self, Content, DecodeError, DeliveryStatus, Item, TenantRef};
use crate::domain::tenant::TenantId;

/// Records per batch below which a second thread costs more than it saves (starting it is
/// tens of microseconds; a record takes a few).
const PARALLEL_FROM: usize = 64;

/// One record, prepared: its items, or why the record as a whole was rejected.
pub(super) type Prepared = Result<Vec<Ready>, DecodeError>;

/// An item of a record, ready to be decided.
pub(super) enum Ready {
    /// Valid input that carries no consent meaning (a status of a message we did not send,
    /// a reaction), or a notice naming identifiers that could not be filed (see [`prepare`]).
    Ignored,
    Rejected(Rejection),
    Message(Box<(Resolved, Classified)>),
    Sent(TenantId, SentRef),
    Status(TenantId, DeliveryStatus),
    Consent(TenantId, Box<ConsentRecord>),
    Erase(TenantId, Contact, Erasure, uuid::Uuid),
}

/// What one record needs to be prepared.
pub(super) struct Record<'a> {
    pub bytes: Option<&'a [u8]>,
    pub origin: &'a Origin,
}

/// Prepares `records` in order: on this thread and one more when there are enough of them.
pub(super) fn prepare_all(
    records: &[Record<'_>],
    settings: &Settings,
    now: DateTime<Utc>,
) -> Vec<Prepared> {
    let one = |r: &Record<'_>| prepare(r.bytes, r.origin, settings, now);
    if records.len() < PARALLEL_FROM {
        return records.iter().map(one).collect();
    }
    let (first, second) = records.split_at(records.len() / 2);
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("prepare".into())
            .spawn_scoped(scope, || second.iter().map(one).collect::<Vec<_>>());
        let mut prepared: Vec<Prepared> = first.iter().map(one).collect();
        match helper {
            Ok(helper) => prepared.extend(
                helper
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            ),
            // No thread to be had (the process is at its limit): this one does it all.
            Err(_) => prepared.extend(second.iter().map(one)),
        }
        prepared
    })
}

fn prepare(
    bytes: Option<&[u8]>,
    origin: &Origin,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Prepared {
    let items = match bytes {
        Some(bytes) => inbound::decode(bytes)?,
        None => {
            return Err(DecodeError::Invalid {
                what: "record",
                detail: "the value is null (a tombstone)".into(),
            })
        }
    };
    Ok(items
        .into_iter()
        .map(|item| ready(item, origin, settings, now))
        .collect())
}

fn ready(item: Item, origin: &Origin, settings: &Settings, now: DateTime<Utc>) -> Ready {
    match item {
        Item::Ignored(_) => Ready::Ignored,
        Item::Rejected { path, error } => Ready::Rejected(Rejection {
            error,
            path: Some(path),
        }),
        Item::Message(m) => {
            // A chat message that only names the sender's identifiers says nothing the next
            // message will not say again: if it cannot be filed, it is chat.
            let recurs = matches!(m.content, Content::Notice { recurs: true });
            let path = m.path.clone();
            match resolve::message(settings, m, origin, now) {
                Ok(r) => {
                    let classified =
                        decide::classify(&r.message, &settings.profile(&r.tenant).keywords);
                    Ready::Message(Box::new((r, classified)))
                }
                Err(_) if recurs => Ready::Ignored,
                Err(error) => Ready::Rejected(Rejection { error, path }),
            }
        }
        Item::Sent(sent) => match resolve::sent(settings, sent) {
            Ok((tenant, sent)) => Ready::Sent(tenant, sent),
            Err(error) => Ready::Rejected(Rejection { error, path: None }),
        },
        Item::Consent(wire) => {
            let decided = resolve::tenant(settings, &TenantRef::Name(wire.tenant.clone()))
                .and_then(|tenant| {
                    let contact = resolve::contact(settings, &tenant, &wire.contact)?;
                    Ok((tenant, wire.into_record(contact)?))
                });
            match decided {
                Ok((tenant, record)) => Ready::Consent(tenant, Box::new(record)),
                Err(error) => Ready::Rejected(Rejection { error, path: None }),
            }
        }
        Item::Erase(wire) => {
            let erase = resolve::tenant(settings, &TenantRef::Name(wire.tenant.clone())).and_then(
                |tenant| {
                    let contact = resolve::contact(settings, &tenant, &wire.contact)?;
                    let erasure = crate::domain::erasure::request(&wire.requested_by, &wire.reason)
                        .map_err(|e| inbound::invalid_record("erase record", e.to_string()))?;
                    Ok((tenant, contact, erasure))
                },
            );
            match erase {
                Ok((tenant, contact, erasure)) => {
                    Ready::Erase(tenant, contact, erasure, wire.request_id)
                }
                Err(error) => Ready::Rejected(Rejection { error, path: None }),
            }
        }
        Item::Status(status) => match resolve::tenant(settings, &status.tenant) {
            Ok(tenant) => Ready::Status(tenant, status),
            Err(error) => Ready::Rejected(Rejection {
                error,
                path: status.path,
            }),
        },
    }
}
