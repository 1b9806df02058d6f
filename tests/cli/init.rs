//! Black-box tests of `consent-ledger init`: the file it writes loads, and once the business
//! fills in its phone_number_id, the STOP automation works without another edit.

use crate::common::*;
use serde_json::Value;

const LANGUAGES: [&str; 6] = ["fr", "en", "es", "de", "it", "pt"];

/// `init` output for `args`, with the placeholder replaced by the test number id, in an Env.
fn env_from_init(args: &[&str]) -> (Env, toml::Value) {
    let env = Env::new();
    let text = env.ok(&[&["init"], args].concat());
    assert!(text.contains("REPLACE_WITH_YOUR_PHONE_NUMBER_ID"));
    let edited = text.replace("REPLACE_WITH_YOUR_PHONE_NUMBER_ID", PHONE_NUMBER_ID);
    let path = env.dir.path().join("consent-ledger.toml");
    std::fs::write(&path, &edited).unwrap();
    let parsed: toml::Value = toml::from_str(&edited).unwrap();
    (
        Env {
            config: Some(path),
            ..env
        },
        parsed,
    )
}

fn reply_to<'a>(outbox: &'a [Value], to: &str) -> Vec<&'a Value> {
    outbox.iter().filter(|m| m["to"] == to).collect()
}

#[test]
fn init_fr_shop_drives_ingest_with_french_replies() {
    // Given the French config for "shop", with its WhatsApp number id filled in
    let (env, config) = env_from_init(&["--language", "fr", "--tenant", "shop"]);
    let texts = |lang: &str, key: &str| {
        config["tenants"]["shop"]["messages"][lang][key]
            .as_str()
            .unwrap()
            .to_string()
    };
    let t0 = 1_763_978_400;
    // When customers write ARRÊT, AIDE, HELP, and one writes START after ARRÊT
    let summary = env.ingest(
        &[
            wa_text("33612345678", "wamid.A1", t0, "ARRÊT"),
            wa_text("33655501234", "wamid.B1", t0 + 1, "AIDE"),
            wa_text("33655501235", "wamid.C1", t0 + 2, "HELP"),
            wa_text("33655501236", "wamid.D1", t0 + 3, "ARRÊT"),
            wa_text("33655501236", "wamid.D2", t0 + 60, "START"),
        ]
        .join("\n"),
    );
    assert_eq!(
        (
            summary["opted_out"].as_u64(),
            summary["opted_in"].as_u64(),
            summary["help"].as_u64(),
            summary["rejected"].as_u64()
        ),
        (Some(2), Some(1), Some(2), Some(0)),
        "{summary}"
    );
    // Then ARRÊT opts out of tenant shop, confirmed once in French
    let s = env.status("shop", "+33612345678", "marketing");
    assert_eq!(
        (s["status"].as_str(), s["may_send"].as_bool()),
        (Some("opted_out"), Some(false))
    );
    let outbox = env.lines_of("outbox.jsonl");
    let a = reply_to(&outbox, "+33612345678");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["kind"], "opt_out_confirmation");
    assert_eq!(a[0]["language"], "fr");
    assert_eq!(a[0]["text"], texts("fr", "opt_out_confirmation"));
    assert!(a[0]["text"].as_str().unwrap().starts_with("C'est noté"));
    // AIDE gets the French help text, HELP the English one; no consent change
    let b = reply_to(&outbox, "+33655501234");
    assert_eq!(
        (b[0]["kind"].as_str(), b[0]["text"].as_str()),
        (Some("help"), Some(texts("fr", "help").as_str()))
    );
    let c = reply_to(&outbox, "+33655501235");
    assert_eq!(
        (c[0]["kind"].as_str(), c[0]["text"].as_str()),
        (Some("help"), Some(texts("en", "help").as_str()))
    );
    assert_eq!(
        env.status("shop", "+33655501234", "marketing")["status"],
        "unknown"
    );
    // START after ARRÊT opts back in, confirmed in French
    assert_eq!(
        env.status("shop", "+33655501236", "marketing")["status"],
        "opted_in"
    );
    let d = reply_to(&outbox, "+33655501236");
    assert_eq!(d.last().unwrap()["kind"], "opt_in_confirmation");
    assert_eq!(
        d.last().unwrap()["text"],
        texts("fr", "opt_in_confirmation")
    );
}

#[test]
fn edited_texts_and_the_stop_quick_reply_work_as_documented() {
    // Given a business that rewrote its French confirmation, as the file invites
    let env0 = Env::new();
    let text = env0
        .ok(&["init", "--language", "fr", "--tenant", "shop"])
        .replace("REPLACE_WITH_YOUR_PHONE_NUMBER_ID", PHONE_NUMBER_ID)
        .replace(
            "C'est noté, vous avez bien été désinscrit de notre liste de diffusion. Vous ne recevrez plus de messages marketing de notre part.",
            "Acme : c'est noté, plus de promotions.",
        );
    let env = Env::with_config(&text);
    // When a customer taps the STOP quick reply of a campaign template
    env.ingest(&wa_button(
        "33612345678",
        "wamid.Q1",
        1_763_978_400,
        "STOP",
        "STOP",
        "wamid.campaign",
    ));
    // Then they are opted out and get the business's own words
    assert_eq!(
        env.status("shop", "0612345678", "marketing")["status"],
        "opted_out"
    );
    let outbox = env.lines_of("outbox.jsonl");
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["text"], "Acme : c'est noté, plus de promotions.");
}

#[test]
fn every_language_loads_and_its_stop_word_opts_out() {
    for (lang, stop_word) in LANGUAGES.iter().zip([
        "ARRÊT",
        "UNSUBSCRIBE",
        "BAJA",
        "STOPP",
        "DISISCRIVIMI",
        "PARAR",
    ]) {
        let (env, _) = env_from_init(&["--language", lang, "--tenant", "shop"]);
        // A normalized record with an E.164 sender: a WhatsApp `from` has no "+" and is read
        // in the tenant's region, which misreads French numbers under DE (reported separately).
        env.ingest(&inbound(
            "shop",
            "m1",
            "+33612345678",
            "2026-01-01T10:00:00Z",
            stop_word,
        ));
        assert_eq!(
            env.status("shop", "+33612345678", "marketing")["status"],
            "opted_out",
            "{lang}"
        );
        let outbox = env.lines_of("outbox.jsonl");
        assert_eq!(outbox[0]["language"], *lang, "{lang}");
    }
}

#[test]
fn output_file_is_not_overwritten_without_force() {
    let env = Env::new();
    let path = env.dir.path().join("consent-ledger.toml");
    let p = path.to_str().unwrap();
    let out = env.run(&[
        "init",
        "--language",
        "en",
        "--tenant",
        "shop",
        "--output",
        p,
    ]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("EDIT"));
    let first = std::fs::read_to_string(&path).unwrap();
    assert!(first.contains("[tenants.shop]"));
    // A second run must not clobber the edited file
    std::fs::write(&path, "# my edits\n").unwrap();
    let out = env.run(&["init", "--tenant", "other", "--output", p]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# my edits\n");
    // --force does
    env.ok(&["init", "--tenant", "other", "--output", p, "--force"]);
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("[tenants.other]"));
}

#[test]
fn bad_language_or_tenant_is_a_usage_error() {
    let env = Env::new();
    assert_eq!(
        env.run(&["init", "--language", "nl"]).status.code(),
        Some(2)
    );
    let out = env.run(&["init", "--tenant", "my shop"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tenant"));
}
