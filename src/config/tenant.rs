//! A tenant's table (`[defaults]`, `[tenants.NAME]`) and what it compiles into: the region,
//! keyword tables, policy, reply texts and analytics rules of one tenant. A tenant's field
//! overrides the default's, field by field.

use std::collections::BTreeMap;

use phonenumber::country;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::domain::analytics::AnomalyRules;
use crate::domain::clock::{ClockBounds, DEFAULT_MAX_SKEW_SECONDS};
use crate::domain::contact::parse_region;
use crate::domain::keywords::{KeywordOverrides, KeywordSet};
use crate::domain::policy::{Policy, TransactionalAfterOptOut};
use crate::domain::replies::{default_messages, MessageTexts, Messages};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    /// ISO 3166 region for national numbers (`0612345678` with `FR`).
    pub region: Option<String>,
    /// Enabled keyword languages, default language first.
    pub languages: Option<Vec<String>>,
    /// WhatsApp `metadata.phone_number_id`s that belong to this tenant.
    pub phone_number_ids: Vec<String>,
    /// The business's SMS numbers (E.164, a national spelling, or a short code): a Twilio
    /// message sent `To` one of them belongs to this tenant.
    pub sms_numbers: Vec<String>,
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
    /// How far past its recording time an event's time may be (default 300): senders' clocks
    /// drift a little, but a time further ahead would outrank every later STOP.
    pub max_clock_skew_seconds: Option<u32>,
    /// RFC 3339; no event is dated before it (default `2000-01-01T00:00:00Z`): an earlier time
    /// is a unit mistake or garbage.
    pub earliest_event_time: Option<String>,
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
    /// The bounds every source's times are held to.
    pub clock: ClockBounds,
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

pub(super) fn compile(
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
    let keywords = KeywordSet::new(&languages, &overrides).map_err(ConfigError::Keywords)?;
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
    let clock = clock_bounds(t, defaults)?;
    Ok(TenantProfile {
        region,
        languages,
        keywords,
        policy,
        messages,
        attribution_window: chrono::Duration::hours(i64::from(window_hours)),
        anomaly,
        clock,
    })
}

fn clock_bounds(
    t: &TenantConfig,
    defaults: Option<&TenantConfig>,
) -> Result<ClockBounds, ConfigError> {
    let builtin = ClockBounds::default();
    let skew = t
        .max_clock_skew_seconds
        .or_else(|| defaults.and_then(|d| d.max_clock_skew_seconds))
        .unwrap_or(DEFAULT_MAX_SKEW_SECONDS);
    if skew > 86_400 {
        return Err(ConfigError::Invalid(format!(
            "max_clock_skew_seconds = {skew}: expected 0 to 86400 (one day)"
        )));
    }
    let earliest = match t
        .earliest_event_time
        .as_ref()
        .or_else(|| defaults.and_then(|d| d.earliest_event_time.as_ref()))
    {
        None => builtin.earliest,
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| {
                ConfigError::Invalid(format!(
                    "earliest_event_time = {text:?}: expected an RFC 3339 time such as \"2000-01-01T00:00:00Z\" ({e})"
                ))
            })?
            .with_timezone(&chrono::Utc),
    };
    Ok(ClockBounds {
        max_skew: chrono::Duration::seconds(i64::from(skew)),
        earliest,
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
