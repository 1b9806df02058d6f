//! What a business shows a customer who asks (RGPD Art. 15) or a regulator: every consent
//! event of one person, each with its proof. A person reached under several identifiers (a
//! number and a WhatsApp user ID, an old number and a new one) has one history: a STOP under
//! any of them is part of the answer, whichever identifier is asked about.

use crate::domain::contact::Contact;
use crate::domain::event::ConsentEvent;
use crate::domain::tenant::TenantId;
use crate::ledger::{Ledger, LedgerError};

/// The events of the person behind one identifier.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonHistory {
    /// Oldest first in event time (ties by append order), consent and link events, each
    /// under the identifier it came with.
    pub events: Vec<ConsentEvent>,
    /// The person's other identifiers.
    pub linked: Vec<Contact>,
}

pub fn history(
    ledger: &Ledger,
    tenant: &TenantId,
    contact: &Contact,
) -> Result<PersonHistory, LedgerError> {
    let (events, linked) = ledger.person_history(tenant, contact)?;
    Ok(PersonHistory { events, linked })
}
