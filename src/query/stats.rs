//! Campaign statistics: the numbers of [`crate::domain::analytics`] computed over what the
//! ledger holds for one tenant. `stats`, `/v1/tenants/{t}/campaigns` and the HTML report
//! (crate::report) all show this one computation.

use chrono::{DateTime, Utc};

use crate::config::TenantProfile;
use crate::domain::analytics::{self, TenantStats};
use crate::domain::tenant::TenantId;
use crate::ledger::{Ledger, LedgerError};

/// Every campaign of `tenant`, with the tenant's anomaly rules.
pub fn stats(
    ledger: &Ledger,
    profile: &TenantProfile,
    tenant: &TenantId,
    since: Option<DateTime<Utc>>,
) -> Result<TenantStats, LedgerError> {
    let inputs = ledger.campaign_inputs(tenant)?;
    Ok(analytics::compute(tenant, since, &inputs, &profile.anomaly))
}
