//! Erasure by crypto-shredding (RGPD Art. 17), the pure part: keys and what they do, no
//! storage (the `keys` and `suppressed` trees are in `ledger::keyring`).
//!
//! Three layers of keys, so that one can be destroyed without touching the others:
//! - the **master key** (32 bytes, configured outside the data dir in production) wraps every
//!   other key and is never stored by the ledger; a key-check value tells a wrong one apart
//!   from a corrupt ledger before anything is written;
//! - the **index secret**, random, stored wrapped: per-tenant secrets are derived from it with
//!   HKDF, and index keys and suppression entries are HMACs under them. It is not derived from
//!   the master key itself, because rotating the master key must not change an HMAC: the
//!   identifier behind a suppression entry is gone after erasure, so it could never be
//!   recomputed under a new secret;
//! - **data keys**, random, two per identifier (identity fields, message texts), stored
//!   wrapped: destroying them is what erases.

pub mod field;
mod master;
mod secret;

pub use field::{Sealed, ERASED};
pub use master::{MasterKey, KEY_BYTES};
pub use secret::{DataKey, IndexSecret, KeyKind, TenantSecret};

/// Fresh random bytes for a key or a nonce, from the operating system.
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    bytes
}
