//! Bearer tokens, per tenant. A token is checked before anything else in a request is looked
//! at, and a tenant token is refused for any other tenant path with the same answer whether
//! that tenant exists or not, so no response tells one business anything about another.
//!
//! Each known token is also held to `api.rate_limit_per_token` here (429 past it).
//!
//! The admin token reads every tenant (support, audits) but does not write: consent is
//! recorded or imported with the tenant's own token, so every write in the log is attributable
//! to the business it belongs to.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};

use sha2::Digest as _;

use super::problem::Problem;
use super::AppState;
use crate::config::ApiPrincipal;
use crate::domain::tenant::TenantId;

/// What a request does to a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The authenticated caller, and which configured token it used: the first 12 hex digits of
/// the token's SHA-256, as `api_tokens_sha256` lists it (not a secret, and enough to tell a
/// tenant's tokens apart in the `Erased` events it asks for).
#[derive(Debug, Clone)]
pub struct Caller(pub ApiPrincipal, String);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(Problem::unauthorized(
                "missing bearer token: send `Authorization: Bearer <token>`",
                false,
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be `Bearer <token>`", true)
            })?;
        let Some(principal) = state.settings.api_principal(token) else {
            return Err(Problem::unauthorized("unknown or revoked token", true));
        };
        // Counted once the token is known, so unknown tokens cannot grow the limiter's table.
        if let Some(limiter) = &state.limiter {
            limiter.check(token)?;
        }
        let digest = sha2::Sha256::digest(token.as_bytes());
        Ok(Caller(principal.clone(), hex::encode(&digest[..6])))
    }
}

impl Caller {
    /// Who asked, as an `Erased` event records it.
    pub fn requested_by(&self) -> String {
        format!("api:{}", self.1)
    }

    /// Whether this caller may do `access` on `tenant` (the raw path segment): the tenant id
    /// the handler then works for. The path is checked here, once; a tenant token's own id
    /// was checked when the config loaded.
    pub fn allow(&self, tenant: &str, access: Access) -> Result<TenantId, Problem> {
        match &self.0 {
            ApiPrincipal::Tenant(own) if own == tenant => Ok(own.clone()),
            ApiPrincipal::Tenant(_) => Err(Problem::forbidden(
                "this token is not valid for the tenant in the path",
            )),
            ApiPrincipal::Admin if access == Access::Write => Err(Problem::forbidden(
                "the admin token is read-only; record or import consent with the tenant's own token",
            )),
            ApiPrincipal::Admin => TenantId::new(tenant).map_err(|e| {
                Problem::bad_request("invalid-tenant", "Invalid tenant", e.to_string())
            }),
        }
    }
}
