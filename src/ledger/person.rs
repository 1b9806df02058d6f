//! The person behind an identifier: every identifier reachable through `IdentityLinked`
//! events, and their events, gathered here so that [`crate::domain::person`] can decide what
//! they mean. An identifier nobody linked (the common case) costs one empty prefix scan more
//! than its own consent row.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};

use super::{keys, Ledger, Result};
use crate::domain::consent::ContactConsent;
use crate::domain::contact::Contact;
use crate::domain::decide::Linked;
use crate::domain::event::{ConsentEvent, EventType};
use crate::domain::person::Person;
use crate::domain::tenant::TenantId;

/// What the ledger knows of the person behind one identifier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonView {
    /// The identifier's consent: the person's, under the rules of `domain::person`.
    pub consent: ContactConsent,
    /// The consent from the person's own decisions, without a retirement's suppression
    /// ([`Person::decided`]): what a confirmation is measured against.
    pub decided: ContactConsent,
    pub linked: Linked,
    /// When a number or BSUID change retired this identifier.
    pub retired_at: Option<DateTime<Utc>>,
}

impl PersonView {
    /// The view of an identifier no link names: its own consent.
    pub fn alone(consent: ContactConsent) -> Self {
        PersonView {
            decided: consent.clone(),
            consent,
            ..PersonView::default()
        }
    }

    /// The view from the person's events (consent and link events of every identifier).
    /// Identifiers whose key was destroyed count in the fold but are named nowhere.
    pub fn of(asked: &Contact, events: &[ConsentEvent]) -> Self {
        let person = Person::new(asked, events);
        let readable = |mut cs: Vec<Contact>| {
            cs.retain(|c| c.as_str() != crate::rgpd::ERASED);
            cs
        };
        let consent = person.consent();
        // The two differ only for a retired identifier: fold the events once otherwise.
        let decided = match person.retired_at() {
            Some(_) => person.decided(),
            None => consent.clone(),
        };
        PersonView {
            consent,
            decided,
            linked: Linked {
                all: readable(person.applies_to(EventType::OptedOut)),
                active: readable(person.applies_to(EventType::OptedIn)),
            },
            retired_at: person.retired_at(),
        }
    }
}

/// A keyed hash of an identifier ([`Ledger::digest`]): what the `links` walk follows, since
/// the index holds no identifier.
pub(super) type Id = [u8; 32];

/// The identifiers of a person by keyed hash, with the identifier itself where the ledger can
/// still read it (a member whose key was destroyed is known by its hash only).
pub(super) type Members = BTreeMap<Id, Option<Contact>>;

/// Every identifier reachable from `start` through `direct` (a `links`-shaped source).
pub(super) fn neighbours<F>(start: (Id, Option<Contact>), mut direct: F) -> Result<Members>
where
    F: FnMut(&Id) -> Result<Vec<(Id, Option<Contact>)>>,
{
    let mut seen = Members::from([start.clone()]);
    let mut queue = VecDeque::from([start.0]);
    while let Some(id) = queue.pop_front() {
        for (next, contact) in direct(&id)? {
            match seen.get_mut(&next) {
                Some(known) => {
                    if known.is_none() {
                        *known = contact;
                    }
                }
                None => {
                    seen.insert(next, contact);
                    queue.push_back(next);
                }
            }
        }
    }
    Ok(seen)
}

/// Every event of `members`, each once (a link event is indexed under both its identifiers).
pub(super) fn events_of<F>(members: &Members, mut history: F) -> Result<Vec<ConsentEvent>>
where
    F: FnMut(&Id) -> Result<Vec<ConsentEvent>>,
{
    let mut out = BTreeMap::new();
    for id in members.keys() {
        for e in history(id)? {
            out.insert((e.partition, e.seq), e);
        }
    }
    Ok(out.into_values().collect())
}

impl Ledger {
    /// The identifiers `id` is linked to directly, read from the link events the `links` rows
    /// point at (the other side of each, opened when its key still exists).
    pub(super) fn direct_links(
        &self,
        tenant: &TenantId,
        id: &Id,
    ) -> Result<Vec<(Id, Option<Contact>)>> {
        let mut out = Vec::new();
        if !self.known.may_know(id) {
            return Ok(out);
        }
        let prefix = keys::contact_prefix(tenant, id);
        for entry in self.links.scan_prefix(&prefix) {
            let (key, event_key) = entry?;
            let Ok(other) = Id::try_from(&key[prefix.len()..]) else {
                continue;
            };
            let contact = match self.events.get(&event_key)? {
                Some(bytes) => {
                    let stored: ConsentEvent = super::decode("events", &bytes)?;
                    self.link_side(&stored, &other)?
                }
                None => None,
            };
            out.push((other, contact));
        }
        Ok(out)
    }

    /// The members of `contact`'s person.
    pub(super) fn members_of(&self, tenant: &TenantId, contact: &Contact) -> Result<Members> {
        self.members_of_id(tenant, self.digest(tenant, contact)?, contact)
    }

    /// [`Self::members_of`] for a contact whose keyed hash is `id`.
    fn members_of_id(&self, tenant: &TenantId, id: Id, contact: &Contact) -> Result<Members> {
        neighbours((id, Some(contact.clone())), |i| {
            self.direct_links(tenant, i)
        })
    }

    /// Every event of the person behind `contact` (each under the identifier it came with),
    /// oldest first in event time, and the person's other identifiers the ledger can read.
    pub fn person_history(
        &self,
        tenant: &TenantId,
        contact: &Contact,
    ) -> Result<(Vec<ConsentEvent>, Vec<Contact>)> {
        let members = self.members_of(tenant, contact)?;
        let mut events = events_of(&members, |id| self.history_of(tenant, id))?;
        events.sort_by_key(|e| (e.occurred_at, e.partition, e.seq));
        let others = members
            .into_values()
            .flatten()
            .filter(|c| c != contact)
            .collect();
        Ok((events, others))
    }

    /// The keyed hashes of every identifier of the person behind `contact`, readable or not.
    pub fn person_refs(&self, tenant: &TenantId, contact: &Contact) -> Result<Vec<Id>> {
        Ok(self.members_of(tenant, contact)?.into_keys().collect())
    }

    /// The person behind `contact`, as the ledger knows it now; an identifier on the
    /// suppression list answers opted out of marketing whatever its history says.
    ///
    /// The contact's keyed hash is computed once and names it in the links, the view and the
    /// suppression list alike: an audience check asks this for every contact.
    pub fn person(&self, tenant: &TenantId, contact: &Contact) -> Result<PersonView> {
        let id = self.digest(tenant, contact)?;
        // Most of an audience is unknown to the ledger: one look at the filter answers them,
        // where the walk below would look three times and allocate its queue.
        if !self.known.may_know(&id) {
            return Ok(PersonView::alone(ContactConsent::default()));
        }
        let members = self.members_of_id(tenant, id, contact)?;
        let view = if members.len() == 1 {
            PersonView::alone(self.own_consent_of(tenant, &id)?)
        } else {
            let events = events_of(&members, |id| self.history_of(tenant, id))?;
            PersonView::of(contact, &events)
        };
        Ok(match self.suppression_of(tenant, &id)? {
            Some(s) => s.apply(view),
            None => view,
        })
    }
}
