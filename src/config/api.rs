//! The `[api]` table and the bearer tokens of the HTTP API, kept as SHA-256 hashes. The
//! limits that protect the server from slow, idle or greedy clients are typed so that a zero
//! timeout or a malformed rate stops the service when the file is read, not at the first
//! attack.

use std::collections::HashMap;
use std::fmt;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::time::Duration;

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
    /// How long a client may take to send a request's head once it started it (default 10);
    /// then it gets a 408 and the connection is closed.
    pub header_timeout_secs: Option<NonZeroU64>,
    /// How long a connection may sit between requests (default 60) before it is closed.
    pub idle_timeout_secs: Option<NonZeroU64>,
    /// How long a request body may take to arrive whole, from the end of its head (default
    /// 30); then the request gets a 408.
    pub body_timeout_secs: Option<NonZeroU64>,
    /// Connections served at once; past it a new connection gets a 503 with `Retry-After`.
    /// The default stays below the process's open-file limit, leaving room for the ledger
    /// and Kafka.
    pub max_connections: Option<NonZeroUsize>,
    /// Requests per token, `"100/s"`, `"600/m"` or `"10000/h"`; past it a 429 with
    /// `Retry-After`. Absent: no limit.
    pub rate_limit_per_token: Option<Rate>,
}

impl ApiConfig {
    pub fn header_timeout(&self) -> Duration {
        secs(self.header_timeout_secs, 10)
    }

    pub fn idle_timeout(&self) -> Duration {
        secs(self.idle_timeout_secs, 60)
    }

    pub fn body_timeout(&self) -> Duration {
        secs(self.body_timeout_secs, 30)
    }
}

fn secs(configured: Option<NonZeroU64>, default: u64) -> Duration {
    Duration::from_secs(configured.map_or(default, NonZeroU64::get))
}

/// A request rate: so many requests per second, minute or hour. A client may spend the whole
/// amount at once (a burst), then gets it back at an even pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Rate {
    pub requests: NonZeroU32,
    pub per: Per,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Second,
    Minute,
    Hour,
}

impl Per {
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Per::Second => 1,
            Per::Minute => 60,
            Per::Hour => 3600,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate {0:?}: expected a number of requests over 0, a slash and s, m or h (\"100/s\", \"600/m\")")]
pub struct InvalidRate(String);

impl std::str::FromStr for Rate {
    type Err = InvalidRate;

    fn from_str(text: &str) -> Result<Rate, InvalidRate> {
        let invalid = || InvalidRate(text.to_string());
        let (count, unit) = text.trim().split_once('/').ok_or_else(invalid)?;
        let requests = count.trim().parse::<NonZeroU32>().map_err(|_| invalid())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Per::Second,
            "m" | "min" | "minute" => Per::Minute,
            "h" | "hour" => Per::Hour,
            _ => return Err(invalid()),
        };
        Ok(Rate { requests, per })
    }
}

impl TryFrom<String> for Rate {
    type Error = InvalidRate;

    fn try_from(text: String) -> Result<Rate, InvalidRate> {
        text.parse()
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per {
            Per::Second => "s",
            Per::Minute => "m",
            Per::Hour => "h",
        };
        write!(f, "{}/{unit}", self.requests)
    }
}

impl From<Rate> for String {
    fn from(rate: Rate) -> String {
        rate.to_string()
    }
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
