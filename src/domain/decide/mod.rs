//! The one decision: `decide(state, command) -> Decision`, pure like a cqrs-es `handle`.
//! Every source asks it: a customer's message (file, Kafka), a decision the business records
//! over the API, an import row. Given the contact's consent and what the message answers, it
//! says which events to append (unsealed: the ledger gives them their place in the chain),
//! which reply to send and which campaign signal to count. No I/O and no clock: the commit
//! path looks up the state and passes the time, so tests state whole scenarios as
//! given/when/then.

mod attribution;
mod classify;
mod record;

#[cfg(test)]
mod tests;

pub use attribution::{attribute, Attributed};
pub use classify::{classify, language_of, outcome_of, Classified};
pub use record::{ConsentRecord, RecordOrigin};

use chrono::{DateTime, Duration, Utc};

use super::analytics::{SentRef, SignalKind};
use super::clock::EffectiveTime;
use super::consent::{event_type_for, purposes_for, ContactConsent, Request};
use super::contact::Contact;
use super::event::{
    Attribution, ConsentEvent, EventSource, EventType, LinkSource, SourceKind, FORMAT,
};
use super::inbound::Message;
use super::keywords::{Classification, Scope};
use super::replies::ReplyKind;
use super::tenant::TenantId;

/// What one command amounted to; the ingest summary counts these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    OptedOut,
    OptedIn,
    Help,
    NoChange,
    PossibleOptOut,
}

/// Where the inbound record was read: part of each event's proof.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub topic: Option<String>,
    pub kafka_partition: Option<i32>,
    pub offset: Option<i64>,
    pub line: Option<u64>,
}

/// Two identifiers of one person that a record named together, both normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The identifier the record came under; for a change, the old one.
    pub contact: Contact,
    pub linked: Contact,
    pub source: LinkSource,
}

/// A decoded message whose tenant, contact and time are resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub tenant: TenantId,
    pub contact: Contact,
    /// The links the record names (not yet compared with what the ledger knows).
    pub links: Vec<Link>,
    pub message: Message,
    pub origin: Origin,
    /// The message's claimed time held to the tenant's clock bounds: what it takes effect at.
    pub time: EffectiveTime,
}

/// What the ledger is asked to decide on.
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    /// A customer's message, classified.
    Message {
        message: &'a Resolved,
        classified: &'a Classified,
    },
    /// A decision the business records: an API call or an import row.
    Record {
        tenant: &'a TenantId,
        record: &'a ConsentRecord,
    },
}

impl Command<'_> {
    /// Whether the decision depends on the campaign the message answers, so the commit path
    /// looks up sends only for the few messages that need them (not for ordinary chat).
    pub fn needs_attribution(&self) -> bool {
        match self {
            Command::Message {
                message,
                classified,
            } => looks_for_campaign(message, outcome_of(&classified.classification)),
            Command::Record { .. } => false,
        }
    }
}

/// Only messages that say something about a campaign's reception (opt-outs, help, possible
/// opt-outs) and do not name their campaign look for the send they answer: an opt-in is the
/// customer coming back, not a reaction to the last send.
fn looks_for_campaign(r: &Resolved, outcome: Outcome) -> bool {
    r.message.campaign_id.is_none()
        && matches!(
            outcome,
            Outcome::OptedOut | Outcome::Help | Outcome::PossibleOptOut
        )
}

/// What `decide` is given besides the command.
#[derive(Debug, Clone, Copy)]
pub struct State<'a> {
    /// The contact's consent before the command.
    pub consent: &'a ContactConsent,
    /// The same from the customer's own decisions, without a number change's suppression of
    /// a retired identifier: a confirmation goes out when the command changes this.
    pub decided: &'a ContactConsent,
    /// The sent message the customer replied to (`context.id`), when the ledger knows it.
    pub replied_to: Option<&'a SentRef>,
    /// The last marketing send to the contact at or before the message.
    pub last_marketing: Option<&'a SentRef>,
    pub attribution_window: Duration,
    /// When the ledger records the decision.
    pub now: DateTime<Utc>,
    /// The person's other identifiers, which the events apply to too.
    pub linked: &'a Linked,
}

/// The other identifiers of the contact's person (empty for an unlinked contact).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Linked {
    pub all: Vec<Contact>,
    /// Those not retired by a number or BSUID change: the only ones an opt-in reaches.
    pub active: Vec<Contact>,
}

impl Linked {
    /// What an event of `event_type` carries in its `linked` field.
    pub fn for_event(&self, event_type: EventType) -> Vec<Contact> {
        match event_type {
            EventType::OptedIn => self.active.clone(),
            _ => self.all.clone(),
        }
    }
}

/// The `IdentityLinked` event for a link the ledger did not know, made by message `r`.
/// `others`: the identifiers of the person the link makes, but `link.contact`.
pub fn link_event(
    r: &Resolved,
    link: &Link,
    others: Vec<Contact>,
    now: DateTime<Utc>,
) -> ConsentEvent {
    ConsentEvent {
        format: FORMAT,
        event_id: ConsentEvent::link_id(
            &r.tenant,
            &r.message.message_id,
            &link.contact,
            &link.linked,
        ),
        partition: 0,
        seq: 0,
        tenant: r.tenant.clone(),
        contact: link.contact.clone(),
        channel: r.message.channel.clone(),
        event_type: EventType::IdentityLinked,
        purposes: Vec::new(),
        occurred_at: r.time.at,
        recorded_at: now,
        source: EventSource {
            kind: SourceKind::Identity,
            message_id: r.message.message_id.clone(),
            keyword: None,
            rule: None,
            text: None,
            language: None,
            context_message_id: None,
            topic: r.origin.topic.clone(),
            kafka_partition: r.origin.kafka_partition,
            offset: r.origin.offset,
            line: r.origin.line,
            claimed_time: r.time.claimed.clone(),
        },
        campaign_id: None,
        attribution: Attribution::None,
        linked_contact: Some(link.linked.clone()),
        link_source: Some(link.source),
        linked: others,
        erasure: None,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// A reply to send to the customer, in their language when it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: ReplyKind,
    pub language: Option<String>,
}

/// A campaign's reception signal that is not a consent change (help, possible opt-out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub kind: SignalKind,
    pub campaign_id: String,
}

/// Everything one command leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub outcome: Outcome,
    /// Unsealed events: `partition`, `seq` and the hashes are set by the ledger on append.
    pub events: Vec<ConsentEvent>,
    pub reply: Option<Reply>,
    pub signal: Option<Signal>,
}

impl Decision {
    /// Whether the command left anything durable to remember it by (an event or a reply);
    /// only such messages are remembered for deduplication.
    pub fn acted(&self) -> bool {
        !self.events.is_empty() || self.reply.is_some()
    }
}

/// The decision for one command, given the state before it.
pub fn decide(state: State<'_>, command: Command<'_>) -> Decision {
    match command {
        Command::Message {
            message,
            classified,
        } => decide_message(state, message, classified),
        Command::Record { tenant, record } => decide_record(state, tenant, record),
    }
}

fn decide_message(state: State<'_>, r: &Resolved, classified: &Classified) -> Decision {
    let c = &classified.classification;
    let outcome = outcome_of(c);
    let (replied_to, last_marketing) = if looks_for_campaign(r, outcome) {
        (state.replied_to, state.last_marketing)
    } else {
        (None, None)
    };
    let attributed = attribute(r, replied_to, last_marketing, state.attribution_window);
    let language = language_of(&r.message, c);
    let mut decision = Decision {
        outcome,
        events: Vec::new(),
        reply: None,
        signal: None,
    };
    let signal = match outcome {
        Outcome::Help => Some(SignalKind::Help),
        Outcome::PossibleOptOut => Some(SignalKind::PossibleOptOut),
        _ => None,
    };
    if let (Some(kind), Some(campaign_id)) = (signal, &attributed.campaign_id) {
        decision.signal = Some(Signal {
            kind,
            campaign_id: campaign_id.clone(),
        });
    }
    if outcome == Outcome::Help {
        decision.reply = Some(Reply {
            kind: ReplyKind::Help,
            language,
        });
        return decision;
    }
    let Some(request) = request_of(c) else {
        return decision;
    };
    let (keyword, rule) = match c {
        Classification::OptOut { keyword, rule, .. }
        | Classification::OptIn { keyword, rule, .. } => {
            (keyword.clone(), classify::rule_name(*rule))
        }
        _ => return decision,
    };
    let event_type = event_type_for(request);
    let event = ConsentEvent {
        format: FORMAT,
        event_id: ConsentEvent::id_for(&r.tenant, &r.message.message_id, event_type),
        partition: 0,
        seq: 0,
        tenant: r.tenant.clone(),
        contact: r.contact.clone(),
        channel: r.message.channel.clone(),
        event_type,
        purposes: purposes_for(request, state.consent),
        occurred_at: r.time.placed(event_type == EventType::OptedIn),
        recorded_at: state.now,
        source: EventSource {
            kind: classified.kind,
            message_id: r.message.message_id.clone(),
            keyword: Some(keyword),
            rule: Some(rule.to_string()),
            text: classify::source_text(&r.message.content),
            language: language.clone(),
            context_message_id: r.message.context_message_id.clone(),
            topic: r.origin.topic.clone(),
            kafka_partition: r.origin.kafka_partition,
            offset: r.origin.offset,
            line: r.origin.line,
            claimed_time: r.time.claimed.clone(),
        },
        campaign_id: attributed.campaign_id,
        attribution: attributed.attribution,
        linked_contact: None,
        link_source: None,
        linked: state.linked.for_event(event_type),
        erasure: None,
        prev_hash: String::new(),
        hash: String::new(),
    };
    // A provider that matched the opt-out itself has answered the customer already; the FCC
    // allows one confirmation, and a second would read as the business not listening.
    let provider_answered = classified.kind == SourceKind::Provider;
    if changes_status(state.decided, &event) && !provider_answered {
        decision.reply = Some(Reply {
            kind: match event_type {
                EventType::OptedIn => ReplyKind::OptInConfirmation,
                _ => ReplyKind::OptOutConfirmation,
            },
            language,
        });
    }
    decision.events.push(event);
    decision
}

/// A recorded decision gets no reply: the customer did not write to us, so there is no
/// conversation to confirm in.
fn decide_record(state: State<'_>, tenant: &TenantId, record: &ConsentRecord) -> Decision {
    let event_type = event_type_for(record.request);
    let (campaign_id, attribution) = match &record.campaign_id {
        Some(id) => (Some(id.clone()), Attribution::Explicit),
        None => (None, Attribution::None),
    };
    let event = ConsentEvent {
        format: FORMAT,
        event_id: record.event_id(tenant),
        partition: 0,
        seq: 0,
        tenant: tenant.clone(),
        contact: record.contact.clone(),
        channel: record.channel.clone(),
        event_type,
        purposes: purposes_for(record.request, state.consent),
        occurred_at: record.occurred_at,
        recorded_at: state.now,
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
            claimed_time: None,
        },
        campaign_id,
        attribution,
        linked_contact: None,
        link_source: None,
        linked: state.linked.for_event(event_type),
        erasure: None,
        prev_hash: String::new(),
        hash: String::new(),
    };
    Decision {
        outcome: match event_type {
            EventType::OptedIn => Outcome::OptedIn,
            _ => Outcome::OptedOut,
        },
        events: vec![event],
        reply: None,
        signal: None,
    }
}

/// Whether appending `event` moves some purpose to its status: that, and only that, earns a
/// confirmation, so a second STOP does not get a second "you are unsubscribed". The event has
/// no place in the chain yet; it is ranked as the newest of its timestamp, which is where the
/// ledger puts it among the events of its own partition.
fn changes_status(before: &ContactConsent, event: &ConsentEvent) -> bool {
    let mut placed = event.clone();
    placed.seq = u64::MAX;
    placed.partition = u32::MAX;
    let after = before.apply(&placed);
    before.is_transition(&after, &placed)
}

/// The request a classification makes, if it changes consent.
pub fn request_of(c: &Classification) -> Option<Request> {
    match c {
        Classification::OptOut { scope, .. } => Some(Request::OptOut {
            all: *scope == Scope::All,
        }),
        Classification::OptIn { .. } => Some(Request::OptIn),
        _ => None,
    }
}
