//! The two signatures that prove a webhook came from its provider, checked before anything
//! in the request is believed. Both compare in constant time (`Mac::verify_slice`), so the
//! time an answer takes says nothing about how much of a guessed signature was right, and
//! both accept any of several secrets, so a secret can be rotated while the provider still
//! signs with the old one.
//!
//! - Meta: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the raw body under the
//!   app secret. The raw bytes, never a re-serialization: JSON has many spellings of one
//!   value, and Meta signed the one it sent.
//! - Twilio: `X-Twilio-Signature: <base64>`, the HMAC-SHA1 under the auth token of the URL
//!   Twilio requested followed by each POST parameter, sorted by name, as name then value.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// Whether `header` is Meta's signature of `body` under one of `secrets`.
pub fn meta_valid(body: &[u8], header: &str, secrets: &[Vec<u8>]) -> bool {
    let Some(hex_digest) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(claimed) = hex::decode(hex_digest.trim()) else {
        return false;
    };
    secrets.iter().any(|secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(body);
        mac.verify_slice(&claimed).is_ok()
    })
}

/// Whether `header` is Twilio's signature of a POST to `url` with `params` under one of
/// `tokens`. `url` is tried as given and with its scheme's default port added or removed,
/// since Twilio has signed both spellings of the same URL.
pub fn twilio_valid(
    url: &str,
    params: &[(String, String)],
    header: &str,
    tokens: &[Vec<u8>],
) -> bool {
    let Ok(claimed) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    url_spellings(url).iter().any(|url| {
        tokens.iter().any(|token| {
            twilio_mac(url, params, token)
                .verify_slice(&claimed)
                .is_ok()
        })
    })
}

/// Twilio's signature of a POST, base64: what [`twilio_valid`] checks, for `sign-webhook`.
pub fn twilio_sign(url: &str, params: &[(String, String)], token: &[u8]) -> String {
    let digest = twilio_mac(url, params, token).finalize().into_bytes();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// The HMAC-SHA1 of `url` followed by each parameter, sorted by name (then value, for a name
/// given twice), as name then value.
fn twilio_mac(url: &str, params: &[(String, String)], token: &[u8]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(token).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// Meta's `X-Hub-Signature-256` value for `body`, for `sign-webhook`.
pub fn meta_sign(body: &[u8], secret: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only (the verify
/// token of Meta's handshake).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `url` as written, and with the default port of its scheme toggled: `https://h/x` and
/// `https://h:443/x` name one endpoint.
fn url_spellings(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let default = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let other = match authority.rsplit_once(':') {
        Some((host, port)) if port == default => host.to_string(),
        Some(_) => return out,
        None => format!("{authority}:{default}"),
    };
    out.push(format!("{scheme}://{other}{path}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The worked example of Twilio's security documentation (twilio-php's
    /// docs/usage/validation.rst shows the same values): auth token 12345, this URL and these
    /// parameters sign to `RSOYDt4T1cUTdK1PDd93/VVr8B8=`.
    #[test]
    fn twilio_documented_example_verifies() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let p = params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        let tokens = [b"12345".to_vec()];
        assert!(twilio_valid(
            url,
            &p,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            &tokens
        ));
        assert_eq!(
            twilio_sign(url, &p, b"12345"),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        // Any change to the URL, a parameter or the token breaks it.
        assert!(!twilio_valid(
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &p,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            &tokens
        ));
        let mut changed = p.clone();
        changed[2].1 = "1235".into();
        assert!(!twilio_valid(
            url,
            &changed,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            &tokens
        ));
        assert!(!twilio_valid(
            url,
            &p,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            &[b"54321".to_vec()]
        ));
        assert!(!twilio_valid(url, &p, "not base64!", &tokens));
    }

    #[test]
    fn twilio_default_port_is_tried_both_ways_and_a_rotated_token_too() {
        let p = params(&[("Body", "STOP"), ("From", "+14155550100")]);
        let signed = twilio_sign("https://h.example:443/webhooks/twilio/sms", &p, b"old");
        let tokens = [b"new".to_vec(), b"old".to_vec()];
        assert!(twilio_valid(
            "https://h.example/webhooks/twilio/sms",
            &p,
            &signed,
            &tokens
        ));
        let signed = twilio_sign("https://h.example/webhooks/twilio/sms", &p, b"new");
        assert!(twilio_valid(
            "https://h.example:443/webhooks/twilio/sms",
            &p,
            &signed,
            &tokens
        ));
        // Another port is another URL.
        assert!(!twilio_valid(
            "https://h.example:8443/webhooks/twilio/sms",
            &p,
            &signed,
            &tokens
        ));
    }

    /// RFC 4231 test case 2 (HMAC-SHA256, key "Jefe").
    #[test]
    fn meta_signature_is_hmac_sha256_in_hex() {
        let body = b"what do ya want for nothing?";
        let expected = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(meta_sign(body, b"Jefe"), expected);
        assert!(meta_valid(
            body,
            expected,
            &[b"other".to_vec(), b"Jefe".to_vec()]
        ));
        assert!(!meta_valid(
            b"what do ya want for nothing!",
            expected,
            &[b"Jefe".to_vec()]
        ));
        assert!(!meta_valid(
            body,
            &expected.replace("sha256=", "sha1="),
            &[b"Jefe".to_vec()]
        ));
        assert!(!meta_valid(body, "sha256=zz", &[b"Jefe".to_vec()]));
        assert!(!meta_valid(body, "sha256=", &[b"Jefe".to_vec()]));
    }
}
