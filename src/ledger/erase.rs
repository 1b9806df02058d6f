//! Erasure (RGPD Art. 17) and the suppression list that outlives it. One batch destroys the
//! data keys of every identifier of the person, appends the `Erased` event, puts each
//! identifier on the suppression list and queues an `Erased` record for the reply feed: a
//! kill -9 leaves all of it or none, and running the erasure again completes it.
//!
//! `suppressed`: tenant \0 HMAC(tenant secret, identifier) → [`Suppression`] JSON. The key is
//! a keyed hash, so the list holds no identifier, yet `check` finds one in a list by hashing
//! it. An entry keeps the identifier out of marketing, whatever its consent history says,
//! until an opt-in from that identifier itself is recorded after the erasure (see
//! [`Staged::append`]); a new STOP simply starts a new history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::batch::Staged;
use super::keyring::slot;
use super::person::{Id, PersonView};
use super::seal::{notice_key, Notice};
use super::{decode, keys, Ledger, LedgerError, Result};
use crate::domain::consent::{EventTime, PurposeState, Status};
use crate::domain::contact::Contact;
use crate::domain::erasure::erased_event;
use crate::domain::event::{ConsentEvent, Erasure, EventType};
use crate::domain::replies::{OutboundMessage, ReplyKind};
use crate::domain::tenant::TenantId;
use crate::rgpd::KeyKind;

/// A suppression entry: which erasure put the identifier there. Holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub partition: u32,
    pub seq: u64,
    pub event_id: Uuid,
    pub erased_at: DateTime<Utc>,
}

impl Suppression {
    fn of(event: &ConsentEvent) -> Self {
        Suppression {
            partition: event.partition,
            seq: event.seq,
            event_id: event.event_id,
            erased_at: event.recorded_at,
        }
    }

    /// The marketing state a suppressed identifier answers with: opted out since the erasure,
    /// the `Erased` event as its proof.
    fn marketing(&self, events: u64) -> PurposeState {
        PurposeState {
            status: Status::OptedOut,
            since: Some(self.erased_at),
            event_id: Some(self.event_id),
            latest: Some(EventTime {
                occurred_at: self.erased_at,
                seq: self.seq,
                partition: self.partition,
            }),
            events: events + 1,
        }
    }

    /// `view` with marketing suppressed. An erased person's STOP changes nothing they can be
    /// told about, so the suppression counts for confirmations too.
    pub(super) fn apply(&self, mut view: PersonView) -> PersonView {
        let events = view.consent.marketing.events;
        view.consent.marketing = self.marketing(events);
        view.decided.marketing = self.marketing(view.decided.marketing.events);
        view
    }
}

/// What an erasure request did.
#[derive(Debug, Clone, PartialEq)]
pub enum Erased {
    /// The person was erased by this request.
    Now(Box<ConsentEvent>),
    /// The identifier was already erased (and nothing since lifted it): its `Erased` event.
    Before(Box<ConsentEvent>),
    /// The ledger never saw this identifier.
    Unknown,
}

pub(super) fn suppressed_key(tenant: &TenantId, digest: &[u8; 32]) -> Vec<u8> {
    [tenant.as_str().as_bytes(), b"\0", digest.as_slice()].concat()
}

impl Ledger {
    /// The suppression entry of `contact`, when it is on the list.
    pub fn suppression(&self, tenant: &TenantId, contact: &Contact) -> Result<Option<Suppression>> {
        self.suppression_of(tenant, &self.digest(tenant, contact)?)
    }

    /// [`Self::suppression`] of the identifier whose keyed hash is `digest`.
    pub(crate) fn suppression_of(
        &self,
        tenant: &TenantId,
        digest: &[u8; 32],
    ) -> Result<Option<Suppression>> {
        if !self.known.may_know(digest) {
            return Ok(None);
        }
        let key = suppressed_key(tenant, digest);
        self.suppressed
            .get(key)?
            .map(|v| decode("suppressed", &v))
            .transpose()
    }

    /// The `Erased` event that put `contact` on the suppression list, when it is there.
    pub fn erased_event_of(
        &self,
        tenant: &TenantId,
        contact: &Contact,
    ) -> Result<Option<ConsentEvent>> {
        let Some(s) = self.suppression(tenant, contact)? else {
            return Ok(None);
        };
        let event = self.open_event(self.event_at(s.partition, s.seq)?)?;
        Ok(Some(event).filter(|e| e.event_type == EventType::Erased))
    }

    /// Whether the ledger holds anything about `contact`: an event, a link or a suppression.
    fn knows(&self, tenant: &TenantId, contact: &Contact) -> Result<bool> {
        let prefix = keys::contact_prefix(tenant, &self.digest(tenant, contact)?);
        Ok(self.by_contact.scan_prefix(&prefix).next().is_some()
            || self.links.scan_prefix(&prefix).next().is_some())
    }

    /// Erases the person behind `contact` (see the module doc), appending the `Erased` event
    /// on `partition`'s chain; durable when it returns.
    pub fn erase(
        &self,
        tenant: &TenantId,
        contact: &Contact,
        erasure: Erasure,
        partition: u32,
        now: DateTime<Utc>,
    ) -> Result<Erased> {
        let mut batch = self.stage();
        let erased = batch.erase(tenant, contact, erasure, Uuid::new_v4(), partition, now)?;
        if matches!(erased, Erased::Now(_)) {
            batch.commit()?;
        }
        Ok(erased)
    }
}

impl Staged<'_> {
    /// The erasure in this batch: what [`Ledger::erase`] does, for the commit path (an erasure
    /// scale-out forwarded on the inbound topic). `request_id` makes the event's id.
    pub fn erase(
        &mut self,
        tenant: &TenantId,
        contact: &Contact,
        erasure: Erasure,
        request_id: Uuid,
        partition: u32,
        now: DateTime<Utc>,
    ) -> Result<Erased> {
        let ledger = self.ledger();
        if let Some(s) = self.suppression(tenant, contact)? {
            let event = Some(ledger.open_event(ledger.event_at(s.partition, s.seq)?)?)
                .filter(|e| e.event_type == EventType::Erased)
                .ok_or_else(|| LedgerError::Corrupt {
                    tree: "suppressed",
                    detail: "a suppression entry points at no Erased event".into(),
                })?;
            return Ok(Erased::Before(Box::new(event)));
        }
        if !ledger.knows(tenant, contact)? {
            return Ok(Erased::Unknown);
        }
        let members = self.member_ids(tenant, contact)?;
        let readable: Vec<&Contact> = members.values().flatten().collect();
        let others = readable
            .iter()
            .filter(|c| **c != contact)
            .map(|c| (*c).clone())
            .collect();
        let event = erased_event(tenant, contact, others, erasure, request_id, now);
        let sealed = self.append(event, partition)?;
        let entry = serde_json::to_vec(&Suppression::of(&sealed)).expect("plain struct");
        for id in members.keys() {
            for kind in KeyKind::ALL {
                self.destroy.insert(slot(tenant, id, kind));
            }
            self.suppress
                .insert(suppressed_key(tenant, id), Some(entry.clone()));
        }
        let mut reply_seq = 0;
        for (i, member) in readable.iter().enumerate() {
            reply_seq = self.push_reply(partition, &erased_record(&sealed, member, i))?;
        }
        let notice = Notice {
            tenant: tenant.clone(),
            event_id: sealed.event_id,
            seq: sealed.seq,
            reply_seq,
        };
        self.notices.push((
            notice_key(partition, sealed.seq),
            serde_json::to_vec(&notice).expect("plain struct"),
        ));
        Ok(Erased::Now(Box::new(sealed)))
    }
}

/// The reply feed's `Erased` record for one identifier: senders drop what they queued for
/// it and their copies. It carries no text and is never to be sent.
fn erased_record(event: &ConsentEvent, to: &Contact, index: usize) -> OutboundMessage {
    let in_reply_to = event.source.message_id.clone();
    OutboundMessage {
        message_id: OutboundMessage::id_for(
            &event.tenant,
            &format!("{in_reply_to}#{index}"),
            ReplyKind::Erased,
        ),
        tenant: event.tenant.clone(),
        channel: event.channel.clone(),
        to: to.clone(),
        kind: ReplyKind::Erased,
        language: String::new(),
        text: String::new(),
        in_reply_to,
        event_id: Some(event.event_id),
        created_at: event.recorded_at,
    }
}

impl Staged<'_> {
    /// The suppression entry of `contact` as this batch will leave it.
    pub(super) fn suppression(
        &self,
        tenant: &TenantId,
        contact: &Contact,
    ) -> Result<Option<Suppression>> {
        self.suppression_of(tenant, &self.ledger().digest(tenant, contact)?)
    }

    /// [`Self::suppression`] of the identifier whose keyed hash is `id`.
    fn suppression_of(&self, tenant: &TenantId, id: &Id) -> Result<Option<Suppression>> {
        match self.suppress.get(&suppressed_key(tenant, id)) {
            Some(Some(v)) => Ok(Some(decode("suppressed", v)?)),
            Some(None) => Ok(None),
            None => self.ledger().suppression_of(tenant, id),
        }
    }

    /// Lifts the suppression of `event`'s contact (keyed hash `id`) when `event` is an opt-in
    /// from it recorded after the erasure: the identifier starts a new history.
    pub(super) fn lift_suppression(&mut self, event: &ConsentEvent, id: &Id) -> Result<()> {
        if event.event_type != EventType::OptedIn {
            return Ok(());
        }
        if let Some(s) = self.suppression_of(&event.tenant, id)? {
            if event.recorded_at > s.erased_at {
                self.suppress
                    .insert(suppressed_key(&event.tenant, id), None);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::config::{ConfigFile, Settings};
    use crate::domain::erasure::request;
    use crate::domain::event::Purpose;
    use crate::pipeline::file::{ingest, FileSinks};
    use crate::rgpd::MasterKey;

    const NUMBERS: [&str; 2] = ["+33612000001", "+33612000002"];
    const USERS: [&str; 2] = ["FR.1000000000000000001", "FR.1000000000000000002"];

    #[derive(Debug, Clone)]
    enum Op {
        Stop(usize),
        Start(usize),
        Link(usize, usize),
        Erase(usize),
    }

    /// Identifiers 0 and 1 are numbers, 2 and 3 user IDs.
    fn id(i: usize) -> &'static str {
        if i < 2 {
            NUMBERS[i]
        } else {
            USERS[i - 2]
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4usize).prop_map(Op::Stop),
            (0..4usize).prop_map(Op::Start),
            (0..2usize, 0..2usize).prop_map(|(n, u)| Op::Link(n, u + 2)),
            (0..4usize).prop_map(Op::Erase),
        ]
    }

    /// What the suppression list must hold after the ops, computed without the ledger.
    #[derive(Default)]
    struct Model {
        known: BTreeSet<usize>,
        links: Vec<(usize, usize)>,
        suppressed: BTreeSet<usize>,
    }

    impl Model {
        fn person(&self, i: usize) -> BTreeSet<usize> {
            let mut members = BTreeSet::from([i]);
            loop {
                let before = members.len();
                for (a, b) in &self.links {
                    if members.contains(a) || members.contains(b) {
                        members.extend([*a, *b]);
                    }
                }
                if members.len() == before {
                    return members;
                }
            }
        }

        fn apply(&mut self, op: &Op) {
            match *op {
                Op::Stop(i) => {
                    self.known.insert(i);
                }
                Op::Start(i) => {
                    self.known.insert(i);
                    self.suppressed.remove(&i);
                }
                Op::Link(n, u) => {
                    self.known.extend([n, u]);
                    self.links.push((n, u));
                }
                Op::Erase(i) => {
                    if self.known.contains(&i) && !self.suppressed.contains(&i) {
                        let person = self.person(i);
                        self.suppressed.extend(person);
                    }
                }
            }
        }
    }

    fn record(k: usize, from: &str, user: Option<&str>, text: &str) -> String {
        let at = chrono::Utc::now() - chrono::Duration::seconds(1000 - k as i64);
        let (from, user) = match (from.starts_with('+'), user) {
            (true, u) => (from, u),
            (false, _) => (from, None),
        };
        serde_json::json!({"type": "inbound", "tenant": "shop", "channel": "whatsapp",
            "message_id": format!("m{k}"), "from": from, "from_user_id": user,
            "received_at": at.to_rfc3339(), "text": text})
        .to_string()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any sequence of STOP, START, link and erase keeps `verify` passing, and an erased
        /// identifier never becomes sendable for marketing until it opts in itself. The
        /// in-memory filter of known identifiers changes no answer: each person is read with
        /// it and without it.
        #[test]
        fn erasure_keeps_the_chain_valid_and_erased_identifiers_unsendable(
            ops in proptest::collection::vec(op(), 1..14)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut ledger = Ledger::open(&dir.path().join("ledger"), MasterKey::generate()).unwrap();
            ledger.known.wait_until_loaded();
            let settings = Settings::from_file(ConfigFile::default()).unwrap();
            let tenant = TenantId::new("shop").unwrap();
            let profile = settings.profile(&tenant);
            let mut sinks = FileSinks::in_dir(dir.path(), None);
            let mut model = Model::default();
            for (k, op) in ops.iter().enumerate() {
                let line = match *op {
                    Op::Stop(i) => Some(record(k, id(i), None, "STOP")),
                    Op::Start(i) => Some(record(k, id(i), None, "START")),
                    Op::Link(n, u) => Some(record(k, id(n), Some(id(u)), "bonjour")),
                    Op::Erase(i) => {
                        let contact = Contact::from_stored(id(i).into());
                        let why = request("test", "property").unwrap();
                        ledger.erase(&tenant, &contact, why, 0, chrono::Utc::now()).unwrap();
                        None
                    }
                };
                if let Some(line) = line {
                    ingest(&ledger, &settings, line.as_bytes(), "test", &mut sinks).unwrap();
                }
                model.apply(op);
                let report = ledger.verify().unwrap();
                prop_assert!(report.ok(), "{:?} after {:?}", report.problems, &ops[..=k]);
                let never_seen = ["+33612000009", "FR.1000000000000000009"];
                for i in (0..4).map(id).chain(never_seen) {
                    let contact = Contact::from_stored(i.into());
                    let filtered = ledger.person(&tenant, &contact).unwrap();
                    let filter = std::mem::take(&mut ledger.known);
                    let unfiltered = ledger.person(&tenant, &contact).unwrap();
                    ledger.known = filter;
                    prop_assert_eq!(filtered, unfiltered, "{} after {:?}", i, &ops[..=k]);
                }
                for i in 0..4 {
                    let contact = Contact::from_stored(id(i).into());
                    let on_list = ledger.suppression(&tenant, &contact).unwrap().is_some();
                    prop_assert_eq!(on_list, model.suppressed.contains(&i), "{} after {:?}", i, &ops[..=k]);
                    if on_list {
                        let status = crate::query::status(
                            &ledger, &profile, &tenant, &contact, Purpose::Marketing,
                        )
                        .unwrap();
                        prop_assert!(!status.may_send, "{} sendable after {:?}", i, &ops[..=k]);
                    }
                }
            }
        }
    }
}
