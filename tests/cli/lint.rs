//! Black-box tests of `consent-ledger lint-template`: what a marketer sees when checking a
//! WhatsApp template before submitting it to Meta.

use crate::common::*;
use serde_json::{json, Value};

fn example(name: &str) -> String {
    repo_file(&format!("examples/templates/{name}"))
        .to_str()
        .unwrap()
        .to_string()
}

fn lint_json(env: &Env, template: &Value) -> (Option<i32>, Value) {
    let out = env.run_with_input(&["lint-template", "--json", "-"], &template.to_string());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

fn marketing(language: &str, components: Value) -> Value {
    json!({"name": "promo", "language": language, "category": "MARKETING", "components": components})
}

fn pointers(report: &Value) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap().to_string(),
                p["pointer"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn compliant_french_marketing_example_exits_0() {
    let env = Env::new();
    let out = env.ok(&["lint-template", &example("soldes-hiver-fr.json")]);
    assert_eq!(out, "soldes_hiver_2026 (fr, MARKETING): compliant\n");
    let json = env.ok(&["lint-template", "--json", &example("soldes-hiver-fr.json")]);
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        report,
        json!({"template": "soldes_hiver_2026", "language": "fr", "category": "MARKETING",
               "keyword_language": "fr", "compliant": true, "problems": []})
    );
    // Linting opens no ledger: it works where no data directory exists.
    assert!(!env.data().exists());
}

#[test]
fn non_compliant_example_exits_1_with_pointers_and_french_fixes() {
    let env = Env::new();
    let out = env.run(&[
        "lint-template",
        "--json",
        &example("nouvelle-collection-fr-non-conforme.json"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["compliant"], false);
    assert_eq!(
        pointers(&report),
        [
            ("footer-without-opt-out".into(), "/components/2/text".into()),
            (
                "missing-opt-out-button".into(),
                "/components/3/buttons".into()
            )
        ]
    );
    assert_eq!(
        report["problems"][0]["suggestion"],
        "use \"Envoyez STOP pour vous désabonner\""
    );
    assert_eq!(
        report["problems"][1]["suggestion"],
        r#"add {"type":"QUICK_REPLY","text":"STOP"} to buttons"#
    );
    // The readable form names each place and its fix.
    let out = env.run(&[
        "lint-template",
        &example("nouvelle-collection-fr-non-conforme.json"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "nouvelle_collection (fr, MARKETING): NOT compliant, 2 problem(s)"
    );
    assert!(lines[1].starts_with("/components/2/text  footer-without-opt-out: "));
    assert_eq!(
        lines[2],
        "    fix: use \"Envoyez STOP pour vous désabonner\""
    );
    assert!(lines[3].starts_with("/components/3/buttons  missing-opt-out-button: "));
}

#[test]
fn utility_example_passes_without_footer_or_button() {
    let env = Env::new();
    let out = env.ok(&["lint-template", &example("commande-expediee-utility.json")]);
    assert_eq!(out, "commande_expediee (fr, UTILITY): compliant\n");
    let auth = json!({"name": "code", "language": "en_US", "category": "AUTHENTICATION",
                      "components": [{"type": "BODY", "text": "{{1}} is your code."}]});
    assert_eq!(lint_json(&env, &auth).0, Some(0));
}

#[test]
fn missing_footer_and_button_point_at_components() {
    let env = Env::new();
    let (code, report) = lint_json(
        &env,
        &marketing(
            "en_US",
            json!([{"type": "BODY", "text": "20% off this weekend"}]),
        ),
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        pointers(&report),
        [
            ("missing-footer".into(), "/components".into()),
            ("missing-opt-out-button".into(), "/components".into())
        ]
    );
    assert_eq!(
        report["problems"][0]["suggestion"],
        r#"add {"type":"FOOTER","text":"Reply STOP to unsubscribe"}"#
    );
    assert_eq!(
        report["problems"][1]["suggestion"],
        r#"add {"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"STOP"}]}"#
    );
}

#[test]
fn footer_keyword_of_another_language_is_reported_as_wrong_language() {
    let env = Env::new();
    let buttons = json!({"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "STOP"}]});
    // ARRÊT is French only: an English customer is told a word the ledger does not read for them.
    let (code, report) = lint_json(
        &env,
        &marketing(
            "en",
            json!([{"type": "BODY", "text": "Sale"},
                   {"type": "FOOTER", "text": "Envoyez ARRÊT pour vous désabonner"}, buttons]),
        ),
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        pointers(&report),
        [("wrong-language-keyword".into(), "/components/1/text".into())]
    );
    assert!(report["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("ARRET"));
    // STOP is French too, so an English footer on a French template is fine.
    let (code, _) = lint_json(
        &env,
        &marketing(
            "fr",
            json!([{"type": "BODY", "text": "Soldes"},
                   {"type": "FOOTER", "text": "Reply STOP to unsubscribe"}, buttons]),
        ),
    );
    assert_eq!(code, Some(0));
    // Brazilian Portuguese uses the pt keywords.
    let (code, report) = lint_json(
        &env,
        &marketing(
            "pt_BR",
            json!([{"type": "BODY", "text": "Promoção"},
                   {"type": "FOOTER", "text": "Envie PARAR para sair"},
                   {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Parar"}]}]),
        ),
    );
    assert_eq!((code, &report["keyword_language"]), (Some(0), &json!("pt")));
}

#[test]
fn input_that_is_not_a_template_exits_2_with_a_clear_error() {
    let env = Env::new();
    for (input, expected) in [
        ("{\"name\": ", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (
            r#"{"language": "fr", "category": "MARKETING", "components": []}"#,
            "no \"name\"",
        ),
        (
            r#"{"name": "a", "category": "MARKETING", "components": []}"#,
            "no \"language\"",
        ),
        (
            r#"{"name": "a", "language": "fr", "components": []}"#,
            "no \"category\"",
        ),
        (
            r#"{"name": "a", "language": "fr", "category": "PROMO"}"#,
            "MARKETING, UTILITY or AUTHENTICATION",
        ),
    ] {
        let out = env.run_with_input(&["lint-template", "-"], input);
        assert_eq!(out.status.code(), Some(2), "{input}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(expected), "{input}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    let out = env.run(&["lint-template", "/nonexistent/template.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
}
