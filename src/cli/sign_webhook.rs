//! `consent-ledger sign-webhook`: signs a body as Meta or Twilio would, so the receivers can
//! be tried with curl before the provider is connected (no tunnel needed). Prints the value
//! of the signature header.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Result;

use super::UsageError;
use consent_ledger::api::webhooks::signature;
use consent_ledger::config::Secret;

pub fn run(file: &str, secret: &str, twilio_url: Option<&str>) -> Result<ExitCode> {
    let mut body = Vec::new();
    super::open_input(file)?
        .read_to_end(&mut body)
        .map_err(|e| UsageError(format!("cannot read {file}: {e}")))?;
    let env = |name: &str| std::env::var(name).ok();
    let secret = Secret::new(secret)
        .resolve("--secret", &env)
        .map_err(|e| UsageError(e.to_string()))?;
    let header = match twilio_url {
        // Twilio signs the form's decoded parameters, not its bytes.
        Some(url) => {
            let params: Vec<(String, String)> =
                form_urlencoded::parse(&body).into_owned().collect();
            signature::twilio_sign(url, &params, secret.as_bytes())
        }
        None => signature::meta_sign(&body, secret.as_bytes()),
    };
    println!("{header}");
    Ok(ExitCode::SUCCESS)
}
