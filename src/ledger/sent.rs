//! Campaign analytics storage: what campaigns sent, what Meta says was delivered, and the help /
//! possible opt-out signals attributed to a campaign. Derived data (see the module table in
//! `ledger/mod.rs`): read by attribution before an event is sealed, and by `stats`.

use chrono::{DateTime, Duration, Utc};

use super::{decode, Ledger, Result};
use crate::domain::analytics::{DeliveryRecord, Inputs, OptOut, SentRef, Signal, SignalKind};
use crate::domain::contact::Contact;
use crate::domain::event::EventType;
use crate::domain::inbound::SentCategory;
use crate::domain::tenant::TenantId;

pub(crate) mod keys {
    use chrono::{DateTime, Utc};

    use crate::domain::tenant::TenantId;

    /// `mid`: the message id's keyed hash; the key of `sent` and `delivery` alike, so that
    /// `stats` joins them.
    pub fn sent(tenant: &TenantId, mid: &[u8]) -> Vec<u8> {
        [tenant.as_str().as_bytes(), b"\0", mid].concat()
    }

    pub use super::super::keys::{contact_prefix, tenant_prefix};

    /// Milliseconds with the sign bit flipped, so byte order is time order for any instant.
    pub fn time(at: DateTime<Utc>) -> [u8; 8] {
        ((at.timestamp_millis() as u64) ^ (1 << 63)).to_be_bytes()
    }

    /// `id`: the recipient's keyed hash.
    pub fn sent_by_contact(tenant: &TenantId, id: &[u8], at: DateTime<Utc>, mid: &[u8]) -> Vec<u8> {
        let mut k = contact_prefix(tenant, id);
        k.extend_from_slice(&time(at));
        k.push(0);
        k.extend_from_slice(mid);
        k
    }

    /// Every key of `contact` with a time at or before `at` sorts below this.
    pub fn sent_by_contact_upto(tenant: &TenantId, id: &[u8], at: DateTime<Utc>) -> Vec<u8> {
        let mut k = contact_prefix(tenant, id);
        k.extend_from_slice(&time(at));
        k.push(1);
        k
    }

    pub fn signal(tenant: &TenantId, campaign: &str, kind: &str, mid: &[u8]) -> Vec<u8> {
        [
            tenant.as_str().as_bytes(),
            b"\0",
            campaign.as_bytes(),
            b"\0",
            kind.as_bytes(),
            b"\0",
            mid,
        ]
        .concat()
    }
}

/// How far back a window lookup walks at most; the domain decides the exact boundary.
pub(crate) fn lookup_floor(at: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    at.checked_sub_signed(window + Duration::seconds(1))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Ledger {
    /// The sent record of `message_id`, if a campaign reported it.
    pub fn sent_message(&self, tenant: &TenantId, message_id: &str) -> Result<Option<SentRef>> {
        let mid = self.message_digest(tenant, message_id)?;
        match self.sent.get(keys::sent(tenant, &mid))? {
            Some(bytes) => decode("sent", &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The latest marketing send to `contact` in `[not_before, at]`.
    pub fn last_marketing_sent(
        &self,
        tenant: &TenantId,
        contact: &Contact,
        not_before: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Option<SentRef>> {
        let id = self.digest(tenant, contact)?;
        let mut low = keys::contact_prefix(tenant, &id);
        low.extend_from_slice(&keys::time(not_before));
        let high = keys::sent_by_contact_upto(tenant, &id, at);
        for entry in self.sent_by_contact.range(low..high).rev() {
            let (_, bytes) = entry?;
            let sent: SentRef = decode("sent_by_contact", &bytes)?;
            if sent.category == SentCategory::Marketing {
                return Ok(Some(sent));
            }
        }
        Ok(None)
    }

    pub fn delivery(&self, tenant: &TenantId, message_id: &str) -> Result<Option<DeliveryRecord>> {
        let mid = self.message_digest(tenant, message_id)?;
        match self.delivery.get(keys::sent(tenant, &mid))? {
            Some(bytes) => decode("delivery", &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// What `stats` computes over: the tenant's sends with their delivery, the opt-out events
    /// attributed to a campaign, and the signals; every scan is the tenant's own.
    pub fn campaign_inputs(&self, tenant: &TenantId) -> Result<Inputs> {
        let prefix = keys::tenant_prefix(tenant);
        let mut inputs = Inputs::default();
        for entry in self.sent.scan_prefix(&prefix) {
            self.count_reads(2);
            let (key, bytes) = entry?;
            let sent: SentRef = decode("sent", &bytes)?;
            let delivered = match self.delivery.get(&key)? {
                Some(d) => Some(decode::<DeliveryRecord>("delivery", &d)?.delivered()),
                None => None,
            };
            inputs.sent.push((sent, delivered));
        }
        for event in self.tenant_events(tenant, 0) {
            let (_, event) = event?;
            if event.event_type != EventType::OptedOut {
                continue;
            }
            if let Some(campaign_id) = event.campaign_id {
                // Opt-outs are counted per recipient, told apart by keyed hash like sends.
                let id = super::seal::field_ref(event.contact.as_str())
                    .map(hex::encode)
                    .unwrap_or_else(|| event.contact.to_string());
                inputs.opt_outs.push(OptOut {
                    campaign_id,
                    contact: Contact::from_stored(id),
                    occurred_at: event.occurred_at,
                });
            }
        }
        for entry in self.campaign_signals.scan_prefix(&prefix) {
            self.count_reads(1);
            let (key, bytes) = entry?;
            let mut parts = key[prefix.len()..].split(|b| *b == 0);
            let campaign = parts.next().unwrap_or_default();
            let kind = match parts.next().unwrap_or_default() {
                b"help" => SignalKind::Help,
                _ => SignalKind::PossibleOptOut,
            };
            inputs.signals.push(Signal {
                campaign_id: String::from_utf8_lossy(campaign).into_owned(),
                kind,
                occurred_at: decode("campaign_signals", &bytes)?,
            });
        }
        Ok(inputs)
    }
}
