use phonenumber::country;
use sha2::{Digest, Sha256};

use std::time::Duration;

use super::api::{Per, Rate};
use super::*;
use crate::domain::event::tests::tenant;
use crate::domain::policy::TransactionalAfterOptOut;

fn parse(text: &str) -> Result<Settings, ConfigError> {
    Settings::from_file(toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?)
}

#[test]
fn empty_config_is_valid_with_french_defaults() {
    let s = parse("").unwrap();
    let p = s.profile(&tenant("anyone"));
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
    let acme = ApiPrincipal::Tenant(tenant("acme"));
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
fn api_timeouts_and_limits_have_defaults_and_refuse_zero_or_garbage_at_start() {
    let s = parse("").unwrap();
    let api = &s.file.api;
    assert_eq!(api.header_timeout(), Duration::from_secs(10));
    assert_eq!(api.idle_timeout(), Duration::from_secs(60));
    assert_eq!(api.body_timeout(), Duration::from_secs(30));
    assert_eq!(
        (api.max_connections, api.rate_limit_per_token),
        (None, None)
    );

    let s = parse(
        "[api]\nheader_timeout_secs = 2\nidle_timeout_secs = 3\nbody_timeout_secs = 4\n\
         max_connections = 500\nrate_limit_per_token = \"100/s\"\n",
    )
    .unwrap();
    let api = &s.file.api;
    assert_eq!(api.header_timeout(), Duration::from_secs(2));
    assert_eq!(api.idle_timeout(), Duration::from_secs(3));
    assert_eq!(api.body_timeout(), Duration::from_secs(4));
    assert_eq!(api.max_connections.map(|n| n.get()), Some(500));
    let rate = api.rate_limit_per_token.unwrap();
    assert_eq!((rate.requests.get(), rate.per), (100, Per::Second));
    for (text, per) in [(" 600 / m", Per::Minute), ("5/h", Per::Hour)] {
        assert_eq!(text.parse::<Rate>().unwrap().per, per);
    }
    // Written back as read, so a config round-trips.
    let written = toml::to_string(api).unwrap();
    assert!(
        written.contains("rate_limit_per_token = \"100/s\""),
        "{written}"
    );

    for bad in [
        "header_timeout_secs = 0",
        "idle_timeout_secs = -1",
        "body_timeout_secs = 0",
        "max_connections = 0",
        "rate_limit_per_token = \"0/s\"",
        "rate_limit_per_token = \"100\"",
        "rate_limit_per_token = \"100/d\"",
        "rate_limit_per_token = \"lots/s\"",
    ] {
        let err = parse(&format!("[api]\n{bad}\n")).unwrap_err().to_string();
        let field = bad.split(' ').next().unwrap();
        assert!(err.contains(field) || err.contains("rate"), "{bad}: {err}");
    }
}

#[test]
fn attribution_window_and_anomaly_rules_inherit_per_field() {
    let s = parse(
        "[defaults]\nattribution_window_hours = 48\n[defaults.anomaly]\nrate_multiple = 4.0\n\
         [tenants.acme]\n[tenants.acme.anomaly]\nmin_sent = 50\n[tenants.globex]\nattribution_window_hours = 24\n",
    )
    .unwrap();
    let acme = s.profile(&tenant("acme"));
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
        s.profile(&tenant("globex")).attribution_window,
        chrono::Duration::hours(24)
    );
    assert_eq!(
        parse("").unwrap().profile(&tenant("x")).attribution_window,
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
    let p = s.profile(&tenant("acme"));
    assert_eq!(p.region, country::Id::US);
    assert_eq!(
        p.policy.transactional_after_optout,
        TransactionalAfterOptOut::Block
    );
    let (lang, m) = p.messages_for(Some("nl"));
    assert_eq!((lang, m.opt_out_confirmation.as_str()), ("en", "Bye!"));
}

#[test]
fn clock_bounds_default_and_override_per_tenant() {
    use crate::domain::clock::ClockBounds;
    let s = parse(
        "[defaults]\nearliest_event_time = \"2010-01-01T00:00:00+01:00\"\n\
         [tenants.acme]\nmax_clock_skew_seconds = 60\n",
    )
    .unwrap();
    let acme = s.profile(&tenant("acme")).clock;
    assert_eq!(acme.max_skew, chrono::Duration::seconds(60));
    assert_eq!(acme.earliest.to_rfc3339(), "2009-12-31T23:00:00+00:00");
    let other = s.profile(&tenant("other")).clock;
    assert_eq!(other.max_skew, ClockBounds::default().max_skew);
    assert_eq!(
        parse("").unwrap().profile(&tenant("x")).clock,
        ClockBounds::default()
    );
    for bad in [
        "[defaults]\nmax_clock_skew_seconds = 86401\n",
        "[defaults]\nearliest_event_time = \"2000\"\n",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn sms_numbers_find_their_tenant_in_any_spelling_and_belong_to_one() {
    let s = parse(
        "[tenants.acme]\nregion = \"FR\"\nsms_numbers = [\"06 12 34 56 78\", \"38123\"]\n\
         [tenants.globex]\nregion = \"US\"\nsms_numbers = [\"(415) 555-0100\"]\n",
    )
    .unwrap();
    assert_eq!(s.tenant_of_sms_number("+33612345678").unwrap(), "acme");
    assert_eq!(s.tenant_of_sms_number("38123").unwrap(), "acme");
    assert_eq!(s.tenant_of_sms_number("+14155550100").unwrap(), "globex");
    assert!(s.tenant_of_sms_number("+14155550199").is_none());
    assert!(parse("[tenants.a]\nsms_numbers = [\"+33612345678\"]\n[tenants.b]\nsms_numbers = [\"0612345678\"]\n").is_err());
    assert!(parse("[tenants.a]\nsms_numbers = [\"not a number\"]\n").is_err());
    assert!(parse("[defaults]\nsms_numbers = [\"+33612345678\"]\n").is_err());
}

#[test]
fn webhook_phone_number_ids_are_only_the_listed_ones() {
    let s = parse("[tenants.acme]\nphone_number_ids = [\"106540352242922\"]\n").unwrap();
    assert_eq!(
        s.tenant_of_phone_number_id("106540352242922").unwrap(),
        "acme"
    );
    assert!(s.tenant_of_phone_number_id("999").is_none());
    // A [webhooks] table with an empty secret list stops the service when it is read.
    assert!(parse("[webhooks.whatsapp]\nverify_token = \"t\"\napp_secrets = []\n").is_err());
}
