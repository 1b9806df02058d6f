//! `POST /webhooks/twilio/sms` under `serve`: Twilio's signature (its documented example, a
//! URL with a port and a query string, a missing one), empty TwiML, the tenant found from
//! `To`, and Twilio's own opt-out recorded without a confirmation of ours.

use super::*;
use crate::api_util::problem;
use crate::common::read_jsonl;
use crate::common::webhooks::twilio_signature;

const CUSTOMER: &str = "+14155550111";

fn message<'a>(sid: &'a str, from: &'a str, body: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("From", from),
        ("To", SMS_NUMBER),
        ("Body", body),
        ("NumMedia", "0"),
    ]
}

async fn twiml(res: Response) -> String {
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/xml"), "{content_type}");
    res.text().await.unwrap()
}

/// Twilio's security documentation signs a POST to
/// `https://mycompany.com/myapp.php?foo=1&bar=2` with auth token `12345` and these
/// parameters as `RSOYDt4T1cUTdK1PDd93/VVr8B8=`. The value is written here as published,
/// not computed, so the service is held to Twilio's algorithm, not to our reading of it.
#[tokio::test]
async fn twilios_documented_example_is_accepted_as_signed() {
    let toml = "[tenants.acme]\nsms_numbers = [\"+18005551212\"]\n\
                [webhooks.twilio]\nauth_tokens = [\"12345\"]\npublic_url = \"https://mycompany.com/myapp.php\"\n";
    let hooked = Hooked::start(toml).await;
    let params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ];
    let signed = Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=".to_string());
    let res = hooked
        .twilio("/webhooks/twilio/sms?foo=1&bar=2", &params, signed.clone())
        .await;
    assert!(twiml(res).await.contains("<Response/>"));
    // A voice call's parameters are no message: signed, so dead-lettered rather than refused.
    let dead = hooked.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("MessageSid"),
        "{}",
        dead[0]
    );
    assert_eq!(dead[0]["source"]["file"], "webhook:twilio");
    // The same signature over another query string or another digit is refused.
    problem(
        hooked
            .twilio("/webhooks/twilio/sms?foo=1&bar=3", &params, signed.clone())
            .await,
        401,
    )
    .await;
    let mut changed = params;
    changed[2].1 = "1235";
    problem(
        hooked
            .twilio("/webhooks/twilio/sms?foo=1&bar=2", &changed, signed)
            .await,
        401,
    )
    .await;
    hooked.stop().await;
}

#[tokio::test]
async fn a_url_with_a_port_and_a_query_string_is_signed_as_twilio_requested_it() {
    let public = "https://sms.example.com:8443/webhooks/twilio/sms";
    let toml = config("").replace(PUBLIC_URL, public);
    let hooked = Hooked::start(&toml).await;
    let params = message("SM00000000000000000000000000000001", CUSTOMER, "STOP");
    let full = format!("{public}?tenant=acme&v=2");
    let res = hooked
        .twilio(
            "/webhooks/twilio/sms?tenant=acme&v=2",
            &params,
            Some(twilio_signature(AUTH_TOKEN, &full, &params)),
        )
        .await;
    assert_eq!(
        twiml(res).await,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>"
    );
    assert_eq!(hooked.consent(CUSTOMER).await["status"], "opted_out");
    // Signed without the port, or without the query string: another URL, refused.
    for url in [
        "https://sms.example.com/webhooks/twilio/sms?tenant=acme&v=2".to_string(),
        public.to_string(),
    ] {
        let res = hooked
            .twilio(
                "/webhooks/twilio/sms?tenant=acme&v=2",
                &params,
                Some(twilio_signature(AUTH_TOKEN, &url, &params)),
            )
            .await;
        problem(res, 401).await;
    }
    problem(
        hooked
            .twilio("/webhooks/twilio/sms?tenant=acme&v=2", &params, None)
            .await,
        401,
    )
    .await;
    let metrics = hooked.metrics().await;
    assert!(
        metrics.contains("consent_ledger_webhook_signatures_rejected_total{provider=\"twilio\"} 3"),
        "{metrics}"
    );
    hooked.stop().await;
}

/// Twilio's Advanced Opt-Out matched and already answered the customer: the ledger records
/// the opt-out, even for words its own tables do not list, and sends nothing itself.
#[tokio::test]
async fn opt_out_type_stop_is_recorded_from_the_provider_without_a_confirmation() {
    let hooked = Hooked::start(&config("")).await;
    let mut params = message("SM00000000000000000000000000000002", CUSTOMER, "Basta così");
    params.push(("OptOutType", "STOP"));
    let sign = |p: &[(&str, &str)]| Some(twilio_signature(AUTH_TOKEN, PUBLIC_URL, p));
    twiml(
        hooked
            .twilio("/webhooks/twilio/sms", &params, sign(&params))
            .await,
    )
    .await;
    let consent = hooked.consent(CUSTOMER).await;
    assert_eq!(consent["status"], "opted_out", "{consent}");
    let events = hooked.history(CUSTOMER).await;
    assert_eq!(events.len(), 1);
    let source = &events[0]["source"];
    assert_eq!(source["kind"], "provider");
    assert_eq!(source["keyword"], "STOP");
    assert_eq!(source["text"], "Basta così");
    assert_eq!(events[0]["channel"], "sms");
    // Someone else's plain STOP, without Twilio's opt-out, gets our confirmation: the outbox
    // is written, and the provider's opt-out would be in it too if it had earned one.
    let other = message("SM00000000000000000000000000000003", "+14155550122", "STOP");
    twiml(
        hooked
            .twilio("/webhooks/twilio/sms", &other, sign(&other))
            .await,
    )
    .await;
    let dir = hooked.stop().await;
    let to: Vec<String> = read_jsonl(&dir.path().join("data/outbox.jsonl"))
        .iter()
        .map(|m| m["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(to, ["+14155550122"]);
}

#[tokio::test]
async fn a_message_to_an_unlisted_number_is_answered_and_dead_lettered_a_json_body_is_refused() {
    let hooked = Hooked::start(&config("")).await;
    let mut params = message("SM00000000000000000000000000000004", CUSTOMER, "STOP");
    params[4].1 = "+14155550199";
    let res = hooked
        .twilio(
            "/webhooks/twilio/sms",
            &params,
            Some(twilio_signature(AUTH_TOKEN, PUBLIC_URL, &params)),
        )
        .await;
    twiml(res).await;
    let dead = hooked.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["code"], "unknown_tenant");
    assert!(
        dead[0]["original"]
            .as_str()
            .unwrap()
            .contains("MessageSid=SM"),
        "{}",
        dead[0]
    );
    assert_eq!(hooked.consent(CUSTOMER).await["status"], "unknown");
    let res = hooked
        .client
        .post(format!("{}/webhooks/twilio/sms", hooked.base))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(res, 415).await;
    hooked.stop().await;
}
