//! Settings: a TOML file (see README "Configuration") plus environment overrides, validated
//! once at start so that a typo in a keyword list or a region code stops the service before it
//! processes a single message rather than silently dropping STOPs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use phonenumber::country;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::analytics::AnomalyRules;
use crate::domain::contact::{parse_region, validate_tenant};
use crate::domain::inbound::TenantRef;
use crate::domain::keywords::{KeywordOverrides, KeywordSet};
use crate::domain::policy::{Policy, TransactionalAfterOptOut};
use crate::domain::replies::{default_messages, MessageTexts, Messages};

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
    /// Records per ledger batch (one sled transaction and one fsync each).
    pub batch_size: Option<usize>,
    /// The HTTP API: body limit and admin tokens (tenant tokens live in their tenant table).
    pub api: ApiConfig,
    /// Kafka mode (`consent-ledger run`): brokers, group, topics, librdkafka properties.
    pub kafka: crate::pipeline::kafka::settings::KafkaConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    /// ISO 3166 region for national numbers (`0612345678` with `FR`).
    pub region: Option<String>,
    /// Enabled keyword languages, default language first.
    pub languages: Option<Vec<String>>,
    /// WhatsApp `metadata.phone_number_id`s that belong to this tenant.
    pub phone_number_ids: Vec<String>,
    pub marketing_requires_opt_in: Option<bool>,
    pub transactional_after_optout: Option<TransactionalAfterOptOut>,
    /// Per-language keyword additions and removals.
    pub keywords: BTreeMap<String, KeywordOverrides>,
    /// Per-language reply texts; missing ones fall back to the built-in texts.
    pub messages: BTreeMap<String, MessageTexts>,
    /// SHA-256 (hex) of the bearer tokens that may use this tenant's HTTP API. Hashes, not
    /// tokens, so the config file can be read by operators without granting access:
    /// `printf %s "$TOKEN" | sha256sum`. Several, so a token can be rotated without downtime.
    pub api_tokens_sha256: Vec<String>,
    /// How long after a marketing send an opt-out without a reply context is still blamed on
    /// it (default 72): long enough for a customer who reads the message the next evening,
    /// short enough that last month's newsletter is not blamed for today's STOP.
    pub attribution_window_hours: Option<u32>,
    /// When a campaign's opt-out rate is flagged as abnormal (`stats`, `/campaigns`).
    pub anomaly: AnomalyConfig,
}

/// The `anomaly` table of `[defaults]` or a tenant; a tenant's field overrides the default's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Flag above this multiple of the tenant's median campaign opt-out rate (default 3).
    pub rate_multiple: Option<f64>,
    /// ... and above this opt-out rate in percent (default 1.0).
    pub min_rate_percent: Option<f64>,
    /// ... and with at least this many sends (default 200).
    pub min_sent: Option<u64>,
}

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
    Tenant(String),
}

/// One tenant's compiled rules.
#[derive(Debug)]
pub struct TenantProfile {
    pub region: country::Id,
    pub languages: Vec<String>,
    pub keywords: KeywordSet,
    pub policy: Policy,
    pub messages: BTreeMap<String, Messages>,
    pub attribution_window: chrono::Duration,
    pub anomaly: AnomalyRules,
}

impl TenantProfile {
    /// Replies go out in the customer's language when we have texts for it, else in the
    /// tenant's default language: a confirmation in the wrong language beats none.
    pub fn messages_for(&self, language: Option<&str>) -> (&str, &Messages) {
        if let Some((lang, m)) = language.and_then(|l| self.messages.get_key_value(l)) {
            return (lang.as_str(), m);
        }
        let first = self.languages.first().map(String::as_str).unwrap_or("en");
        match self.messages.get_key_value(first) {
            Some((lang, m)) => (lang.as_str(), m),
            None => {
                let (lang, m) = self.messages.iter().next().expect("validated: never empty");
                (lang.as_str(), m)
            }
        }
    }
}

/// Validated settings, shared by every stage.
#[derive(Debug)]
pub struct Settings {
    pub file: ConfigFile,
    default: Arc<TenantProfile>,
    tenants: HashMap<String, Arc<TenantProfile>>,
    phone_ids: HashMap<String, String>,
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
        let default = Arc::new(compile(&file.defaults, None)?);
        let mut tenants = HashMap::new();
        let mut phone_ids = HashMap::new();
        for (name, t) in &file.tenants {
            validate_tenant(name).map_err(ConfigError::Invalid)?;
            tenants.insert(name.clone(), Arc::new(compile(t, Some(&file.defaults))?));
            for id in &t.phone_number_ids {
                if let Some(other) = phone_ids.insert(id.clone(), name.clone()) {
                    return Err(ConfigError::Invalid(format!(
                        "phone_number_id {id} is listed under both tenants {other} and {name}"
                    )));
                }
            }
        }
        if file.batch_size == Some(0) {
            return Err(ConfigError::Invalid("batch_size must be at least 1".into()));
        }
        let api_tokens = compile_api_tokens(&file)?;
        Ok(Settings {
            file,
            default,
            tenants,
            phone_ids,
            api_tokens,
        })
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

    /// The tenant a message belongs to.
    pub fn resolve_tenant(&self, tenant: &TenantRef) -> Result<String, String> {
        let name = match tenant {
            TenantRef::PhoneNumberId(id) => self
                .phone_ids
                .get(id)
                .cloned()
                .unwrap_or_else(|| id.clone()),
            TenantRef::Name(name) => name.clone(),
        };
        validate_tenant(&name)?;
        if self.file.strict_tenants && !self.tenants.contains_key(&name) {
            return Err(format!(
                "{name} has no [tenants.{name}] table and strict_tenants is on"
            ));
        }
        Ok(name)
    }

    pub fn profile(&self, tenant: &str) -> Arc<TenantProfile> {
        self.tenants
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }
}

/// Token hashes by principal. A hash listed twice would make one token mean two things, and a
/// token in `[defaults]` would open every tenant to it: both are refused at start.
fn compile_api_tokens(file: &ConfigFile) -> Result<HashMap<[u8; 32], ApiPrincipal>, ConfigError> {
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
        .chain(file.tenants.iter().flat_map(|(name, t)| {
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

fn compile(
    t: &TenantConfig,
    defaults: Option<&TenantConfig>,
) -> Result<TenantProfile, ConfigError> {
    let pick = |f: fn(&TenantConfig) -> Option<String>| f(t).or_else(|| defaults.and_then(f));
    let region_code = pick(|c| c.region.clone()).unwrap_or_else(|| "FR".into());
    let region = parse_region(&region_code).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let languages = t
        .languages
        .clone()
        .or_else(|| defaults.and_then(|d| d.languages.clone()))
        .unwrap_or_else(|| vec!["fr".into(), "en".into()]);
    if languages.is_empty() {
        return Err(ConfigError::Invalid(
            "languages must name at least one language".into(),
        ));
    }
    let mut overrides = defaults.map(|d| d.keywords.clone()).unwrap_or_default();
    overrides.extend(t.keywords.clone());
    let keywords = KeywordSet::new(&languages, &overrides).map_err(ConfigError::Invalid)?;
    let policy = Policy {
        marketing_requires_opt_in: t
            .marketing_requires_opt_in
            .or_else(|| defaults.and_then(|d| d.marketing_requires_opt_in))
            .unwrap_or(false),
        transactional_after_optout: t
            .transactional_after_optout
            .or_else(|| defaults.and_then(|d| d.transactional_after_optout))
            .unwrap_or_default(),
    };
    let mut messages = default_messages();
    let configured = defaults
        .map(|d| d.messages.iter())
        .into_iter()
        .flatten()
        .chain(&t.messages);
    for (lang, texts) in configured {
        let base = messages.get(lang).or_else(|| messages.get("en")).cloned();
        messages.insert(
            lang.clone(),
            texts.over(base.expect("built-in English texts")),
        );
    }
    for (lang, m) in &messages {
        m.validate()
            .map_err(|e| ConfigError::Invalid(format!("messages.{lang}: {e}")))?;
    }
    let window_hours = t
        .attribution_window_hours
        .or_else(|| defaults.and_then(|d| d.attribution_window_hours))
        .unwrap_or(72);
    if !(1..=24 * 90).contains(&window_hours) {
        return Err(ConfigError::Invalid(format!(
            "attribution_window_hours = {window_hours}: expected 1 to 2160 (90 days)"
        )));
    }
    let anomaly = anomaly_rules(&t.anomaly, defaults.map(|d| &d.anomaly))?;
    Ok(TenantProfile {
        region,
        languages,
        keywords,
        policy,
        messages,
        attribution_window: chrono::Duration::hours(i64::from(window_hours)),
        anomaly,
    })
}

fn anomaly_rules(
    t: &AnomalyConfig,
    defaults: Option<&AnomalyConfig>,
) -> Result<AnomalyRules, ConfigError> {
    let builtin = AnomalyRules::default();
    let rules = AnomalyRules {
        rate_multiple: t
            .rate_multiple
            .or_else(|| defaults.and_then(|d| d.rate_multiple))
            .unwrap_or(builtin.rate_multiple),
        min_rate_percent: t
            .min_rate_percent
            .or_else(|| defaults.and_then(|d| d.min_rate_percent))
            .unwrap_or(builtin.min_rate_percent),
        min_sent: t
            .min_sent
            .or_else(|| defaults.and_then(|d| d.min_sent))
            .unwrap_or(builtin.min_sent),
    };
    if !(rules.rate_multiple.is_finite() && rules.rate_multiple >= 1.0) {
        return Err(ConfigError::Invalid(format!(
            "anomaly.rate_multiple = {}: expected a number of at least 1",
            rules.rate_multiple
        )));
    }
    if !(0.0..=100.0).contains(&rules.min_rate_percent) {
        return Err(ConfigError::Invalid(format!(
            "anomaly.min_rate_percent = {}: expected 0 to 100",
            rules.min_rate_percent
        )));
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_file(toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?)
    }

    #[test]
    fn empty_config_is_valid_with_french_defaults() {
        let s = parse("").unwrap();
        let p = s.profile("anyone");
        assert_eq!(p.region, country::Id::FR);
        assert_eq!(p.languages, vec!["fr", "en"]);
        assert!(p
            .messages_for(None)
            .1
            .opt_out_confirmation
            .starts_with("C'est noté"));
    }

    #[test]
    fn phone_number_ids_map_to_tenants() {
        let s = parse("[tenants.acme]\nphone_number_ids = [\"106540352242922\"]\n").unwrap();
        let t = TenantRef::PhoneNumberId("106540352242922".into());
        assert_eq!(s.resolve_tenant(&t).unwrap(), "acme");
        let other = TenantRef::PhoneNumberId("999".into());
        assert_eq!(s.resolve_tenant(&other).unwrap(), "999");
    }

    #[test]
    fn strict_tenants_rejects_unknown_ones() {
        let s = parse("strict_tenants = true\n[tenants.acme]\n").unwrap();
        assert!(s.resolve_tenant(&TenantRef::Name("acme".into())).is_ok());
        assert!(s.resolve_tenant(&TenantRef::Name("other".into())).is_err());
    }

    #[test]
    fn typos_are_reported_at_start() {
        assert!(parse("[tenants.acme]\nregion = \"XX9\"\n").is_err());
        assert!(parse("[tenants.acme]\nlanguages = [\"klingon\"]\n").is_err());
        assert!(parse("[tenants.acme]\nmarketing_requires_optin = true\n").is_err());
        assert!(parse(
            "[tenants.a]\nphone_number_ids=[\"1\"]\n[tenants.b]\nphone_number_ids=[\"1\"]\n"
        )
        .is_err());
    }

    #[test]
    fn api_tokens_are_stored_as_hashes_per_tenant_and_admin() {
        let hash = |t: &str| hex::encode(Sha256::digest(t));
        let s = parse(&format!(
            "[api]\nmax_body_bytes = 1024\nadmin_tokens_sha256 = [\"{}\"]\n\
             [tenants.acme]\napi_tokens_sha256 = [\"{}\", \"{}\"]\n",
            hash("root"),
            hash("acme-1"),
            hash("acme-2").to_uppercase()
        ))
        .unwrap();
        assert_eq!(s.api_principal("root"), Some(&ApiPrincipal::Admin));
        let acme = ApiPrincipal::Tenant("acme".into());
        assert_eq!(s.api_principal("acme-1"), Some(&acme));
        assert_eq!(s.api_principal("acme-2"), Some(&acme));
        assert_eq!(s.api_principal("acme-3"), None);
        assert_eq!(s.api_principal(""), None);
        assert_eq!(s.api_max_body_bytes(), 1024);
        assert_eq!(parse("").unwrap().api_max_body_bytes(), 64 << 20);
    }

    #[test]
    fn bad_api_tokens_are_reported_at_start() {
        let h = hex::encode(Sha256::digest("t"));
        // Not hex, a plain token pasted by mistake, and a typo in the [api] table.
        assert!(parse("[tenants.a]\napi_tokens_sha256 = [\"secret\"]\n").is_err());
        assert!(parse("[api]\nmax_body_byte = 1\n").is_err());
        // One token for two principals.
        assert!(parse(&format!(
            "[api]\nadmin_tokens_sha256 = [\"{h}\"]\n[tenants.a]\napi_tokens_sha256 = [\"{h}\"]\n"
        ))
        .is_err());
        // A token in [defaults] would open every tenant.
        assert!(parse(&format!("[defaults]\napi_tokens_sha256 = [\"{h}\"]\n")).is_err());
    }

    #[test]
    fn attribution_window_and_anomaly_rules_inherit_per_field() {
        let s = parse(
            "[defaults]\nattribution_window_hours = 48\n[defaults.anomaly]\nrate_multiple = 4.0\n\
             [tenants.acme]\n[tenants.acme.anomaly]\nmin_sent = 50\n[tenants.globex]\nattribution_window_hours = 24\n",
        )
        .unwrap();
        let acme = s.profile("acme");
        assert_eq!(acme.attribution_window, chrono::Duration::hours(48));
        assert_eq!(
            (
                acme.anomaly.rate_multiple,
                acme.anomaly.min_rate_percent,
                acme.anomaly.min_sent
            ),
            (4.0, 1.0, 50)
        );
        assert_eq!(
            s.profile("globex").attribution_window,
            chrono::Duration::hours(24)
        );
        assert_eq!(
            parse("").unwrap().profile("x").attribution_window,
            chrono::Duration::hours(72)
        );
        assert!(parse("[defaults]\nattribution_window_hours = 0\n").is_err());
        assert!(parse("[defaults.anomaly]\nrate_multiple = 0.5\n").is_err());
        assert!(parse("[defaults.anomaly]\nmin_rate = 1\n").is_err());
    }

    #[test]
    fn tenant_inherits_and_overrides_defaults() {
        let s = parse(
            "[defaults]\nregion = \"US\"\ntransactional_after_optout = \"block\"\n\
             [tenants.acme]\nlanguages = [\"en\"]\n[tenants.acme.messages.en]\n\
             opt_out_confirmation = \"Bye!\"\n",
        )
        .unwrap();
        let p = s.profile("acme");
        assert_eq!(p.region, country::Id::US);
        assert_eq!(
            p.policy.transactional_after_optout,
            TransactionalAfterOptOut::Block
        );
        let (lang, m) = p.messages_for(Some("nl"));
        assert_eq!((lang, m.opt_out_confirmation.as_str()), ("en", "Bye!"));
    }
}
