//! The stages between a source and the ledger, shared by file mode (`ingest`), Kafka mode
//! (`run`) and the HTTP writes: decode → resolve tenant and contact → classify → decide →
//! one durable batch → acknowledge ([`commit`]), then the relays publish what the log gained
//! ([`relay`]). Sources differ only in how they read, where their dead letters go and how
//! they acknowledge.

pub mod commit;
pub mod deadletter;
pub mod file;
pub mod kafka;
mod prepare;
pub mod purge;
pub mod relay;
mod resolve;
mod summary;

pub use commit::{commit, CommitError, Committed, Input, Rejection};
pub use summary::Summary;
