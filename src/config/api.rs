//! The `[api]` table and the bearer tokens of the HTTP API, kept as SHA-256 hashes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{ConfigError, ConfigFile, TenantConfig};
use crate::domain::tenant::TenantId;

/// The `[api]` table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Largest request body in bytes; larger ones get 413. The default (64 MiB) leaves room
    /// for a JSON audience of 1,000,000 numbers (about 16 MB) and a large CSV import.
    pub max_body_bytes: Option<u64>,
    /// SHA-256 (hex) of the tokens that may read every tenant (support, audits).
    pub admin_tokens_sha256: Vec<String>,
}

/// Who an API token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiPrincipal {
    /// Reads every tenant; see README "HTTP API" for what it may not do.
    Admin,
    Tenant(TenantId),
}

/// Token hashes by principal. A hash listed twice would make one token mean two things, and a
/// token in `[defaults]` would open every tenant to it: both are refused at start. `tenants`
/// are the file's tenant tables, their names already checked.
pub(super) fn compile_api_tokens(
    file: &ConfigFile,
    tenants: &[(TenantId, &TenantConfig)],
) -> Result<HashMap<[u8; 32], ApiPrincipal>, ConfigError> {
    if !file.defaults.api_tokens_sha256.is_empty() {
        return Err(ConfigError::Invalid(
            "api_tokens_sha256 belongs in a [tenants.NAME] table (or [api] admin_tokens_sha256), not in [defaults]".into(),
        ));
    }
    let listed = file
        .api
        .admin_tokens_sha256
        .iter()
        .map(|h| {
            (
                h,
                ApiPrincipal::Admin,
                "api.admin_tokens_sha256".to_string(),
            )
        })
        .chain(tenants.iter().flat_map(|(name, t)| {
            t.api_tokens_sha256.iter().map(move |h| {
                (
                    h,
                    ApiPrincipal::Tenant(name.clone()),
                    format!("tenants.{name}.api_tokens_sha256"),
                )
            })
        }));
    let mut tokens = HashMap::new();
    for (hash, principal, field) in listed {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hash.trim(), &mut digest).map_err(|_| {
            ConfigError::Invalid(format!(
                "{field}: {hash:?} is not a SHA-256 in hex (64 characters; make one with `printf %s \"$TOKEN\" | sha256sum`)"
            ))
        })?;
        if tokens.insert(digest, principal).is_some() {
            return Err(ConfigError::Invalid(format!(
                "{field}: the hash {hash} is listed more than once"
            )));
        }
    }
    Ok(tokens)
}
