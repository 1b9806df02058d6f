//! THE commit path. Every source writes through [`commit`]: file and stdin (`ingest`), the
//! Kafka consumer (`run`), HTTP consent records and imports. One batch goes through five steps,
//! in this order, and each invariant of DESIGN.md holds at a named step:
//!
//! 1. **Decode** each input, resolve its tenant and contact and classify its messages
//!    ([`super::prepare`]: it reads no ledger, so a large batch is prepared on two threads).
//!    What cannot be used is rejected with its reason; the rest of the record and of the
//!    batch goes on.
//! 2. **Decide** ([`decide`], pure) against the ledger's state plus what this batch staged so
//!    far, and stage the decision: events sealed on their partition's hash chain, replies on
//!    the reply log, the consent view folded with the same `apply` that `rebuild` uses
//!    (invariant 2), and a dedupe record for each message that acted. A message id already
//!    remembered is a duplicate and decides nothing again (invariant 1); ordinary chat acts
//!    on nothing, so it leaves nothing durable.
//! 3. **Dead letters** are made durable by the caller's sink (fsynced file lines, topic
//!    records the broker acknowledged) before the batch is written, so a crash after the
//!    acknowledgement can never lose a rejected record; a crash before it repeats one.
//! 4. **One atomic write**: the whole batch in one atomic write, its journal fsynced
//!    ([`crate::ledger::Staged::commit`]). A crash before it leaves nothing of the batch, and
//!    the unacknowledged input is read again (invariant 5).
//! 5. **Acknowledge** the input, only now: Kafka offsets are committed, the HTTP handler
//!    answers 2xx, `ingest` counts the batch in its summary (invariant 4).
//!
//! Publishing is not a step here: the log is the outbox, and the relays follow it from their
//! own cursors ([`super::relay`]).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::prepare::{self, Prepared, Ready};
use super::summary::Summary;
use crate::config::{Settings, TenantProfile};
use crate::domain::decide::{
    self, Classified, Command, ConsentRecord, Decision, Origin, Outcome, Resolved, State,
};
use crate::domain::event::ConsentEvent;
use crate::domain::inbound::DecodeError;
use crate::domain::replies::OutboundMessage;
use crate::domain::tenant::TenantId;
use crate::ledger::{Ledger, LedgerError, Staged};

/// The ledger partition whose chain holds API and import events: these sources have no
/// partition of their own, and one chain keeps their order auditable.
pub const API_PARTITION: u32 = 0;

/// The dedupe kind of inbound message ids.
const MESSAGE: &str = "message";

/// One input of a batch.
#[derive(Debug, Clone)]
pub enum Input<'a> {
    /// A record from a source: a file line or a Kafka value (`None`: a tombstone).
    Record {
        bytes: Option<&'a [u8]>,
        /// The Kafka key, kept on the dead letter.
        key: Option<&'a [u8]>,
        origin: Origin,
        /// The ledger partition (the inbound Kafka partition; 0 for files).
        partition: u32,
    },
    /// A decision the business records: an API call or an import row.
    Consent {
        tenant: &'a TenantId,
        record: &'a ConsentRecord,
    },
}

/// A rejected record or message, bound for the dead-letter output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub error: DecodeError,
    /// JSON pointer to the rejected message inside the record, when only part was rejected.
    pub path: Option<String>,
}

/// A rejection with the input it came from, for the dead-letter sink.
#[derive(Debug, Clone)]
pub struct Dead<'a> {
    pub rejection: Rejection,
    pub origin: &'a Origin,
    pub bytes: Option<&'a [u8]>,
    pub key: Option<&'a [u8]>,
}

/// What a recorded decision did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    Appended(Box<ConsentEvent>),
    /// The key was recorded before; `event_id` is the id the original request got when it had
    /// the same type.
    Duplicate {
        event_id: Uuid,
    },
}

/// What a batch did once it is durable.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    pub summary: Summary,
    /// One per [`Input::Consent`], in input order.
    pub recorded: Vec<Recorded>,
    pub dead_lettered: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot write the dead letters to {sink}: {detail}")]
    DeadLetters { sink: String, detail: String },
    #[error("cannot acknowledge the input: {0}")]
    Acknowledge(String),
    #[error("cannot write the batch to the record topic: {0}")]
    Record(String),
}

/// Where a source's dead letters go and how it acknowledges its input.
pub trait Sinks {
    /// Step 3: makes the batch's dead letters durable; returns only once they are.
    fn dead_letters(&mut self, dead: &[Dead<'_>], now: DateTime<Utc>) -> Result<(), CommitError>;
    /// Step 4, scale-out: puts the batch on the record topic, in one Kafka transaction with
    /// its input offsets, before this instance's ledger (then a view of that topic) takes it.
    /// Elsewhere the ledger is the record and nothing happens here.
    fn record(&mut self, _staged: &mut Staged<'_>) -> Result<(), CommitError> {
        Ok(())
    }
    /// Step 5: acknowledges the batch's input; called only after the batch is durable.
    fn acknowledge(&mut self, committed: &Committed) -> Result<(), CommitError>;
}

/// Sinks of sources that reject nothing at this stage and acknowledge by returning: HTTP
/// consent records and imports, validated before they get here.
pub struct Respond;

impl Sinks for Respond {
    fn dead_letters(&mut self, dead: &[Dead<'_>], _: DateTime<Utc>) -> Result<(), CommitError> {
        match dead.first() {
            None => Ok(()),
            Some(d) => Err(CommitError::DeadLetters {
                sink: "an HTTP answer".into(),
                detail: d.rejection.error.to_string(),
            }),
        }
    }

    fn acknowledge(&mut self, _: &Committed) -> Result<(), CommitError> {
        Ok(())
    }
}

/// Runs one batch through the five steps. Only a storage or sink failure fails it, and then
/// nothing of it is acknowledged.
pub fn commit(
    ledger: &Ledger,
    settings: &Settings,
    inputs: &[Input<'_>],
    sinks: &mut dyn Sinks,
    now: DateTime<Utc>,
) -> Result<Committed, CommitError> {
    let records: Vec<prepare::Record<'_>> = inputs
        .iter()
        .filter_map(|input| match input {
            Input::Record { bytes, origin, .. } => Some(prepare::Record {
                bytes: *bytes,
                origin,
            }),
            Input::Consent { .. } => None,
        })
        .collect();
    let mut prepared = prepare::prepare_all(&records, settings, now).into_iter();
    let mut staged = ledger.stage();
    let mut committed = Committed::default();
    let mut dead = Vec::new();
    for input in inputs {
        match input {
            Input::Record {
                bytes,
                key,
                origin,
                partition,
            } => {
                let batch = Batch {
                    staged: &mut staged,
                    settings,
                    summary: &mut committed.summary,
                    now,
                };
                let ready = prepared
                    .next()
                    .expect("one prepared record per record input");
                let rejected = batch.record(ready, *partition)?;
                dead.extend(rejected.into_iter().map(|rejection| Dead {
                    rejection,
                    origin,
                    bytes: *bytes,
                    key: *key,
                }));
            }
            Input::Consent { tenant, record } => {
                let mut batch = Batch {
                    staged: &mut staged,
                    settings,
                    summary: &mut committed.summary,
                    now,
                };
                committed
                    .recorded
                    .push(batch.consent(tenant, record, API_PARTITION)?);
            }
        }
    }
    sinks.dead_letters(&dead, now)?;
    sinks.record(&mut staged)?;
    staged.commit()?;
    committed.dead_lettered = dead.len();
    sinks.acknowledge(&committed)?;
    Ok(committed)
}

/// Steps 1 and 2 for one input, against the batch being staged.
struct Batch<'b, 'l> {
    staged: &'b mut Staged<'l>,
    settings: &'b Settings,
    summary: &'b mut Summary,
    now: DateTime<Utc>,
}

impl Batch<'_, '_> {
    /// Step 2 for one record prepared in step 1 ([`prepare`]).
    fn record(mut self, prepared: Prepared, partition: u32) -> Result<Vec<Rejection>, LedgerError> {
        self.summary.read += 1;
        let items = match prepared {
            Ok(items) => items,
            Err(error) => {
                self.summary.rejected += 1;
                return Ok(vec![Rejection { error, path: None }]);
            }
        };
        let mut rejected = Vec::new();
        for item in items {
            let outcome = match item {
                Ready::Ignored => {
                    self.summary.ignored += 1;
                    Ok(())
                }
                Ready::Rejected(rejection) => Err(rejection),
                Ready::Message(m) => {
                    let (r, classified) = *m;
                    self.message(&r, &classified, partition).map(Ok)?
                }
                Ready::Sent(tenant, sent) => {
                    if self.staged.stage_sent(&tenant, sent)? {
                        self.summary.sent += 1;
                    } else {
                        self.summary.duplicates += 1;
                    }
                    Ok(())
                }
                Ready::Status(tenant, status) => {
                    self.staged.stage_delivery(&tenant, &status)?;
                    self.summary.statuses += 1;
                    Ok(())
                }
                Ready::Consent(tenant, record) => {
                    self.consent(&tenant, &record, partition)?;
                    Ok(())
                }
                Ready::Erase(tenant, contact, erasure, request_id) => {
                    let erased = self
                        .staged
                        .erase(&tenant, &contact, erasure, request_id, partition, self.now)?;
                    match erased {
                        crate::ledger::Erased::Now(_) => self.summary.events += 1,
                        crate::ledger::Erased::Before(_) => self.summary.duplicates += 1,
                        crate::ledger::Erased::Unknown => self.summary.ignored += 1,
                    }
                    Ok(())
                }
            };
            if let Err(r) = outcome {
                self.summary.rejected += 1;
                rejected.push(r);
            }
        }
        Ok(rejected)
    }

    fn message(
        &mut self,
        r: &Resolved,
        classified: &Classified,
        partition: u32,
    ) -> Result<(), LedgerError> {
        let id = &r.message.message_id;
        let profile = self.settings.profile(&r.tenant);
        // Ordinary chat that names no second identifier decides nothing whatever the
        // ledger holds (`decide` gives no event, reply or signal for it), so it reads
        // nothing: no dedupe lookup, no consent. Most of a real stream is chat.
        let outcome = decide::outcome_of(&classified.classification);
        if r.links.is_empty() && outcome == Outcome::NoChange {
            if r.time.corrected {
                self.summary.clock_corrected += 1;
            }
            self.summary.count(outcome);
            return Ok(());
        }
        if self.staged.is_seen(&r.tenant, id, MESSAGE)? {
            self.summary.duplicates += 1;
            return Ok(());
        }
        if r.time.corrected {
            self.summary.clock_corrected += 1;
        }
        let linked = self.link(r, partition)?;
        let command = Command::Message {
            message: r,
            classified,
        };
        let person = self.staged.person(&r.tenant, &r.contact)?;
        let (mut replied_to, mut last_marketing) = (None, None);
        if command.needs_attribution() {
            if let Some(context) = &r.message.context_message_id {
                replied_to = self.staged.sent_message(&r.tenant, context)?;
            }
            if replied_to.is_none() {
                last_marketing = self.staged.last_marketing_sent(
                    &r.tenant,
                    &r.contact,
                    r.time.at,
                    profile.attribution_window,
                )?;
            }
        }
        let state = State {
            consent: &person.consent,
            decided: &person.decided,
            replied_to: replied_to.as_ref(),
            last_marketing: last_marketing.as_ref(),
            attribution_window: profile.attribution_window,
            now: self.now,
            linked: &person.linked,
        };
        let decision = decide::decide(state, command);
        if let Some(signal) = &decision.signal {
            self.staged
                .stage_signal(&r.tenant, &signal.campaign_id, signal.kind, id, r.time.at)?;
        }
        self.summary.count(decision.outcome);
        let acted = decision.acted() || linked.is_some();
        let event_id = self
            .stage(&decision, partition)?
            .last()
            .map(|e| e.event_id)
            .or(linked);
        if let Some(reply) = &decision.reply {
            let message = render_reply(&profile, r, reply, event_id, self.now);
            self.staged.push_reply(partition, &message)?;
            self.summary.replies += 1;
        }
        if acted {
            let value = event_id.map(|e| e.as_bytes().to_vec()).unwrap_or_default();
            self.staged.mark_seen(&r.tenant, id, MESSAGE, &value)?;
        }
        tracing::debug!(
            tenant = %r.tenant,
            contact = %r.contact.masked(),
            outcome = ?decision.outcome,
            "message processed"
        );
        Ok(())
    }

    /// Stages a link event for each pair of identifiers the message names that the ledger did
    /// not yet hold for one person, before the message is decided, so that its consent is the
    /// whole person's. Returns the id of the last link event staged.
    fn link(&mut self, r: &Resolved, partition: u32) -> Result<Option<Uuid>, LedgerError> {
        let mut last = None;
        for link in &r.links {
            // A change is recorded even between identifiers already known as one person,
            // since it retires the old one; any other link only when it joins two.
            let known = if link.source.retires_contact() {
                self.staged
                    .linked_directly(&r.tenant, &link.contact, &link.linked)?
            } else {
                self.staged
                    .same_person(&r.tenant, &link.contact, &link.linked)?
            };
            if known {
                continue;
            }
            let mut members = self.staged.members(&r.tenant, &link.contact)?;
            members.extend(self.staged.members(&r.tenant, &link.linked)?);
            members.remove(&link.contact);
            let event = decide::link_event(r, link, members.into_iter().collect(), self.now);
            last = Some(self.staged.append(event, partition)?.event_id);
            self.summary.events += 1;
            self.summary.links += 1;
        }
        Ok(last)
    }

    /// A recorded decision, on `partition`'s chain: [`API_PARTITION`] for the API and
    /// imports of one instance, the inbound partition for those scale-out forwarded.
    fn consent(
        &mut self,
        tenant: &TenantId,
        record: &ConsentRecord,
        partition: u32,
    ) -> Result<Recorded, LedgerError> {
        let kind = record.origin.dedupe_kind();
        if self.staged.is_seen(tenant, &record.key, kind)? {
            return Ok(Recorded::Duplicate {
                event_id: record.event_id(tenant),
            });
        }
        let person = self.staged.person(tenant, &record.contact)?;
        let profile = self.settings.profile(tenant);
        let state = State {
            consent: &person.consent,
            decided: &person.decided,
            replied_to: None,
            last_marketing: None,
            attribution_window: profile.attribution_window,
            now: self.now,
            linked: &person.linked,
        };
        let decision = decide::decide(state, Command::Record { tenant, record });
        self.summary.count(decision.outcome);
        let Some(event) = self.stage(&decision, partition)?.pop() else {
            return Ok(Recorded::Duplicate {
                event_id: record.event_id(tenant),
            });
        };
        self.staged
            .mark_seen(tenant, &record.key, kind, event.event_id.as_bytes())?;
        tracing::debug!(
            tenant = %tenant,
            contact = %record.contact.masked(),
            origin = ?record.origin,
            event_id = %event.event_id,
            "consent recorded"
        );
        Ok(Recorded::Appended(Box::new(event)))
    }

    /// Seals the decision's events on the chain of `partition`.
    fn stage(
        &mut self,
        decision: &Decision,
        partition: u32,
    ) -> Result<Vec<ConsentEvent>, LedgerError> {
        let mut sealed = Vec::with_capacity(decision.events.len());
        for event in &decision.events {
            sealed.push(self.staged.append(event.clone(), partition)?);
            self.summary.events += 1;
        }
        Ok(sealed)
    }
}

/// The reply's text, in the customer's language when the tenant has texts for it.
fn render_reply(
    profile: &TenantProfile,
    r: &Resolved,
    reply: &decide::Reply,
    event_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> OutboundMessage {
    let (language, texts) = profile.messages_for(reply.language.as_deref());
    OutboundMessage {
        message_id: OutboundMessage::id_for(&r.tenant, &r.message.message_id, reply.kind),
        tenant: r.tenant.clone(),
        channel: r.message.channel.clone(),
        to: r.contact.clone(),
        kind: reply.kind,
        language: language.to_string(),
        text: texts.text(reply.kind).to_string(),
        in_reply_to: r.message.message_id.clone(),
        event_id,
        created_at: now,
    }
}
