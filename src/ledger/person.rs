//! The person behind an identifier: every identifier reachable through `IdentityLinked`
//! events, and their events, gathered here so that [`crate::domain::person`] can decide what
//! they mean. An identifier nobody linked (the common case) costs one empty prefix scan more
//! than its own consent row.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

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
    pub linked: Linked,
    /// When a number or BSUID change retired this identifier.
    pub retired_at: Option<DateTime<Utc>>,
}

impl PersonView {
    /// The view of an identifier no link names: its own consent.
    pub fn alone(consent: ContactConsent) -> Self {
        PersonView {
            consent,
            ..PersonView::default()
        }
    }

    /// The view from the person's events (consent and link events of every identifier).
    pub fn of(asked: &Contact, events: &[ConsentEvent]) -> Self {
        let person = Person::new(asked, events);
        PersonView {
            consent: person.consent(),
            linked: Linked {
                all: person.applies_to(EventType::OptedOut),
                active: person.applies_to(EventType::OptedIn),
            },
            retired_at: person.retired_at(),
        }
    }
}

/// The identifiers directly linked to `contact`, read from a `links`-shaped source.
pub(super) fn neighbours<F>(start: &Contact, mut direct: F) -> Result<BTreeSet<Contact>>
where
    F: FnMut(&Contact) -> Result<Vec<Contact>>,
{
    let mut seen = BTreeSet::from([start.clone()]);
    let mut queue = VecDeque::from([start.clone()]);
    while let Some(c) = queue.pop_front() {
        for next in direct(&c)? {
            if seen.insert(next.clone()) {
                queue.push_back(next);
            }
        }
    }
    Ok(seen)
}

/// Every event of `members`, each once (a link event is indexed under both its identifiers).
pub(super) fn events_of<F>(members: &BTreeSet<Contact>, mut history: F) -> Result<Vec<ConsentEvent>>
where
    F: FnMut(&Contact) -> Result<Vec<ConsentEvent>>,
{
    let mut out = BTreeMap::new();
    for m in members {
        for e in history(m)? {
            out.insert((e.partition, e.seq), e);
        }
    }
    Ok(out.into_values().collect())
}

impl Ledger {
    /// The identifiers `contact` is linked to directly.
    pub(super) fn direct_links(
        &self,
        tenant: &TenantId,
        contact: &Contact,
    ) -> Result<Vec<Contact>> {
        let prefix = keys::contact_prefix(tenant, contact.as_str());
        let mut out = Vec::new();
        for entry in self.links.scan_prefix(&prefix) {
            let (key, _) = entry?;
            let other = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            out.push(Contact::from_stored(other));
        }
        Ok(out)
    }

    /// Every event of the person behind `contact` (each under the identifier it came with),
    /// oldest first in event time, and the person's other identifiers.
    pub fn person_history(
        &self,
        tenant: &TenantId,
        contact: &Contact,
    ) -> Result<(Vec<ConsentEvent>, Vec<Contact>)> {
        let members = neighbours(contact, |c| self.direct_links(tenant, c))?;
        let mut events = events_of(&members, |c| self.history(tenant, c))?;
        events.sort_by_key(|e| (e.occurred_at, e.partition, e.seq));
        let others = members.into_iter().filter(|c| c != contact).collect();
        Ok((events, others))
    }

    /// The person behind `contact`, as the ledger knows it now; an identifier on the
    /// suppression list answers opted out of marketing whatever its history says.
    pub fn person(&self, tenant: &TenantId, contact: &Contact) -> Result<PersonView> {
        let members = neighbours(contact, |c| self.direct_links(tenant, c))?;
        let view = if members.len() == 1 {
            PersonView::alone(self.own_consent(tenant, contact)?)
        } else {
            let events = events_of(&members, |c| self.history(tenant, c))?;
            PersonView::of(contact, &events)
        };
        Ok(match self.suppression(tenant, contact)? {
            Some(s) => s.apply(view),
            None => view,
        })
    }
}
