//! The stages between a source and the ledger, shared by file mode (`ingest`) and Kafka mode
//! (`run`): decode → resolve tenant → normalize contact → classify → dedupe → decide → stage.
//! Sources own batching and durability (they call [`crate::ledger::Staged::commit`] and only
//! then acknowledge their input); this module only turns one record into staged writes.

pub mod deadletter;
pub mod file;
pub mod kafka;
pub mod record;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::domain::analytics::{SentRef, SignalKind};
use crate::domain::contact::{self, Contact};
use crate::domain::decide::{self, Attributed, Origin, Outcome, Position, Resolved};
use crate::domain::inbound::{self, DecodeError, Item, Message, SentMessage, TenantRef};
use crate::domain::replies::{OutboundMessage, ReplyKind};
use crate::ledger::{LedgerError, OutboxEntry, OutboxTarget, Staged};

/// What an ingest run did (`ingest --json`, schemas/ingest-summary.v1.json).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Records (lines or Kafka messages) read.
    pub read: u64,
    /// Messages that asked to opt out (each appended an event, repeated or not).
    pub opted_out: u64,
    pub opted_in: u64,
    pub help: u64,
    /// Messages with no consent meaning (ordinary chat).
    pub no_change: u64,
    /// A keyword inside a sentence ("don't stop"): no change, kept for review.
    pub possible_opt_out: u64,
    /// Messages whose id was already processed (redeliveries).
    pub duplicates: u64,
    /// Records or messages sent to the dead-letter output.
    pub rejected: u64,
    /// Valid items without consent or analytics meaning: unbilled statuses, media, reactions.
    pub ignored: u64,
    /// Consent events appended to the ledger.
    pub events: u64,
    /// Replies (confirmations, help) queued for the customer.
    pub replies: u64,
    /// Sent records stored for campaign analytics (redeliveries count as duplicates).
    pub sent: u64,
    /// WhatsApp delivery statuses of billed (campaign) messages recorded for analytics.
    pub statuses: u64,
}

impl Summary {
    pub fn add(&mut self, other: &Summary) {
        self.read += other.read;
        self.opted_out += other.opted_out;
        self.opted_in += other.opted_in;
        self.help += other.help;
        self.no_change += other.no_change;
        self.possible_opt_out += other.possible_opt_out;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.ignored += other.ignored;
        self.events += other.events;
        self.replies += other.replies;
        self.sent += other.sent;
        self.statuses += other.statuses;
    }
}

/// A rejected record or message, bound for the dead-letter output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub error: DecodeError,
    /// JSON pointer to the rejected message inside the record, when only part was rejected.
    pub path: Option<String>,
}

/// The dedupe kind under which every processed message id is remembered.
const SEEN: &str = "message";

/// Turns records into staged ledger writes.
pub struct Processor<'s> {
    pub settings: &'s Settings,
}

impl<'s> Processor<'s> {
    pub fn new(settings: &'s Settings) -> Self {
        Processor { settings }
    }

    /// Processes one record into `staged`. Returns the parts that were rejected; a storage
    /// error is the only failure, and it fails the whole batch.
    pub fn process(
        &self,
        staged: &mut Staged<'_>,
        bytes: &[u8],
        origin: &Origin,
        partition: u32,
        now: DateTime<Utc>,
        summary: &mut Summary,
    ) -> Result<Vec<Rejection>, LedgerError> {
        summary.read += 1;
        let items = match inbound::decode(bytes) {
            Ok(items) => items,
            Err(error) => {
                summary.rejected += 1;
                return Ok(vec![Rejection { error, path: None }]);
            }
        };
        let mut rejections = Vec::new();
        for item in items {
            match item {
                Item::Ignored(_) => summary.ignored += 1,
                Item::Rejected { path, error } => {
                    summary.rejected += 1;
                    rejections.push(Rejection {
                        error,
                        path: Some(path),
                    });
                }
                Item::Message(m) => match self.resolve(m, origin) {
                    Ok(r) => self.handle(staged, r, partition, now, summary)?,
                    Err(error) => {
                        summary.rejected += 1;
                        rejections.push(Rejection { error, path: None });
                    }
                },
                Item::Sent(sent) => match self.resolve_sent(sent) {
                    Ok((tenant, sent)) => {
                        if staged.stage_sent(&tenant, sent)? {
                            summary.sent += 1;
                        } else {
                            summary.duplicates += 1;
                        }
                    }
                    Err(error) => {
                        summary.rejected += 1;
                        rejections.push(Rejection { error, path: None });
                    }
                },
                Item::Status(status) => match self.tenant_of(&status.tenant) {
                    Ok(tenant) => {
                        staged.stage_delivery(&tenant, &status)?;
                        summary.statuses += 1;
                    }
                    Err(error) => {
                        summary.rejected += 1;
                        rejections.push(Rejection { error, path: None });
                    }
                },
            }
        }
        Ok(rejections)
    }

    fn tenant_of(&self, tenant: &TenantRef) -> Result<String, DecodeError> {
        self.settings
            .resolve_tenant(tenant)
            .map_err(DecodeError::UnknownTenant)
    }

    fn resolve_sent(&self, sent: SentMessage) -> Result<(String, SentRef), DecodeError> {
        let tenant = self.tenant_of(&sent.tenant)?;
        let profile = self.settings.profile(&tenant);
        let contact = contact::normalize(&sent.to, profile.region).map_err(|e| {
            DecodeError::InvalidContact {
                input: contact::mask(&sent.to),
                reason: e.to_string(),
            }
        })?;
        Ok((
            tenant,
            SentRef {
                message_id: sent.message_id,
                contact,
                campaign_id: sent.campaign_id,
                category: sent.category,
                sent_at: sent.sent_at,
            },
        ))
    }

    /// The campaign a message answers. Only messages that say something about a campaign's
    /// reception (opt-outs, help, possible opt-outs) look further than the record itself: an
    /// opt-in is the customer coming back, not a reaction to the last send.
    fn attribute(
        &self,
        staged: &Staged<'_>,
        r: &Resolved,
        outcome: Outcome,
        window: chrono::Duration,
    ) -> Result<Attributed, LedgerError> {
        let look = matches!(
            outcome,
            Outcome::OptedOut | Outcome::Help | Outcome::PossibleOptOut
        ) && r.message.campaign_id.is_none();
        if !look {
            return Ok(decide::attribute(&r.message, None, None, window));
        }
        let replied_to = match &r.message.context_message_id {
            Some(id) => staged.sent_message(&r.tenant, id)?,
            None => None,
        };
        let last = match replied_to {
            Some(_) => None,
            None => {
                staged.last_marketing_sent(&r.tenant, &r.contact, r.message.occurred_at, window)?
            }
        };
        Ok(decide::attribute(
            &r.message,
            replied_to.as_ref(),
            last.as_ref(),
            window,
        ))
    }

    fn resolve(&self, message: Message, origin: &Origin) -> Result<Resolved, DecodeError> {
        let tenant = self.tenant_of(&message.tenant)?;
        let profile = self.settings.profile(&tenant);
        let contact = contact::normalize(&message.from, profile.region).map_err(|e| {
            DecodeError::InvalidContact {
                input: contact::mask(&message.from),
                reason: e.to_string(),
            }
        })?;
        Ok(Resolved {
            tenant,
            contact,
            message,
            origin: origin.clone(),
        })
    }

    fn handle(
        &self,
        staged: &mut Staged<'_>,
        r: Resolved,
        partition: u32,
        now: DateTime<Utc>,
        summary: &mut Summary,
    ) -> Result<(), LedgerError> {
        if staged.is_seen(&r.tenant, &r.message.message_id, SEEN)? {
            summary.duplicates += 1;
            return Ok(());
        }
        let profile = self.settings.profile(&r.tenant);
        let (classification, kind) = decide::classify(&r.message, &profile.keywords);
        let outcome = decide::outcome_of(&classification);
        let language = decide::language_of(&r.message, &classification);
        let before = staged.consent(&r.tenant, &r.contact)?;
        let at = Position {
            partition,
            seq: staged.next_seq(partition)?,
            recorded_at: now,
        };
        let attributed = self.attribute(staged, &r, outcome, profile.attribution_window)?;
        let signal = match outcome {
            Outcome::Help => Some(SignalKind::Help),
            Outcome::PossibleOptOut => Some(SignalKind::PossibleOptOut),
            _ => None,
        };
        if let (Some(kind), Some(campaign)) = (signal, &attributed.campaign_id) {
            staged.stage_signal(
                &r.tenant,
                campaign,
                kind,
                &r.message.message_id,
                r.message.occurred_at,
            );
        }
        let mut reply = None;
        let mut event_id = None;
        if let Some(event) = decide::event_for(&r, &classification, kind, &before, at, &attributed)
        {
            let (event, after) = staged.append(event)?;
            summary.events += 1;
            event_id = Some(event.event_id);
            reply = decide::reply_for_event(&before, &after, &event);
            staged.push_outbox(OutboxEntry {
                target: OutboxTarget::ConsentEvents,
                partition,
                key: outbox_key(&r.tenant, &r.contact),
                payload: String::from_utf8(event.stored_bytes()).expect("JSON is UTF-8"),
            });
        }
        match outcome {
            Outcome::OptedOut => summary.opted_out += 1,
            Outcome::OptedIn => summary.opted_in += 1,
            Outcome::Help => {
                summary.help += 1;
                reply = Some(ReplyKind::Help);
            }
            Outcome::NoChange => summary.no_change += 1,
            Outcome::PossibleOptOut => summary.possible_opt_out += 1,
        }
        let seen_value = event_id
            .map(|id| id.as_bytes().to_vec())
            .unwrap_or_default();
        staged.mark_seen(&r.tenant, &r.message.message_id, SEEN, &seen_value);
        if let Some(kind) = reply {
            let (language, texts) = profile.messages_for(language.as_deref());
            let message = OutboundMessage {
                message_id: OutboundMessage::id_for(&r.tenant, &r.message.message_id, kind),
                tenant: r.tenant.clone(),
                channel: r.message.channel.clone(),
                to: r.contact.clone(),
                kind,
                language: language.to_string(),
                text: texts.text(kind).to_string(),
                in_reply_to: r.message.message_id.clone(),
                event_id,
                created_at: now,
            };
            summary.replies += 1;
            staged.push_outbox(OutboxEntry {
                target: OutboxTarget::OutboundMessages,
                partition,
                key: outbox_key(&r.tenant, &r.contact),
                payload: serde_json::to_string(&message).expect("plain struct"),
            });
        }
        tracing::debug!(
            tenant = %r.tenant,
            contact = %r.contact.masked(),
            message_id = %r.message.message_id,
            outcome = ?outcome,
            "message processed"
        );
        Ok(())
    }
}

/// The Kafka key of everything about one contact: `tenant:contact`.
pub fn outbox_key(tenant: &str, contact: &Contact) -> String {
    format!("{tenant}:{contact}")
}
