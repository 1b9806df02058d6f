//! The read side, shared by the CLI and the HTTP API so that both answer the same way: the
//! status and history of one contact, the campaign audience filter, the audit export and the
//! campaign statistics. Each exists once here; the CLI and the HTTP handlers only parse their
//! input and format what these functions return.
//!
//! ```text
//! status.rs   status of one contact for one purpose, under the tenant's policy
//! history.rs  every event of one contact, oldest first
//! check.rs    audience filter: per-line verdict, repeats answered once, counts
//! export.rs   the audit log as JSON lines or CSV
//! stats.rs    opt-out statistics per campaign (the numbers behind report.rs)
//! time.rs     the one reading of user-given times (`--since`, `?since=`, imported rows)
//! ```

mod check;
mod export;
mod history;
mod stats;
mod status;
mod time;

pub use check::{Audience, Counts, Repeats, Verdict};
pub use export::{
    csv_row, export, write_header, ExportError, ExportFormat, UnknownFormat, CSV_COLUMNS,
};
pub use history::{history, PersonHistory};
pub use stats::stats;
pub use status::{status, StatusRecord};
pub use time::parse_time;

use crate::config::TenantProfile;
use crate::domain::contact::{self, Contact, ContactError};

/// A contact the caller named that is not a phone number. Its text is the message both the
/// CLI and the HTTP API show, so the two say the same thing about the same input.
#[derive(Debug, thiserror::Error)]
#[error("invalid contact {input:?}: {reason}")]
pub struct InvalidContact {
    pub input: String,
    /// Part of the message rather than its `source`, so that a report printing the chain
    /// does not say it twice.
    pub reason: ContactError,
}

/// The contact a caller names (status, history), normalized with the tenant's region.
pub fn contact(profile: &TenantProfile, input: &str) -> Result<Contact, InvalidContact> {
    contact::normalize(input, profile.region).map_err(|reason| InvalidContact {
        input: input.to_string(),
        reason,
    })
}
