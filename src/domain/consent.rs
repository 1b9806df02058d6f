//! The consent view as a fold of the log: `apply(state, event) -> state`. The same function
//! runs when an event is appended and when `rebuild`/`verify` replay the log, which is what makes
//! invariant 2 (view == fold of log) true by construction rather than by care.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::{ConsentEvent, EventType, Purpose};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Unknown,
    OptedIn,
    OptedOut,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::OptedIn => "opted_in",
            Status::OptedOut => "opted_out",
        }
    }

    /// The status a consent event sets; `None` for an event that sets none (a link).
    pub fn of(event_type: EventType) -> Option<Status> {
        match event_type {
            EventType::OptedOut => Some(Status::OptedOut),
            EventType::OptedIn => Some(Status::OptedIn),
            EventType::IdentityLinked | EventType::Erased => None,
        }
    }
}

/// Where an event sits in event time; the greatest wins (invariant 3). On equal timestamps the
/// opt-out wins (see [`rank`]), then `seq`, then the partition, so the order is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventTime {
    pub occurred_at: DateTime<Utc>,
    pub seq: u64,
    pub partition: u32,
}

impl EventTime {
    pub fn of(event: &ConsentEvent) -> Self {
        EventTime {
            occurred_at: event.occurred_at,
            seq: event.seq,
            partition: event.partition,
        }
    }
}

/// The order in which events decide a status: the later `occurred_at`; on equal times the
/// opt-out, because a customer who said both at once must not get marketing; then the later
/// append. A status's latest event is always of that status's type, so the rank of the event
/// that decided a state is known from the state alone, and the stored view needs no new field.
pub fn rank(at: EventTime, opt_out: bool) -> (DateTime<Utc>, bool, u64, u32) {
    (at.occurred_at, opt_out, at.seq, at.partition)
}

/// The state of one (tenant, contact, purpose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PurposeState {
    pub status: Status,
    /// When the current status began: `occurred_at` of the event that changed it.
    pub since: Option<DateTime<Utc>>,
    /// The event that changed it to the current status (the proof to show).
    pub event_id: Option<Uuid>,
    /// The newest event in event time seen for this purpose, which decides the status.
    pub latest: Option<EventTime>,
    pub events: u64,
}

impl PurposeState {
    /// Folds one event in. An event older (in event time) than the latest one is history only:
    /// a STOP that arrives late must not undo a START the customer sent after it.
    pub fn apply(&self, event: &ConsentEvent, purpose: Purpose) -> PurposeState {
        let Some(status) = Status::of(event.event_type) else {
            return self.clone();
        };
        if !event.purposes.contains(&purpose) {
            return self.clone();
        }
        let mut next = self.clone();
        next.events += 1;
        let at = EventTime::of(event);
        let newer = |latest: EventTime| {
            rank(at, status == Status::OptedOut) > rank(latest, self.status == Status::OptedOut)
        };
        if self.latest.is_some_and(|latest| !newer(latest)) {
            return next;
        }
        next.latest = Some(at);
        if status != self.status {
            next.status = status;
            next.since = Some(event.occurred_at);
            next.event_id = Some(event.event_id);
        }
        next
    }
}

/// Every purpose of one contact: what `decide` and `may_send` look at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactConsent {
    pub marketing: PurposeState,
    pub transactional: PurposeState,
}

impl ContactConsent {
    pub fn get(&self, purpose: Purpose) -> &PurposeState {
        match purpose {
            Purpose::Marketing => &self.marketing,
            Purpose::Transactional => &self.transactional,
        }
    }

    pub fn get_mut(&mut self, purpose: Purpose) -> &mut PurposeState {
        match purpose {
            Purpose::Marketing => &mut self.marketing,
            Purpose::Transactional => &mut self.transactional,
        }
    }

    pub fn apply(&self, event: &ConsentEvent) -> ContactConsent {
        ContactConsent {
            marketing: self.marketing.apply(event, Purpose::Marketing),
            transactional: self.transactional.apply(event, Purpose::Transactional),
        }
    }

    /// True when applying `event` moved some purpose to the event's status: that, and only
    /// that, earns the customer a confirmation message.
    pub fn is_transition(&self, after: &ContactConsent, event: &ConsentEvent) -> bool {
        let Some(target) = Status::of(event.event_type) else {
            return false;
        };
        event
            .purposes
            .iter()
            .any(|&p| self.get(p).status != target && after.get(p).status == target)
    }
}

/// What the customer asked for, once classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Opt out of marketing, or of every purpose (STOP ALL).
    OptOut {
        all: bool,
    },
    OptIn,
}

/// The purposes an event for `request` covers, given the contact's current state. START after
/// STOP ALL restores transactional messages too; START alone does not create a transactional
/// record for someone who never revoked it.
pub fn purposes_for(request: Request, current: &ContactConsent) -> Vec<Purpose> {
    match request {
        Request::OptOut { all: false } => vec![Purpose::Marketing],
        Request::OptOut { all: true } => Purpose::ALL.to_vec(),
        Request::OptIn => {
            let mut purposes = vec![Purpose::Marketing];
            if current.transactional.status == Status::OptedOut {
                purposes.push(Purpose::Transactional);
            }
            purposes
        }
    }
}

pub fn event_type_for(request: Request) -> EventType {
    match request {
        Request::OptOut { .. } => EventType::OptedOut,
        Request::OptIn => EventType::OptedIn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::tests::sample;

    fn fold(events: &[ConsentEvent]) -> ContactConsent {
        events
            .iter()
            .fold(ContactConsent::default(), |state, e| state.apply(e))
    }

    #[test]
    fn given_nothing_when_stop_then_opted_out_since_the_message_time() {
        let stop = sample(EventType::OptedOut, 1_000, 1);
        let state = fold(std::slice::from_ref(&stop));
        assert_eq!(state.marketing.status, Status::OptedOut);
        assert_eq!(state.marketing.since, Some(stop.occurred_at));
        assert_eq!(state.marketing.event_id, Some(stop.event_id));
        assert_eq!(state.transactional.status, Status::Unknown);
    }

    #[test]
    fn given_a_start_when_an_older_stop_arrives_late_then_start_still_holds() {
        let start = sample(EventType::OptedIn, 2_000, 1);
        let late_stop = sample(EventType::OptedOut, 1_000, 2);
        let state = fold(&[start.clone(), late_stop]);
        assert_eq!(state.marketing.status, Status::OptedIn);
        assert_eq!(state.marketing.event_id, Some(start.event_id));
        assert_eq!(state.marketing.events, 2, "the late STOP stays in history");
    }

    /// Invariant 3 and 6: on equal times the opt-out wins, whatever the append order; only
    /// between two events of the same type does the higher seq decide.
    #[test]
    fn given_same_timestamp_then_the_opt_out_wins() {
        let stop = sample(EventType::OptedOut, 1_000, 1);
        let start = sample(EventType::OptedIn, 1_000, 2);
        assert_eq!(
            fold(&[stop.clone(), start.clone()]).marketing.status,
            Status::OptedOut
        );
        let (start, stop) = (
            sample(EventType::OptedIn, 1_000, 1),
            sample(EventType::OptedOut, 1_000, 2),
        );
        let state = fold(&[start, stop.clone()]);
        assert_eq!(state.marketing.status, Status::OptedOut);
        assert_eq!(state.marketing.event_id, Some(stop.event_id));
        let again = sample(EventType::OptedOut, 1_000, 3);
        assert_eq!(
            fold(&[stop, again.clone()]).marketing.latest,
            Some(EventTime::of(&again)),
            "between two opt-outs at one time the higher seq is the latest"
        );
    }

    #[test]
    fn given_opted_out_when_stop_again_then_no_transition_and_since_kept() {
        let first = sample(EventType::OptedOut, 1_000, 1);
        let again = sample(EventType::OptedOut, 5_000, 2);
        let before = fold(std::slice::from_ref(&first));
        let after = before.apply(&again);
        assert!(!before.is_transition(&after, &again));
        assert_eq!(after.marketing.since, Some(first.occurred_at));
        assert!(ContactConsent::default().is_transition(&before, &first));
    }

    #[test]
    fn stop_all_covers_every_purpose_and_start_restores_them() {
        let mut all = sample(EventType::OptedOut, 1_000, 1);
        all.purposes = purposes_for(Request::OptOut { all: true }, &ContactConsent::default());
        let state = fold(std::slice::from_ref(&all));
        assert_eq!(state.transactional.status, Status::OptedOut);
        assert_eq!(
            purposes_for(Request::OptIn, &state),
            vec![Purpose::Marketing, Purpose::Transactional]
        );
        assert_eq!(
            purposes_for(Request::OptIn, &ContactConsent::default()),
            vec![Purpose::Marketing]
        );
    }
}
