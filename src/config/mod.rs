//! Settings: a TOML file (see README "Configuration") plus environment overrides, validated
//! once at start so that a typo in a keyword list or a region code stops the service before it
//! processes a single message rather than silently dropping STOPs.

//!
//! `mod.rs` loads the file and answers the questions every stage asks (which tenant, which
//! profile, which token); `tenant.rs` compiles a tenant's table into its rules, `api.rs` the
//! `[api]` table and the tokens, `kafka.rs` the `[kafka]` table, `webhooks.rs` the
//! `[webhooks]` table (Meta and Twilio secrets).

mod api;
mod kafka;
mod rgpd;
mod tenant;
mod webhooks;

#[cfg(test)]
mod tests;

pub use api::{ApiConfig, ApiPrincipal, Rate};
pub use kafka::{KafkaConfig, KafkaConfigError, Topics};
pub use rgpd::{
    read_master_key_file, write_private, MasterKeySource, RgpdConfig, DEFAULT_DEAD_LETTER_DAYS,
    DEFAULT_RETENTION_DAYS, MASTER_KEY_ENV, SIGNING_KEY_ENV,
};
pub use tenant::{AnomalyConfig, TenantConfig, TenantProfile};
pub use webhooks::{
    Secret, TwilioConfig, TwilioKeys, WebhookKeys, WebhooksConfig, WhatsappConfig, WhatsappKeys,
};

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::inbound::TenantRef;
use crate::domain::keywords::KeywordError;
use crate::domain::tenant::{InvalidTenantId, TenantId, UnknownTenant};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error("invalid config: {0}")]
    Keywords(KeywordError),
    #[error("invalid config: {0}")]
    Tenant(InvalidTenantId),
}

/// The file as written by users. Every table is optional: an empty file is a valid config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    /// Applies to every tenant without its own `[tenants.NAME]` table, and fills what a
    /// tenant table leaves out.
    pub defaults: TenantConfig,
    pub tenants: BTreeMap<String, TenantConfig>,
    /// Reject messages for tenants that have no `[tenants.NAME]` table (and no mapped
    /// phone_number_id) instead of applying the defaults.
    pub strict_tenants: bool,
    /// Records per ledger batch (one atomic write and one fsync each).
    pub batch_size: Option<usize>,
    /// The HTTP API: body limit and admin tokens (tenant tokens live in their tenant table).
    pub api: ApiConfig,
    /// Kafka mode (`consent-ledger run`): brokers, group, topics, librdkafka properties.
    pub kafka: KafkaConfig,
    /// Proofs and personal data: the signing key.
    pub rgpd: RgpdConfig,
    /// The WhatsApp (Meta) and Twilio webhook receivers: their secrets and limits.
    pub webhooks: WebhooksConfig,
}

/// Validated settings, shared by every stage.
#[derive(Debug)]
pub struct Settings {
    pub file: ConfigFile,
    default: Arc<TenantProfile>,
    tenants: HashMap<TenantId, Arc<TenantProfile>>,
    phone_ids: HashMap<String, TenantId>,
    /// Business SMS numbers (E.164, or a short code's digits) to their tenant.
    sms_numbers: HashMap<String, TenantId>,
    api_tokens: HashMap<[u8; 32], ApiPrincipal>,
}

impl Settings {
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let file = match path {
            None => ConfigFile::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?
            }
        };
        Settings::from_file(file)
    }

    pub fn from_file(mut file: ConfigFile) -> Result<Settings, ConfigError> {
        if let Ok(region) = std::env::var("CONSENT_LEDGER_DEFAULT_REGION") {
            file.defaults.region = Some(region);
        }
        file.rgpd.retention()?;
        file.rgpd.dead_letter_retention()?;
        let default = Arc::new(tenant::compile(&file.defaults, None)?);
        let mut tenants = HashMap::new();
        let mut phone_ids = HashMap::new();
        let mut sms_numbers = HashMap::new();
        let mut named = Vec::with_capacity(file.tenants.len());
        if !file.defaults.sms_numbers.is_empty() {
            return Err(ConfigError::Invalid(
                "sms_numbers belongs in a [tenants.NAME] table: a number has one tenant".into(),
            ));
        }
        for (name, t) in &file.tenants {
            let tenant = TenantId::new(name).map_err(ConfigError::Tenant)?;
            let profile = tenant::compile(t, Some(&file.defaults))?;
            for number in &t.sms_numbers {
                let key = webhooks::sms_key(number, profile.region).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "tenants.{name}.sms_numbers: {number:?} is not a phone number or a short code"
                    ))
                })?;
                if let Some(other) = sms_numbers.insert(key, tenant.clone()) {
                    return Err(ConfigError::Invalid(format!(
                        "SMS number {number} is listed under both tenants {other} and {name}"
                    )));
                }
            }
            tenants.insert(tenant.clone(), Arc::new(profile));
            for id in &t.phone_number_ids {
                if let Some(other) = phone_ids.insert(id.clone(), tenant.clone()) {
                    return Err(ConfigError::Invalid(format!(
                        "phone_number_id {id} is listed under both tenants {other} and {name}"
                    )));
                }
            }
            named.push((tenant, t));
        }
        if file.batch_size == Some(0) {
            return Err(ConfigError::Invalid("batch_size must be at least 1".into()));
        }
        let api_tokens = api::compile_api_tokens(&file, &named)?;
        file.webhooks.validate()?;
        Ok(Settings {
            file,
            default,
            tenants,
            phone_ids,
            sms_numbers,
            api_tokens,
        })
    }

    /// The tenant whose `phone_number_ids` lists `id`. A webhook names its business number
    /// this way, and one no tenant lists is a misrouted subscription, not a tenant of its own.
    pub fn tenant_of_phone_number_id(&self, id: &str) -> Option<&TenantId> {
        self.phone_ids.get(id.trim())
    }

    /// The tenant whose `sms_numbers` lists the business number `to` (E.164 or a short code).
    pub fn tenant_of_sms_number(&self, to: &str) -> Option<&TenantId> {
        let key = webhooks::sms_key(to, self.default.region)?;
        self.sms_numbers.get(&key)
    }

    /// The principal a bearer token authenticates, if any. Only hashes are kept, so a leaked
    /// config or core dump does not leak usable tokens.
    pub fn api_principal(&self, token: &str) -> Option<&ApiPrincipal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.api_tokens.get(&digest)
    }

    pub fn api_max_body_bytes(&self) -> usize {
        let bytes = self.file.api.max_body_bytes.unwrap_or(64 << 20);
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }

    pub fn batch_size(&self) -> usize {
        self.file.batch_size.unwrap_or(1000)
    }

    /// The tenant a message belongs to: a mapped `phone_number_id` names its tenant, an
    /// unmapped one is itself the tenant id. This is where a decoded record's tenant is
    /// checked, once.
    pub fn resolve_tenant(&self, tenant: &TenantRef) -> Result<TenantId, UnknownTenant> {
        let tenant = match tenant {
            TenantRef::PhoneNumberId(id) => match self.phone_ids.get(id) {
                Some(mapped) => mapped.clone(),
                None => TenantId::new(id)?,
            },
            TenantRef::Name(name) => TenantId::new(name)?,
        };
        if self.file.strict_tenants && !self.tenants.contains_key(&tenant) {
            return Err(UnknownTenant::NotConfigured(tenant));
        }
        Ok(tenant)
    }

    /// The regions national numbers are read in: the defaults' and every tenant's.
    pub fn regions(&self) -> Vec<phonenumber::country::Id> {
        let mut regions: Vec<_> = std::iter::once(&self.default)
            .chain(self.tenants.values())
            .map(|p| p.region)
            .collect();
        regions.sort_unstable_by_key(|r| r.as_ref().to_string());
        regions.dedup();
        regions
    }

    /// A tenant's rules; a tenant without a table of its own gets the defaults.
    pub fn profile(&self, tenant: &TenantId) -> Arc<TenantProfile> {
        self.tenants
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }
}
