//! Compliance lint for WhatsApp message templates, before they are submitted to Meta.
//!
//! A marketing template that gives the customer no visible way out gets blocked and reported
//! instead of answered with STOP, and those reports lower the number's quality rating. So a
//! MARKETING template must say how to leave in its footer, with an opt-out keyword of its own
//! language, and carry a QUICK_REPLY button whose text is an opt-out keyword: a tap on it sends
//! that text back as the button payload, which the ledger turns into an opt-out.
//!
//! The input is the JSON Meta's template API takes (`name`, `language`, `category`,
//! `components`); keywords come from the same tables the ledger classifies with, so a footer
//! the linter accepts is one the ledger understands. Pure: no I/O.

use serde::Serialize;
use serde_json::Value;

use super::keywords::{normalize, Intent, KeywordSet};

/// Meta's limits, so that a suggested fix is one Meta accepts.
pub const MAX_FOOTER_CHARS: usize = 60;
pub const MAX_BUTTON_TEXT_CHARS: usize = 25;
pub const MAX_BUTTONS: usize = 10;

/// A document that is not a template at all; compliance cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template is not valid JSON: {0}")]
    Json(String),
    #[error("the template must be a JSON object as Meta's template API takes it")]
    NotAnObject,
    #[error("the template has no {0:?} (Meta's template API requires it)")]
    Missing(&'static str),
    #[error("the template's {field:?} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// One compliance problem, located by a JSON pointer (RFC 6901) into the template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LintProblem {
    /// Stable, for scripts: `missing-footer`, `footer-without-opt-out`,
    /// `wrong-language-keyword`, `footer-too-long`, `missing-opt-out-button`,
    /// `opt-out-button-not-quick-reply`.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// Where in the template, as a JSON pointer: the text to change, or the array where
    /// something is missing (`/components`, `/components/3/buttons`).
    pub pointer: String,
    pub message: String,
    /// The fix, in the template's language and within Meta's limits.
    pub suggestion: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LintReport {
    pub template: String,
    /// As written in the template (`fr`, `en_US`).
    pub language: String,
    /// Uppercase: `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    pub category: String,
    /// The keyword table the template was checked against: the part of `language` before
    /// `_`, or `en` when the ledger has no table for that language.
    pub keyword_language: String,
    pub compliant: bool,
    pub problems: Vec<LintProblem>,
}

/// Lints template JSON text.
pub fn lint_str(text: &str) -> Result<LintReport, TemplateError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| TemplateError::Json(e.to_string()))?;
    lint(&value)
}

/// Lints a parsed template.
pub fn lint(template: &Value) -> Result<LintReport, TemplateError> {
    let obj = template.as_object().ok_or(TemplateError::NotAnObject)?;
    let field = |name: &'static str| -> Result<String, TemplateError> {
        match obj.get(name) {
            None | Some(Value::Null) => Err(TemplateError::Missing(name)),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(_) => Err(TemplateError::Invalid {
                field: name,
                reason: "must be a non-empty string".into(),
            }),
        }
    };
    let name = field("name")?;
    let language = field("language")?;
    let category = field("category")?.to_ascii_uppercase();
    if !["MARKETING", "UTILITY", "AUTHENTICATION"].contains(&category.as_str()) {
        return Err(TemplateError::Invalid {
            field: "category",
            reason: format!("{category:?} is not MARKETING, UTILITY or AUTHENTICATION"),
        });
    }
    let components = match obj.get("components") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => {
            return Err(TemplateError::Invalid {
                field: "components",
                reason: "must be an array".into(),
            })
        }
    };
    let keyword_language = keyword_language(&language);
    let problems = if category == "MARKETING" {
        let ctx = Context::new(&keyword_language);
        let mut problems = ctx.footer(components);
        problems.extend(ctx.button(components));
        problems
    } else {
        // Utility and authentication messages are expected by the customer (an order update,
        // a login code); Meta does not ask them to offer an opt-out.
        Vec::new()
    };
    Ok(LintReport {
        template: name,
        language,
        category,
        keyword_language,
        compliant: problems.is_empty(),
        problems,
    })
}

/// `pt_BR` → `pt`; a language the ledger has no keywords for is checked against English,
/// which every built-in language's STOP also satisfies.
pub fn keyword_language(template_language: &str) -> String {
    let base = template_language
        .split(['_', '-'])
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if KeywordSet::builtin_languages().contains(&base.as_str()) {
        base
    } else {
        "en".to_string()
    }
}

/// A footer that passes this linter in `language`, within Meta's 60 characters.
pub fn suggested_footer(language: &str) -> &'static str {
    match language {
        "fr" => "Envoyez STOP pour vous désabonner",
        "es" => "Envía BAJA para darte de baja",
        "de" => "Senden Sie STOPP zum Abmelden",
        "it" => "Invia STOP per cancellarti",
        "pt" => "Envie PARAR para sair",
        _ => "Reply STOP to unsubscribe",
    }
}

/// The opt-out button text to suggest: STOP where the language has it, since the ledger
/// also reads it as a payload in every built-in language.
pub fn suggested_button_text(language: &str) -> String {
    let set = KeywordSet::defaults(&[language]);
    if set.is_opt_out_keyword(language, "STOP") {
        return "STOP".to_string();
    }
    set.keywords(language, Intent::OptOut)
        .into_iter()
        .find(|k| k.chars().count() <= MAX_BUTTON_TEXT_CHARS)
        .unwrap_or_else(|| "STOP".to_string())
}

struct Context {
    language: String,
    own: KeywordSet,
    /// Every built-in language, to tell "no keyword" from "a keyword of another language".
    all: KeywordSet,
}

fn component_type(c: &Value) -> String {
    c.get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_uppercase()
}

fn text_of(v: &Value) -> Option<&str> {
    v.get("text").and_then(Value::as_str)
}

/// Words as the ledger matches them: normalized, hyphens and apostrophes split words.
fn tokens(text: &str) -> Vec<String> {
    normalize(text)
        .split([' ', '-', '\''])
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// The first keyword of `keywords` that appears in `text` as whole words.
fn find_keyword(text: &[String], keywords: &[String]) -> Option<String> {
    keywords.iter().find_map(|k| {
        let needle = tokens(k);
        (!needle.is_empty() && text.windows(needle.len()).any(|w| w == needle.as_slice()))
            .then(|| k.clone())
    })
}

/// Some of a language's keywords, for messages.
fn quote_list(words: &[String]) -> String {
    let shown = words.iter().take(6).cloned().collect::<Vec<_>>().join(", ");
    if words.len() > 6 {
        format!("e.g. {shown}")
    } else {
        shown
    }
}

fn json_string(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A component or button in suggestions, `type` first as in Meta's documentation
/// (serde_json's maps would sort the keys).
fn component(kind: &str, key: &str, value_json: &str) -> String {
    format!(r#"{{"type":"{kind}","{key}":{value_json}}}"#)
}

impl Context {
    fn new(language: &str) -> Context {
        Context {
            language: language.to_string(),
            own: KeywordSet::defaults(&[language]),
            all: KeywordSet::defaults(KeywordSet::builtin_languages()),
        }
    }

    fn own_keywords(&self) -> Vec<String> {
        self.own.keywords(&self.language, Intent::OptOut)
    }

    /// Another language's opt-out keyword in `text`, with that language.
    fn foreign_keyword(&self, text: &[String]) -> Option<(String, String)> {
        KeywordSet::builtin_languages()
            .iter()
            .filter(|l| **l != self.language)
            .find_map(|l| {
                find_keyword(text, &self.all.keywords(l, Intent::OptOut))
                    .map(|k| (k, l.to_string()))
            })
    }

    fn footer(&self, components: &[Value]) -> Vec<LintProblem> {
        let suggested = suggested_footer(&self.language);
        let Some((i, footer)) = components
            .iter()
            .enumerate()
            .find(|(_, c)| component_type(c) == "FOOTER")
        else {
            return vec![LintProblem {
                code: "missing-footer",
                pointer: "/components".into(),
                message:
                    "a MARKETING template needs a FOOTER telling the customer how to unsubscribe"
                        .into(),
                suggestion: format!(
                    "add {}",
                    component("FOOTER", "text", &json_string(suggested))
                ),
            }];
        };
        let pointer = format!("/components/{i}/text");
        let text = text_of(footer).unwrap_or("");
        let mut problems = Vec::new();
        if text.chars().count() > MAX_FOOTER_CHARS {
            problems.push(LintProblem {
                code: "footer-too-long",
                pointer: pointer.clone(),
                message: format!(
                    "the footer has {} characters; Meta accepts at most {MAX_FOOTER_CHARS}",
                    text.chars().count()
                ),
                suggestion: format!("use {suggested:?}"),
            });
        }
        let words = tokens(text);
        if find_keyword(&words, &self.own_keywords()).is_some() {
            return problems;
        }
        let own = quote_list(&self.own_keywords());
        problems.push(match self.foreign_keyword(&words) {
            Some((keyword, other)) => LintProblem {
                code: "wrong-language-keyword",
                pointer,
                message: format!(
                    "the footer's opt-out keyword {keyword} is {other}, but the template is in {}: \
                     its customers are told a word the ledger does not read for them \
                     ({} opt-out keywords: {own})",
                    self.language, self.language
                ),
                suggestion: format!("use {suggested:?}"),
            },
            None => LintProblem {
                code: "footer-without-opt-out",
                pointer,
                message: format!(
                    "the footer does not name an opt-out keyword of {} ({own})",
                    self.language
                ),
                suggestion: format!("use {suggested:?}"),
            },
        });
        problems
    }

    fn button(&self, components: &[Value]) -> Vec<LintProblem> {
        let text = suggested_button_text(&self.language);
        let stop_button = component("QUICK_REPLY", "text", &json_string(&text));
        let Some((i, buttons)) = components
            .iter()
            .enumerate()
            .find(|(_, c)| component_type(c) == "BUTTONS")
        else {
            return vec![LintProblem {
                code: "missing-opt-out-button",
                pointer: "/components".into(),
                message: "a MARKETING template needs a QUICK_REPLY button whose text is an opt-out keyword, so that one tap unsubscribes"
                    .into(),
                suggestion: format!(
                    "add {}",
                    component("BUTTONS", "buttons", &format!("[{stop_button}]"))
                ),
            }];
        };
        let list = buttons
            .get("buttons")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let pointer = format!("/components/{i}/buttons");
        let is_quick_reply = |b: &Value| component_type(b) == "QUICK_REPLY";
        if list.iter().any(|b| {
            is_quick_reply(b)
                && self
                    .own
                    .is_opt_out_keyword(&self.language, text_of(b).unwrap_or(""))
        }) {
            return Vec::new();
        }
        // A keyword button that does not reach the ledger: not a quick reply, or a keyword
        // customers of this language would not have been told.
        let keyword_language_of = |label: &str| {
            KeywordSet::builtin_languages()
                .iter()
                .find(|l| self.all.is_opt_out_keyword(l, label))
        };
        for (j, b) in list.iter().enumerate() {
            let label = text_of(b).unwrap_or("");
            let Some(lang) = keyword_language_of(label) else {
                continue;
            };
            if !is_quick_reply(b) {
                return vec![LintProblem {
                    code: "opt-out-button-not-quick-reply",
                    pointer: format!("{pointer}/{j}/type"),
                    message: format!(
                        "the button {label:?} is a {} button: tapping it sends nothing back, so the ledger never sees the opt-out",
                        component_type(b)
                    ),
                    suggestion: format!("replace it with {stop_button}"),
                }];
            }
            if *lang != self.language {
                return vec![LintProblem {
                    code: "wrong-language-keyword",
                    pointer: format!("{pointer}/{j}/text"),
                    message: format!(
                        "the button text {label:?} is a {lang} opt-out keyword, but the template is in {}",
                        self.language
                    ),
                    suggestion: format!("use {text:?}"),
                }];
            }
        }
        let quick_replies = list.iter().filter(|b| is_quick_reply(b)).count();
        let suggestion = if list.len() >= MAX_BUTTONS {
            format!(
                "Meta allows {MAX_BUTTONS} buttons: replace a QUICK_REPLY button with {stop_button}"
            )
        } else if quick_replies > 0 && quick_replies < list.len() {
            format!(
                "add {stop_button} next to the other QUICK_REPLY buttons (Meta requires quick replies to be grouped)"
            )
        } else {
            format!("add {stop_button} to buttons")
        };
        vec![LintProblem {
            code: "missing-opt-out-button",
            pointer,
            message: format!(
                "no QUICK_REPLY button has an opt-out keyword of {} as its text ({})",
                self.language,
                quote_list(&self.own_keywords())
            ),
            suggestion,
        }]
    }
}

#[cfg(test)]
mod tests {
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
}
