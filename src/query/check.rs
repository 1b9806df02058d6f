//! The campaign audience filter: which contacts of a list may receive a message of one purpose
//! now. `check` and `POST /v1/tenants/{t}/consent/check` both walk their input through an
//! [`Audience`] and only format its verdicts, so a list gets the same answer from either.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::TenantProfile;
use crate::domain::consent::Status;
use crate::domain::contact::{self, Contact};
use crate::domain::event::Purpose;
use crate::domain::policy::may_send;
use crate::domain::tenant::TenantId;
use crate::ledger::{Ledger, LedgerError};

/// The answer for one line of an audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed(Contact),
    Excluded {
        contact: Contact,
        reason: &'static str,
        since: Option<DateTime<Utc>>,
    },
    Invalid {
        input: String,
        reason: String,
    },
    /// The contact was answered on an earlier line, maybe in another spelling.
    Duplicate(Contact),
}

/// Which repeats of a contact count as duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeats {
    /// Every contact is answered once (the HTTP answer, read by programs).
    AnswerOnce,
    /// An allowed contact is answered once, so the send list holds it once; an excluded one
    /// is reported and counted at each of its lines (the CLI, whose report a person reads to
    /// clean the list line by line).
    ReportEachExclusion,
}

/// What an audience held, by verdict.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Items read (blank lines excluded).
    pub checked: u64,
    pub allowed: u64,
    pub excluded: u64,
    pub invalid: u64,
    /// Items that repeat an earlier contact, in any spelling; answered once.
    pub duplicates: u64,
}

/// One audience being checked, line by line, so that a million-contact list is answered as it
/// is read rather than held in memory.
pub struct Audience<'a> {
    ledger: &'a Ledger,
    profile: &'a TenantProfile,
    tenant: &'a TenantId,
    purpose: Purpose,
    repeats: Repeats,
    /// E.164 digits of the numbers answered so far: 8 bytes a contact, so a million-contact
    /// audience costs a few megabytes.
    seen: HashSet<u64, foldhash::fast::RandomState>,
    /// WhatsApp user IDs answered so far, as written.
    seen_ids: HashSet<String, foldhash::fast::RandomState>,
    counts: Counts,
}

impl<'a> Audience<'a> {
    pub fn new(
        ledger: &'a Ledger,
        profile: &'a TenantProfile,
        tenant: &'a TenantId,
        purpose: Purpose,
        repeats: Repeats,
    ) -> Self {
        Audience {
            ledger,
            profile,
            tenant,
            purpose,
            repeats,
            seen: HashSet::default(),
            seen_ids: HashSet::default(),
            counts: Counts::default(),
        }
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The verdict for one contact as the list gives it, in any spelling.
    pub fn check(&mut self, input: &str) -> Result<Verdict, LedgerError> {
        let verdict = self.verdict(input)?;
        Ok(self.count(verdict))
    }

    /// Applies repeats and counts to a contact's verdict, in list order.
    fn count(&mut self, verdict: Verdict) -> Verdict {
        let verdict = match verdict {
            Verdict::Allowed(c) if !self.first_time(&c) => Verdict::Duplicate(c),
            Verdict::Excluded { contact, .. }
                if self.repeats == Repeats::AnswerOnce && !self.first_time(&contact) =>
            {
                Verdict::Duplicate(contact)
            }
            verdict => verdict,
        };
        self.counts.checked += 1;
        match verdict {
            Verdict::Allowed(_) => self.counts.allowed += 1,
            Verdict::Excluded { .. } => self.counts.excluded += 1,
            Verdict::Invalid { .. } => self.counts.invalid += 1,
            Verdict::Duplicate(_) => self.counts.duplicates += 1,
        }
        verdict
    }

    /// Counts an item that is no contact at all (a JSON value of another type, a line that
    /// is not JSON); the caller reports it in its own terms.
    pub fn not_a_contact(&mut self) {
        self.counts.checked += 1;
        self.counts.invalid += 1;
    }

    fn first_time(&mut self, contact: &Contact) -> bool {
        // E.164 is '+' and at most 15 digits, so the digits always fit.
        let digits = contact.as_str().strip_prefix('+');
        match digits.and_then(|d| d.parse::<u64>().ok()) {
            Some(key) => self.seen.insert(key),
            None => self.seen_ids.insert(contact.as_str().to_string()),
        }
    }

    fn verdict(&self, input: &str) -> Result<Verdict, LedgerError> {
        let contact = match contact::normalize_once(input, self.profile.region) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Verdict::Invalid {
                    input: input.to_string(),
                    reason: e.to_string(),
                })
            }
        };
        let consent = self.ledger.consent(self.tenant, &contact)?;
        Ok(
            match may_send(&consent, self.purpose, &self.profile.policy) {
                Ok(()) => Verdict::Allowed(contact),
                Err(e) => {
                    let state = consent.get(self.purpose);
                    let since = if state.status == Status::Unknown {
                        None
                    } else {
                        state.since
                    }
                    .or(consent.marketing.since);
                    Verdict::Excluded {
                        contact,
                        reason: e.as_str(),
                        since,
                    }
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigFile, Settings};
    use crate::pipeline::file::{ingest, FileSinks};
    use crate::rgpd::MasterKey;

    const LIST: [&str; 6] = [
        "+33612345678",
        "+33612345679",
        "0033612345678",
        "0033 6 12 34 56 79",
        "not a phone",
        "+33612345678",
    ];

    /// Checks LIST after +33612345678 said STOP; returns the verdict kinds and the counts.
    fn check_list(repeats: Repeats) -> (Vec<&'static str>, Counts) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), MasterKey::generate()).unwrap();
        let settings = Settings::from_file(ConfigFile::default()).unwrap();
        let stop = serde_json::json!({"type": "inbound", "tenant": "shop", "channel": "sms",
            "message_id": "m1", "from": "+33612345678",
            "received_at": "2026-01-01T10:00:00Z", "text": "STOP"});
        let mut sinks = FileSinks::in_dir(dir.path(), None);
        ingest(
            &ledger,
            &settings,
            stop.to_string().as_bytes(),
            "test",
            &mut sinks,
        )
        .unwrap();
        let shop = TenantId::new("shop").unwrap();
        let profile = settings.profile(&shop);
        let mut audience = Audience::new(&ledger, &profile, &shop, Purpose::Marketing, repeats);
        let kinds = LIST
            .iter()
            .map(|line| match audience.check(line).unwrap() {
                Verdict::Allowed(_) => "allowed",
                Verdict::Excluded { .. } => "excluded",
                Verdict::Invalid { .. } => "invalid",
                Verdict::Duplicate(_) => "duplicate",
            })
            .collect();
        audience.not_a_contact();
        (kinds, audience.counts())
    }

    /// Regression: user IDs are no digits, and every one after the first was taken for a
    /// repeat of it.
    #[test]
    fn two_whatsapp_user_ids_are_two_contacts() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), MasterKey::generate()).unwrap();
        let settings = Settings::from_file(ConfigFile::default()).unwrap();
        let shop = TenantId::new("shop").unwrap();
        let profile = settings.profile(&shop);
        let mut audience = Audience::new(
            &ledger,
            &profile,
            &shop,
            Purpose::Marketing,
            Repeats::AnswerOnce,
        );
        for (line, allowed) in [("US.1", true), ("US.2", true), ("US.1", false)] {
            let verdict = audience.check(line).unwrap();
            assert_eq!(matches!(verdict, Verdict::Allowed(_)), allowed, "{line}");
        }
        assert_eq!(audience.counts().duplicates, 1);
    }

    #[test]
    fn every_repeat_is_a_duplicate_when_each_contact_is_answered_once() {
        let (kinds, counts) = check_list(Repeats::AnswerOnce);
        assert_eq!(
            kinds,
            [
                "excluded",
                "allowed",
                "duplicate",
                "duplicate",
                "invalid",
                "duplicate"
            ]
        );
        let expected = Counts {
            checked: 7,
            allowed: 1,
            excluded: 1,
            invalid: 2,
            duplicates: 3,
        };
        assert_eq!(counts, expected);
    }

    #[test]
    fn excluded_repeats_are_reported_again_for_a_person_cleaning_the_list() {
        let (kinds, counts) = check_list(Repeats::ReportEachExclusion);
        assert_eq!(
            kinds,
            [
                "excluded",
                "allowed",
                "excluded",
                "duplicate",
                "invalid",
                "excluded"
            ]
        );
        let expected = Counts {
            checked: 7,
            allowed: 1,
            excluded: 3,
            invalid: 2,
            duplicates: 1,
        };
        assert_eq!(counts, expected);
    }
}
