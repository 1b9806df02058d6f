//! The tenant: the business a record, a token or a consent belongs to. Its id is part of every
//! storage key (`tenant \0 contact …`) and of every API path, so it is restricted to a safe
//! alphabet and checked once, where it enters: a CLI argument, an HTTP path, a tenant name in
//! the config, a decoded record's tenant as the config resolves it. Past that point a
//! [`TenantId`] is proof of the check, and nothing inside the library re-validates a string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest tenant id, in bytes (the id is ASCII).
pub const MAX_TENANT_ID_LEN: usize = 64;

/// A valid tenant id: 1 to 64 ASCII letters, digits, `-`, `_` and `.`. Serialized as the
/// plain string, so records and schemas are those of a `String`; deserializing checks it
/// again, so no stored or received record can smuggle in an id the ledger would refuse.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

/// Why a string is not a tenant id; shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTenantId {
    #[error("tenant id must be 1 to {MAX_TENANT_ID_LEN} characters")]
    Length,
    #[error("tenant id {0:?} may only contain letters, digits, '-', '_' and '.'")]
    Alphabet(String),
}

/// Why a record's tenant is not one the ledger keeps consent for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownTenant {
    #[error(transparent)]
    Invalid(#[from] InvalidTenantId),
    /// Only with `strict_tenants`: otherwise an unlisted tenant gets the defaults.
    #[error("{0} has no [tenants.{0}] table and strict_tenants is on")]
    NotConfigured(TenantId),
}

impl TenantId {
    pub fn new(id: &str) -> Result<TenantId, InvalidTenantId> {
        check(id)?;
        Ok(TenantId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check(id: &str) -> Result<(), InvalidTenantId> {
    if id.is_empty() || id.len() > MAX_TENANT_ID_LEN {
        return Err(InvalidTenantId::Length);
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(InvalidTenantId::Alphabet(id.to_string()));
    }
    Ok(())
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;

    fn try_from(id: String) -> Result<TenantId, InvalidTenantId> {
        check(&id)?;
        Ok(TenantId(id))
    }
}

impl FromStr for TenantId {
    type Err = InvalidTenantId;

    fn from_str(id: &str) -> Result<TenantId, InvalidTenantId> {
        TenantId::new(id)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TenantId, D::Error> {
        TenantId::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Like the string, so `{tenant:?}` in a message reads `"acme"` as it did before the type.
impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TenantId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TenantId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The schema of a plain string, inlined: the JSON Schemas of the records that carry a tenant
/// (schemas/*.json) stay exactly what they were when the field was a `String`.
impl schemars::JsonSchema for TenantId {
    fn inline_schema() -> bool {
        String::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        String::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        String::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_restricted() {
        assert!(TenantId::new("acme-fr_1").is_ok());
        assert!(TenantId::new("../etc").is_err());
        assert!(TenantId::new("").is_err());
    }

    #[test]
    fn errors_keep_their_texts() {
        assert_eq!(
            TenantId::new(&"a".repeat(65)).unwrap_err().to_string(),
            "tenant id must be 1 to 64 characters"
        );
        assert_eq!(
            TenantId::new("a/b").unwrap_err().to_string(),
            "tenant id \"a/b\" may only contain letters, digits, '-', '_' and '.'"
        );
    }

    #[test]
    fn serialized_as_a_plain_string_and_checked_when_read() {
        let id = TenantId::new("acme").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"acme\"");
        assert_eq!(serde_json::from_str::<TenantId>("\"acme\"").unwrap(), id);
        assert!(serde_json::from_str::<TenantId>("\"../etc\"").is_err());
    }
}
