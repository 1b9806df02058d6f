//! Deliberate damage, for tests that prove `verify` catches it. Hidden from the docs: nothing
//! in the product calls these, but the tests must go through the ledger module because it is
//! the only code allowed to touch the store.

use super::{keys, Ledger, Result};
use crate::domain::contact::Contact;
use crate::domain::event::Purpose;
use crate::domain::tenant::TenantId;

impl Ledger {
    /// Raw stored bytes of one event.
    pub fn raw_event(&self, partition: u32, seq: u64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .events
            .get(keys::event(partition, seq))?
            .map(|v| v.to_vec()))
    }
}

/// Overwrites one event's stored bytes.
pub fn overwrite_event(ledger: &Ledger, partition: u32, seq: u64, bytes: &[u8]) -> Result<()> {
    ledger.events.insert(keys::event(partition, seq), bytes)?;
    ledger.sync()
}

/// Deletes one event (its index entry stays, as a careless manual deletion would leave it).
pub fn delete_event(ledger: &Ledger, partition: u32, seq: u64) -> Result<()> {
    ledger.events.remove(keys::event(partition, seq))?;
    ledger.sync()
}

/// Swaps the stored bytes of two events.
pub fn swap_events(ledger: &Ledger, partition: u32, a: u64, b: u64) -> Result<()> {
    let ka = keys::event(partition, a);
    let kb = keys::event(partition, b);
    let va = ledger.events.get(ka)?.expect("event a exists");
    let vb = ledger.events.get(kb)?.expect("event b exists");
    ledger.events.insert(ka, vb)?;
    ledger.events.insert(kb, va)?;
    ledger.sync()
}

/// Overwrites one consent row, as a bug in a projection would.
pub fn overwrite_consent(
    ledger: &Ledger,
    tenant: &TenantId,
    contact: &Contact,
    purpose: Purpose,
    bytes: &[u8],
) -> Result<()> {
    let id = ledger.digest(tenant, contact)?;
    ledger
        .consent
        .insert(keys::consent(tenant, &id, purpose), bytes)?;
    ledger.sync()
}

/// Deletes one consent row, as a lost write would.
pub fn delete_consent(
    ledger: &Ledger,
    tenant: &TenantId,
    contact: &Contact,
    purpose: Purpose,
) -> Result<()> {
    let id = ledger.digest(tenant, contact)?;
    ledger.consent.remove(keys::consent(tenant, &id, purpose))?;
    ledger.sync()
}

/// Moves one identifier's `by_contact` row for an event to another identifier, as a bug in
/// the index would: the event loses its row and a row appears that no event backs.
pub fn misfile_by_contact(
    ledger: &Ledger,
    tenant: &TenantId,
    contact: &Contact,
    elsewhere: &Contact,
    partition: u32,
    seq: u64,
) -> Result<()> {
    let (from, to) = (
        ledger.digest(tenant, contact)?,
        ledger.digest(tenant, elsewhere)?,
    );
    let row = keys::by_contact(tenant, &from, partition, seq);
    assert!(
        ledger.by_contact.contains_key(&row)?,
        "the event has a by_contact row"
    );
    ledger.by_contact.remove(row)?;
    ledger
        .by_contact
        .insert(keys::by_contact(tenant, &to, partition, seq), vec![])?;
    ledger.sync()
}
