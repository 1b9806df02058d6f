//! The WhatsApp receiver of the real `serve` binary, as a business runs it (issue 12): secrets
//! read from the environment, every STOP answered 200 still there after a kill -9 right after
//! the answer, a missing secret stopping the start, and `sign-webhook` signing as Meta and
//! Twilio do.

use crate::common::webhooks::{form, meta_signature, post, spawn_serve, twilio_signature};
use crate::common::*;

const SECRET_VAR: &str = "TEST_WA_APP_SECRET";
const SECRET: &str = "app-secret-from-the-environment";

fn config() -> String {
    format!(
        "[tenants.acme]\nphone_number_ids = [\"{PHONE_NUMBER_ID}\"]\n\
         [webhooks.whatsapp]\nverify_token = \"env:TEST_WA_VERIFY\"\napp_secrets = [\"env:{SECRET_VAR}\"]\n"
    )
}

#[test]
fn every_stop_answered_200_survives_kill_9_of_serve() {
    let env = Env::with_config(&config());
    let (mut serve, addr) = spawn_serve(&env, &[(SECRET_VAR, SECRET), ("TEST_WA_VERIFY", "v")]);
    let t = chrono::Utc::now().timestamp() - 60;
    let numbers: Vec<String> = (0..20).map(|i| format!("336129900{i:02}")).collect();
    for (i, number) in numbers.iter().enumerate() {
        let body = wa_text(number, &format!("wamid.kill{i}"), t + i as i64, "STOP");
        let signature = meta_signature(SECRET, body.as_bytes());
        let answer = post(
            &addr,
            "/webhooks/whatsapp",
            &[
                ("Content-Type", "application/json"),
                ("X-Hub-Signature-256", &signature),
            ],
            body.as_bytes(),
        );
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    // SIGKILL right after the last 200: no shutdown, no flush, nothing but what was durable.
    serve.kill().unwrap();
    serve.wait().unwrap();
    for number in &numbers {
        let status = env.status("acme", &format!("+{number}"), "marketing");
        assert_eq!(status["status"], "opted_out", "{status}");
    }
    let verify = env.ok(&["verify"]);
    assert!(verify.starts_with("ok: "), "{verify}");
}

#[test]
fn serve_without_a_webhook_secret_it_names_is_a_usage_error_exit_2() {
    let env = Env::with_config(&config());
    let out = env.run(&["serve", "--listen", "127.0.0.1:0"]);
    // A configuration the process cannot run with is a usage error (2), as the README says,
    // not a failure of a running service (1).
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TEST_WA_VERIFY"), "{stderr}");
    // Commands that serve no webhook do not need it.
    env.ok(&["status", "--tenant", "acme", "--contact", "+33612345678"]);
}

#[test]
fn sign_webhook_signs_a_body_as_meta_and_a_form_as_twilio() {
    let env = Env::new();
    let body = wa_text("33612345678", "wamid.sign", 1_763_978_400, "STOP");
    let file = env.dir.path().join("body.json");
    std::fs::write(&file, &body).unwrap();
    let out = env.ok(&["sign-webhook", file.to_str().unwrap(), "--secret", "s3cret"]);
    assert_eq!(out.trim(), meta_signature("s3cret", body.as_bytes()));

    let params = [
        ("Body", "STOP now"),
        ("From", "+14155550111"),
        ("MessageSid", "SM1"),
        ("To", "+14155550100"),
    ];
    let url = "https://sms.example.com:8443/webhooks/twilio/sms?x=1";
    let out = env
        .command(&[
            "sign-webhook",
            "--secret",
            "env:TEST_TWILIO_TOKEN",
            "--twilio-url",
            url,
        ])
        .env("TEST_TWILIO_TOKEN", "tok")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(form(&params).as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        twilio_signature("tok", url, &params)
    );
}
