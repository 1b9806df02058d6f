use super::*;
use proptest::prelude::*;
use serde_json::json;

fn marketing(language: &str, components: Value) -> Value {
    json!({"name": "promo", "language": language, "category": "MARKETING", "components": components})
}

fn body() -> Value {
    json!({"type": "BODY", "text": "-20% sur toute la boutique ce week-end !"})
}

fn codes(report: &LintReport) -> Vec<(&str, &str)> {
    report
        .problems
        .iter()
        .map(|p| (p.code, p.pointer.as_str()))
        .collect()
}

#[test]
fn compliant_french_marketing_template_passes() {
    // Given a French promotion with a STOP footer and a "Se désabonner" quick reply
    let t = marketing(
        "fr",
        json!([
            {"type": "HEADER", "format": "TEXT", "text": "Soldes"},
            body(),
            {"type": "FOOTER", "text": "Envoyez STOP pour vous désabonner"},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Voir", "url": "https://shop.example"},
                {"type": "QUICK_REPLY", "text": "Se désabonner"}]}
        ]),
    );
    // When it is linted
    let r = lint(&t).unwrap();
    // Then it is compliant
    assert!(r.compliant, "{:?}", r.problems);
    assert_eq!(
        (r.language.as_str(), r.keyword_language.as_str()),
        ("fr", "fr")
    );
}

#[test]
fn missing_footer_and_button_are_reported_on_components() {
    // Given a marketing template with only a body
    let r = lint(&marketing("fr", json!([body()]))).unwrap();
    // Then both are missing, pointed at /components, with French fixes
    assert!(!r.compliant);
    assert_eq!(
        codes(&r),
        [
            ("missing-footer", "/components"),
            ("missing-opt-out-button", "/components")
        ]
    );
    assert!(r.problems[0]
        .suggestion
        .contains("Envoyez STOP pour vous désabonner"));
    assert!(r.problems[1].suggestion.contains("QUICK_REPLY"));
}

#[test]
fn footer_without_keyword_points_at_its_text() {
    let t = marketing(
        "en_US",
        json!([body(), {"type": "FOOTER", "text": "Acme Inc, 1 Main St"},
               {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop"}]}]),
    );
    let r = lint(&t).unwrap();
    assert_eq!(
        codes(&r),
        [("footer-without-opt-out", "/components/1/text")]
    );
    assert!(r.problems[0]
        .suggestion
        .contains("Reply STOP to unsubscribe"));
    assert_eq!(r.keyword_language, "en");
}

#[test]
fn keyword_of_another_language_is_flagged_but_shared_stop_is_not() {
    // Given an English template whose footer says ARRET (French only)
    let t = marketing(
        "en",
        json!([body(), {"type": "FOOTER", "text": "Envoyez ARRÊT pour vous désabonner"},
               {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "STOP"}]}]),
    );
    let r = lint(&t).unwrap();
    assert_eq!(
        codes(&r),
        [("wrong-language-keyword", "/components/1/text")]
    );
    assert!(r.problems[0].message.contains("ARRET"), "{:?}", r.problems);
    // Given a French template with an English footer: STOP is French too
    let t = marketing(
        "fr",
        json!([body(), {"type": "FOOTER", "text": "Reply STOP to unsubscribe"},
               {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "STOP"}]}]),
    );
    assert!(lint(&t).unwrap().compliant);
}

#[test]
fn quick_reply_in_another_language_is_flagged_on_its_text() {
    let t = marketing(
        "en",
        json!([body(), {"type": "FOOTER", "text": "Reply STOP to unsubscribe"},
               {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Se désabonner"}]}]),
    );
    let r = lint(&t).unwrap();
    assert_eq!(
        codes(&r),
        [("wrong-language-keyword", "/components/2/buttons/0/text")]
    );
}

#[test]
fn buttons_without_stop_point_at_the_buttons_array() {
    let t = marketing(
        "fr",
        json!([body(), {"type": "FOOTER", "text": "STOP au 36180"},
               {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "J'en profite"}]}]),
    );
    let r = lint(&t).unwrap();
    assert_eq!(
        codes(&r),
        [("missing-opt-out-button", "/components/2/buttons")]
    );
    assert!(r.problems[0]
        .suggestion
        .contains(r#"{"type":"QUICK_REPLY","text":"STOP"}"#));
}

#[test]
fn full_button_list_suggests_a_replacement() {
    let ten: Vec<Value> = (0..10)
        .map(|i| json!({"type": "QUICK_REPLY", "text": format!("Choix {i}")}))
        .collect();
    let t = marketing(
        "fr",
        json!([body(), {"type": "FOOTER", "text": "STOP pour arrêter"},
               {"type": "BUTTONS", "buttons": ten}]),
    );
    let r = lint(&t).unwrap();
    assert!(
        r.problems[0].suggestion.contains("replace"),
        "{:?}",
        r.problems
    );
}

#[test]
fn url_button_labelled_unsubscribe_is_not_enough() {
    let t = marketing(
        "en",
        json!([body(), {"type": "FOOTER", "text": "Reply STOP to opt out"},
               {"type": "BUTTONS", "buttons": [
                   {"type": "URL", "text": "Unsubscribe", "url": "https://x.example/u"}]}]),
    );
    let r = lint(&t).unwrap();
    assert_eq!(
        codes(&r),
        [(
            "opt-out-button-not-quick-reply",
            "/components/2/buttons/0/type"
        )]
    );
}

#[test]
fn too_long_footer_is_reported_even_with_a_keyword() {
    let t = marketing(
        "en",
        json!([body(), {"type": "FOOTER", "text": format!("Reply STOP to unsubscribe. {}", "x".repeat(60))},
               {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "STOP"}]}]),
    );
    assert_eq!(
        codes(&lint(&t).unwrap()),
        [("footer-too-long", "/components/1/text")]
    );
}

#[test]
fn utility_and_authentication_pass_without_footer_or_button() {
    for category in ["UTILITY", "authentication"] {
        let t = json!({"name": "order", "language": "pt_BR", "category": category,
                       "components": [{"type": "BODY", "text": "Pedido {{1}} enviado"}]});
        let r = lint(&t).unwrap();
        assert!(r.compliant);
        assert_eq!(r.category, category.to_ascii_uppercase());
        assert_eq!(r.keyword_language, "pt");
    }
}

#[test]
fn not_a_template_is_an_error_naming_what_is_wrong() {
    assert!(matches!(lint_str("{"), Err(TemplateError::Json(_))));
    assert_eq!(lint_str("[]"), Err(TemplateError::NotAnObject));
    assert_eq!(
        lint_str(r#"{"language":"fr","category":"MARKETING"}"#),
        Err(TemplateError::Missing("name"))
    );
    assert_eq!(
        lint_str(r#"{"name":"a","category":"MARKETING"}"#),
        Err(TemplateError::Missing("language"))
    );
    assert_eq!(
        lint_str(r#"{"name":"a","language":"fr"}"#),
        Err(TemplateError::Missing("category"))
    );
    assert!(matches!(
        lint_str(r#"{"name":"a","language":"fr","category":"PROMO"}"#),
        Err(TemplateError::Invalid {
            field: "category",
            ..
        })
    ));
}

#[test]
fn suggestions_pass_the_linter_in_their_own_language_and_fit_meta_limits() {
    for lang in KeywordSet::builtin_languages() {
        let footer = suggested_footer(lang);
        let button = suggested_button_text(lang);
        assert!(footer.chars().count() <= MAX_FOOTER_CHARS, "{lang}");
        assert!(button.chars().count() <= MAX_BUTTON_TEXT_CHARS, "{lang}");
        let t = marketing(
            lang,
            json!([{"type": "BODY", "text": "Promo"}, {"type": "FOOTER", "text": footer},
                   {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": button}]}]),
        );
        let r = lint(&t).unwrap();
        assert!(r.compliant, "{lang}: {:?}", r.problems);
    }
}

#[test]
fn unknown_language_is_checked_against_english() {
    assert_eq!(keyword_language("nl_NL"), "en");
    assert_eq!(keyword_language("PT_br"), "pt");
    assert_eq!(keyword_language("es-419"), "es");
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "FOOTER",
            "BUTTONS",
            "QUICK_REPLY",
            "URL",
            "STOP",
            "MARKETING",
            "fr",
            "en_US",
            "type",
            "text",
            "buttons",
            "Envoyez ARRÊT",
            "",
        ])
        .prop_map(|s| json!(s)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "name",
                    "language",
                    "category",
                    "components",
                    "type",
                    "text",
                    "buttons",
                    "format",
                ])
                .prop_map(str::to_string),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_json(v in arb_json()) {
        let _ = lint(&v);
        let mut t = json!({"name": "x", "language": "fr", "category": "MARKETING"});
        t["components"] = v;
        let _ = lint(&t);
    }

    #[test]
    fn never_panics_on_arbitrary_text(s in any::<String>()) {
        let _ = lint_str(&s);
    }
}
