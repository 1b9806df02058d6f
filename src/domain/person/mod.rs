//! Consent follows the person (DESIGN.md invariant 6). On WhatsApp one customer may write from
//! a number, from a business-scoped user ID (BSUID), or both, and changes both when they change
//! number. The ledger links identifiers only when one record names two of them
//! (`IdentityLinked` events), and a person is every identifier reachable through links.
//!
//! The consent of one identifier is then the fold of the whole person's events, with three
//! rules that keep the safe side:
//! - an opt-out under any identifier counts for all of them, and on equal times wins;
//! - an opt-in under another identifier counts only if neither identifier had been retired
//!   when it was given: a retired number may belong to somebody else now, and their START must
//!   not restart marketing to our customer (nor ours to them);
//! - an identifier the person left (the old side of a number or BSUID change) is suppressed
//!   for marketing from the change on, until an opt-in arrives from that identifier itself.
//!
//! Pure: the ledger gathers the events, this decides what they mean.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::consent::{rank, ContactConsent, EventTime};
use super::contact::Contact;
use super::event::{ConsentEvent, EventType, Purpose};

/// One person, as seen from the identifier asked about.
#[derive(Debug, Clone)]
pub struct Person<'a> {
    asked: &'a Contact,
    members: BTreeSet<Contact>,
    /// The first link event that retired each identifier: its time and its proof.
    retired: BTreeMap<Contact, &'a ConsentEvent>,
    events: &'a [ConsentEvent],
}

impl<'a> Person<'a> {
    /// `events`: every event of every identifier of the person, consent and link events alike
    /// (the ledger finds them through the links), in any order.
    pub fn new(asked: &'a Contact, events: &'a [ConsentEvent]) -> Person<'a> {
        let mut members = BTreeSet::from([asked.clone()]);
        let mut retired: BTreeMap<Contact, &ConsentEvent> = BTreeMap::new();
        for e in events {
            members.insert(e.contact.clone());
            if e.event_type != EventType::IdentityLinked {
                continue;
            }
            if let Some(linked) = &e.linked_contact {
                members.insert(linked.clone());
            }
            if e.link_source.is_some_and(|s| s.retires_contact()) {
                let first = retired.entry(e.contact.clone()).or_insert(e);
                if e.occurred_at < first.occurred_at {
                    *first = e;
                }
            }
        }
        Person {
            asked,
            members,
            retired,
            events,
        }
    }

    /// The person's identifiers other than the one asked about.
    pub fn others(&self) -> Vec<Contact> {
        self.members
            .iter()
            .filter(|c| *c != self.asked)
            .cloned()
            .collect()
    }

    /// The other identifiers an event of this type applies to: all of them for an opt-out or
    /// a link, the ones not retired for an opt-in.
    pub fn applies_to(&self, event_type: EventType) -> Vec<Contact> {
        self.others()
            .into_iter()
            .filter(|c| event_type != EventType::OptedIn || !self.retired.contains_key(c))
            .collect()
    }

    /// When the identifier asked about was retired by a number or BSUID change.
    pub fn retired_at(&self) -> Option<DateTime<Utc>> {
        self.retired.get(self.asked).map(|e| e.occurred_at)
    }

    /// The consent of the identifier asked about: the person's events, ranked by event time
    /// with the opt-out winning ties, under the rules of this module.
    pub fn consent(&self) -> ContactConsent {
        self.fold(true)
    }

    /// [`Self::consent`] from the person's own decisions alone, without a retirement's
    /// suppression: what a confirmation is measured against. The suppression is the ledger's
    /// precaution, not the customer's word, and it dates from the change: a STOP written
    /// before a number change and read after it, from another partition, still changed what
    /// the customer had asked for, and is confirmed as it would have been in the other order.
    pub fn decided(&self) -> ContactConsent {
        self.fold(false)
    }

    fn fold(&self, with_retirement: bool) -> ContactConsent {
        let mut counted: Vec<ConsentEvent> = self
            .events
            .iter()
            .filter(|e| self.counts(e))
            .cloned()
            .collect();
        if let Some(link) = self.retired.get(self.asked).filter(|_| with_retirement) {
            counted.push(suppression(link));
        }
        counted.sort_by_key(|e| rank(EventTime::of(e), e.is_opt_out()));
        counted
            .iter()
            .fold(ContactConsent::default(), |state, e| state.apply(e))
    }

    fn counts(&self, e: &ConsentEvent) -> bool {
        match e.event_type {
            EventType::IdentityLinked | EventType::Erased => false,
            EventType::OptedOut => true,
            EventType::OptedIn if &e.contact == self.asked => true,
            EventType::OptedIn => [self.asked, &e.contact]
                .into_iter()
                .filter_map(|c| self.retired.get(c))
                .all(|link| e.occurred_at < link.occurred_at),
        }
    }
}

/// A retired identifier's marketing suppression, as an opt-out at the change's time whose
/// proof is the link event itself (its id, its place in the chain).
fn suppression(link: &ConsentEvent) -> ConsentEvent {
    let mut e = link.clone();
    e.event_type = EventType::OptedOut;
    e.purposes = vec![Purpose::Marketing];
    e
}

#[cfg(test)]
mod tests;
