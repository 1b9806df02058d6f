//! `POST /webhooks/twilio/sms`: an inbound message of Twilio Programmable Messaging (SMS, or
//! WhatsApp through Twilio), form-encoded, turned into one normalized inbound record.
//!
//! The answer is empty TwiML: confirmations go out through the outbound topic or file like
//! every other reply, so nothing is ever sent twice. When Twilio's Advanced Opt-Out matched
//! (`OptOutType=STOP`) the record carries `provider_opt_out: "STOP"`: the ledger records the
//! opt-out whatever the text, and sends no confirmation, since Twilio sent one.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::{not_configured, read_body, signature, unavailable, Part, Provider, Webhooks};
use crate::api::problem::Problem;
use crate::api::AppState;
use crate::config::{Settings, TwilioKeys};
use crate::domain::contact;
use crate::domain::inbound::{DecodeError, NormalizedInbound};
use crate::pipeline::Rejection;

/// Empty TwiML: Twilio sends nothing in reply.
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

/// Receive an inbound message from Twilio.
///
/// `X-Twilio-Signature` must be Twilio's signature of `webhooks.twilio.public_url` (plus this
/// request's query string) followed by the POST parameters sorted by name, under one of
/// `webhooks.twilio.auth_tokens`. The tenant is the one whose `sms_numbers` lists `To`. The
/// answer is empty TwiML once the record is durable; a signed message that cannot be used is
/// answered the same and dead-lettered.
#[utoipa::path(post, path = "/webhooks/twilio/sms", tag = "webhooks",
    params(("X-Twilio-Signature" = String, Header, description = "base64 HMAC-SHA1 of the URL and the sorted parameters under the auth token")),
    request_body(content = String, description = "Twilio's form: MessageSid, From, To, Body, OptOutType…",
        content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Durable: empty TwiML", body = String, content_type = "text/xml"),
        (status = 401, description = "Missing or wrong signature", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "`[webhooks.twilio]` is not configured", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "Body over `webhooks.max_body_bytes`", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "Not form-encoded", body = Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "Over `webhooks.rate_limit_per_source`", body = Problem,
            content_type = "application/problem+json"),
        (status = 503, description = "Not durable (ledger or broker)", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn inbound(State(state): State<AppState>, request: Request) -> Result<Response, Problem> {
    let (hooks, keys) = configured(&state)?;
    let (parts, body) = request.into_parts();
    hooks.check_rate(Provider::Twilio, &parts)?;
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(Problem::unsupported_media_type(
            "Twilio posts application/x-www-form-urlencoded",
        ));
    }
    let body = read_body(&parts.headers, body, hooks.max_body).await?;
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let url = match parts.uri.query() {
        Some(query) => format!("{}?{query}", keys.public_url),
        None => keys.public_url.clone(),
    };
    let signed = parts
        .headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| signature::twilio_valid(&url, &params, v, &keys.auth_tokens));
    if !signed {
        return Err(hooks.refused(Provider::Twilio, "X-Twilio-Signature"));
    }
    let record = part(&state.settings, &params, &body, Utc::now());
    match hooks.deliver(Provider::Twilio, vec![record]).await {
        Ok(_) => {
            let mut res = (StatusCode::OK, EMPTY_TWIML).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/xml; charset=utf-8"),
            );
            Ok(res)
        }
        Err(e) => Err(unavailable(Provider::Twilio, &e)),
    }
}

fn configured(state: &AppState) -> Result<(&Webhooks, &TwilioKeys), Problem> {
    let hooks = state.webhooks.as_deref();
    hooks
        .and_then(|h| Some((h, h.keys.twilio.as_ref()?)))
        .ok_or_else(|| not_configured("webhooks.twilio"))
}

/// Twilio's parameters as a normalized inbound record, received `now` (Twilio's inbound
/// webhook carries no time of its own), or the form itself with why it cannot be one.
fn part(settings: &Settings, params: &[(String, String)], raw: &[u8], now: DateTime<Utc>) -> Part {
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let unusable = |error: DecodeError| Part::Unusable {
        bytes: raw.to_vec(),
        rejection: Rejection { error, path: None },
    };
    let missing = |field: &str| DecodeError::Invalid {
        what: "Twilio message",
        detail: format!("missing {field}"),
    };
    let Some(message_id) = get("MessageSid").or_else(|| get("SmsSid")) else {
        return unusable(missing("MessageSid"));
    };
    let (Some(from), Some(to)) = (get("From"), get("To")) else {
        return unusable(missing("From or To"));
    };
    let (channel, from) = address(from);
    let (_, to) = address(to);
    let Some(tenant) = settings.tenant_of_sms_number(to) else {
        return unusable(DecodeError::UnlistedNumber {
            field: "To",
            value: to.to_string(),
            list: "sms_numbers",
        });
    };
    let opted_out = get("OptOutType").is_some_and(|t| t.eq_ignore_ascii_case("STOP"));
    let text = params
        .iter()
        .find(|(n, _)| n == "Body")
        .map(|(_, v)| v.clone());
    let record = NormalizedInbound {
        record_type: "inbound".into(),
        tenant: tenant.to_string(),
        channel: channel.into(),
        message_id: message_id.to_string(),
        from: from.to_string(),
        from_user_id: None,
        received_at: Some(now.to_rfc3339()),
        text: Some(text.unwrap_or_default()),
        button_payload: get("ButtonPayload").map(str::to_string),
        context_message_id: get("OriginalRepliedMessageSid").map(str::to_string),
        campaign_id: None,
        language: None,
        provider_opt_out: opted_out.then(|| "STOP".to_string()),
    };
    let region = settings.profile(tenant).region;
    let person = contact::normalize(from, region).map_or(from.to_string(), |c| c.to_string());
    Part::Record {
        key: format!("{tenant}:{person}"),
        bytes: serde_json::to_vec(&record).expect("plain struct"),
    }
}

/// The channel and number of a Twilio address: `whatsapp:+1415…` is WhatsApp through
/// Twilio, a bare number SMS.
fn address(value: &str) -> (&'static str, &str) {
    match value.split_once(':') {
        Some(("whatsapp", number)) => ("whatsapp", number.trim()),
        _ => ("sms", value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inbound::{decode, Content, Item};

    fn settings() -> Settings {
        Settings::from_file(
            toml::from_str(
                "[tenants.acme]\nregion = \"US\"\nsms_numbers = [\"+1 415 555 0100\", \"38123\"]\n",
            )
            .unwrap(),
        )
        .unwrap()
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_advanced_opt_out_becomes_a_provider_opt_out_record_keyed_by_the_sender() {
        let p = form(&[
            ("MessageSid", "SM1"),
            ("From", "+14155550111"),
            ("To", "+14155550100"),
            ("Body", "Unsubscribe me pls"),
            ("OptOutType", "STOP"),
        ]);
        let Part::Record { key, bytes } = part(&settings(), &p, b"raw", Utc::now()) else {
            panic!()
        };
        assert_eq!(key, "acme:+14155550111");
        let record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(record["provider_opt_out"], "STOP");
        assert_eq!(record["tenant"], "acme");
        let items = decode(&bytes).unwrap();
        let [Item::Message(m)] = items.as_slice() else {
            panic!("{record}")
        };
        assert!(
            matches!(&m.content, Content::ProviderOptOut { text, .. } if text == "Unsubscribe me pls")
        );
    }

    #[test]
    fn a_short_code_and_whatsapp_through_twilio_find_their_tenant() {
        let p = form(&[
            ("MessageSid", "SM2"),
            ("From", "whatsapp:+14155550111"),
            ("To", "38123"),
            ("Body", "hi"),
        ]);
        let Part::Record { bytes, .. } = part(&settings(), &p, b"raw", Utc::now()) else {
            panic!()
        };
        let record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            (record["channel"].as_str(), record["from"].as_str()),
            (Some("whatsapp"), Some("+14155550111"))
        );
        assert!(record.get("provider_opt_out").is_none());
    }

    #[test]
    fn an_unlisted_number_or_a_form_without_sid_is_kept_with_its_reason() {
        let p = form(&[
            ("MessageSid", "SM3"),
            ("From", "+14155550111"),
            ("To", "+14155550199"),
            ("Body", "STOP"),
        ]);
        let Part::Unusable { rejection, bytes } = part(&settings(), &p, b"raw", Utc::now()) else {
            panic!()
        };
        assert_eq!(
            (rejection.error.code(), bytes.as_slice()),
            ("unknown_tenant", &b"raw"[..])
        );
        let p = form(&[("From", "+14155550111"), ("To", "+14155550100")]);
        assert!(matches!(
            part(&settings(), &p, b"raw", Utc::now()),
            Part::Unusable { .. }
        ));
    }
}
