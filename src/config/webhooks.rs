//! The `[webhooks]` table: the secrets that prove a request came from Meta or Twilio, and the
//! limits of the endpoints that receive them. Secrets are written as a value or as
//! `env:NAME`, so a config file can be committed and shared without them; they are read from
//! the environment only when the endpoints are served ([`WebhooksConfig::resolve`]), so that
//! `status` or `ingest` on an operator's shell does not need them, and never logged.

use std::fmt;

use phonenumber::country;
use serde::{Deserialize, Serialize};

use super::api::Rate;
use super::ConfigError;
use crate::domain::contact;

/// Meta's documented maximum webhook payload (3 MB), the default body limit.
const DEFAULT_MAX_BODY_BYTES: u64 = 3 << 20;

/// The `[webhooks]` table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Largest webhook body in bytes (default 3 MiB, Meta's maximum payload); larger gets 413.
    pub max_body_bytes: Option<u64>,
    /// Requests per client address to each webhook endpoint, `"50/s"`; past it 429 with
    /// `Retry-After` (Meta and Twilio retry later). Absent: no limit.
    pub rate_limit_per_source: Option<Rate>,
    pub whatsapp: Option<WhatsappConfig>,
    pub twilio: Option<TwilioConfig>,
}

/// `[webhooks.whatsapp]`: Meta's WhatsApp Cloud API webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappConfig {
    /// What Meta's subscription handshake must present (`hub.verify_token`).
    pub verify_token: Secret,
    /// The app secrets a notification may be signed with: several, so a secret can be
    /// rotated without refusing what Meta signed with the old one in the meantime.
    pub app_secrets: Vec<Secret>,
}

/// `[webhooks.twilio]`: Twilio Programmable Messaging's inbound message webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// Auth tokens a request may be signed with (primary and secondary, for rotation).
    pub auth_tokens: Vec<Secret>,
    /// The endpoint's URL as Twilio calls it (`https://sms.example.com/webhooks/twilio/sms`):
    /// Twilio signs the URL it requested, and a proxy in front of the service changes the
    /// scheme, host or path the service sees. The request's query string is appended.
    pub public_url: String,
}

/// A secret as written: the value itself, or `env:NAME` to read it from the environment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

/// Never the value: a config may be printed in a log or a panic.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.env_name() {
            Some(name) => write!(f, "Secret(env:{name})"),
            None => f.write_str("Secret(<redacted>)"),
        }
    }
}

impl Secret {
    pub fn new(written: impl Into<String>) -> Secret {
        Secret(written.into())
    }

    fn env_name(&self) -> Option<&str> {
        self.0.trim().strip_prefix("env:").map(str::trim)
    }

    fn check(&self, field: &str) -> Result<(), ConfigError> {
        match self.env_name() {
            Some(name) if !is_env_name(name) => Err(ConfigError::Invalid(format!(
                "{field}: {:?} is not an environment variable name (letters, digits and _)",
                name
            ))),
            None if self.0.trim().is_empty() => {
                Err(ConfigError::Invalid(format!("{field} is empty")))
            }
            _ => Ok(()),
        }
    }

    /// The value, read from `env` for an `env:NAME` reference.
    pub fn resolve(
        &self,
        field: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ConfigError> {
        let Some(name) = self.env_name() else {
            return Ok(self.0.trim().to_string());
        };
        match env(name) {
            Some(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
            _ => Err(ConfigError::Invalid(format!(
                "{field}: the environment variable {name} is not set (or is empty); \
                 set it, or remove the table to turn this webhook off"
            ))),
        }
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The secrets of the configured webhooks, read once when the endpoints are served.
#[derive(Clone)]
pub struct WebhookKeys {
    pub whatsapp: Option<WhatsappKeys>,
    pub twilio: Option<TwilioKeys>,
}

#[derive(Clone)]
pub struct WhatsappKeys {
    pub verify_token: String,
    pub app_secrets: Vec<Vec<u8>>,
}

#[derive(Clone)]
pub struct TwilioKeys {
    pub auth_tokens: Vec<Vec<u8>>,
    /// `public_url` without a `#` fragment (Twilio's connection overrides, never sent).
    pub public_url: String,
}

impl WebhooksConfig {
    pub fn max_body_bytes(&self) -> usize {
        let bytes = self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }

    /// What can be checked without the environment, when the file is read.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == Some(0) {
            return Err(ConfigError::Invalid(
                "webhooks.max_body_bytes must be at least 1".into(),
            ));
        }
        if let Some(w) = &self.whatsapp {
            w.verify_token.check("webhooks.whatsapp.verify_token")?;
            secrets("webhooks.whatsapp.app_secrets", &w.app_secrets)?;
        }
        if let Some(t) = &self.twilio {
            secrets("webhooks.twilio.auth_tokens", &t.auth_tokens)?;
            public_url(&t.public_url)?;
        }
        Ok(())
    }

    /// Reads every secret (`env:NAME` from `env`). Fails on the first one missing, naming it.
    pub fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<WebhookKeys, ConfigError> {
        self.validate()?;
        let all = |field: &str, list: &[Secret]| -> Result<Vec<Vec<u8>>, ConfigError> {
            list.iter()
                .enumerate()
                .map(|(i, s)| Ok(s.resolve(&format!("{field}[{i}]"), env)?.into_bytes()))
                .collect()
        };
        let whatsapp = match &self.whatsapp {
            None => None,
            Some(w) => Some(WhatsappKeys {
                verify_token: w
                    .verify_token
                    .resolve("webhooks.whatsapp.verify_token", env)?,
                app_secrets: all("webhooks.whatsapp.app_secrets", &w.app_secrets)?,
            }),
        };
        let twilio = match &self.twilio {
            None => None,
            Some(t) => Some(TwilioKeys {
                auth_tokens: all("webhooks.twilio.auth_tokens", &t.auth_tokens)?,
                public_url: public_url(&t.public_url)?,
            }),
        };
        Ok(WebhookKeys { whatsapp, twilio })
    }
}

fn secrets(field: &str, list: &[Secret]) -> Result<(), ConfigError> {
    if list.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "{field} is empty: list at least one"
        )));
    }
    for (i, s) in list.iter().enumerate() {
        s.check(&format!("{field}[{i}]"))?;
    }
    Ok(())
}

/// `public_url` checked (http or https, a host, no query) and without its fragment.
fn public_url(written: &str) -> Result<String, ConfigError> {
    let url = written.trim();
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let invalid = |why: &str| {
        ConfigError::Invalid(format!(
            "webhooks.twilio.public_url = {written:?}: {why} \
             (expected the URL Twilio calls, such as \"https://sms.example.com/webhooks/twilio/sms\")"
        ))
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("not an http or https URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    if url.contains('?') {
        return Err(invalid(
            "a query string here would be signed twice: the request's own query is appended",
        ));
    }
    Ok(url.to_string())
}

/// The key an SMS number is found under: E.164 for a number (a national spelling read in
/// `region`), the digits for a short code (3 to 8 digits, which have no country code).
pub(super) fn sms_key(input: &str, region: country::Id) -> Option<String> {
    let trimmed = input.trim();
    let digits = trimmed.chars().all(|c| c.is_ascii_digit());
    if digits && (3..=8).contains(&trimmed.len()) {
        return Some(trimmed.to_string());
    }
    contact::normalize(trimmed, region)
        .ok()
        .filter(|c| !c.is_user_id())
        .map(|c| c.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "META_SECRET").then(|| "s3cret".to_string())
    }

    fn parse(text: &str) -> WebhooksConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn secrets_are_values_or_env_references_and_never_printed() {
        let c = parse(
            "[whatsapp]\nverify_token = \"hello\"\napp_secrets = [\"env:META_SECRET\", \"old\"]\n",
        );
        let keys = c.resolve(&env).unwrap();
        let w = keys.whatsapp.unwrap();
        assert_eq!(w.verify_token, "hello");
        assert_eq!(w.app_secrets, vec![b"s3cret".to_vec(), b"old".to_vec()]);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hello") && !shown.contains("old\""),
            "{shown}"
        );
        assert!(shown.contains("env:META_SECRET"), "{shown}");
    }

    #[test]
    fn a_missing_variable_is_named_when_served() {
        let c = parse("[whatsapp]\nverify_token = \"env:NOPE\"\napp_secrets = [\"x\"]\n");
        assert!(c.validate().is_ok());
        let e = c.resolve(&env).err().unwrap().to_string();
        assert!(e.contains("NOPE") && e.contains("verify_token"), "{e}");
    }

    #[test]
    fn empty_lists_bad_names_and_bad_urls_are_refused_when_read() {
        for bad in [
            "[whatsapp]\nverify_token = \"t\"\napp_secrets = []\n",
            "[whatsapp]\nverify_token = \"env:1BAD\"\napp_secrets = [\"x\"]\n",
            "[whatsapp]\nverify_token = \"\"\napp_secrets = [\"x\"]\n",
            "[twilio]\nauth_tokens = [\"t\"]\npublic_url = \"sms.example.com/x\"\n",
            "[twilio]\nauth_tokens = [\"t\"]\npublic_url = \"https:///x\"\n",
            "[twilio]\nauth_tokens = [\"t\"]\npublic_url = \"https://h/x?tenant=a\"\n",
            "max_body_bytes = 0\n",
        ] {
            assert!(parse(bad).validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn twilio_public_url_loses_its_connection_override_fragment() {
        let c = parse(
            "[twilio]\nauth_tokens = [\"t\"]\npublic_url = \"https://h:8443/webhooks/twilio/sms#rc=3&rp=all\"\n",
        );
        let t = c.resolve(&env).unwrap().twilio.unwrap();
        assert_eq!(t.public_url, "https://h:8443/webhooks/twilio/sms");
    }

    #[test]
    fn sms_numbers_are_keyed_in_e164_and_short_codes_as_digits() {
        let fr = country::Id::FR;
        assert_eq!(
            sms_key("06 12 34 56 78", fr).as_deref(),
            Some("+33612345678")
        );
        assert_eq!(
            sms_key("+1 415 555 0100", fr).as_deref(),
            Some("+14155550100")
        );
        assert_eq!(sms_key("38123", fr).as_deref(), Some("38123"));
        assert_eq!(sms_key("hello", fr), None);
        assert_eq!(sms_key("US.13491208655302741918", fr), None);
    }
}
