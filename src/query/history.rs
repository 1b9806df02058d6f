//! What a business shows a customer who asks (RGPD Art. 15) or a regulator: every consent
//! event of one contact, each with its proof.

use crate::domain::contact::Contact;
use crate::domain::event::ConsentEvent;
use crate::domain::tenant::TenantId;
use crate::ledger::{Ledger, LedgerError};

/// Oldest first in event time (ties by append order).
pub fn history(
    ledger: &Ledger,
    tenant: &TenantId,
    contact: &Contact,
) -> Result<Vec<ConsentEvent>, LedgerError> {
    ledger.history(tenant, contact)
}
