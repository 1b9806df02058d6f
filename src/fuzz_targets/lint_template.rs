//! The WhatsApp template linter (`consent-ledger lint-template`, `POST /v1/templates/lint`),
//! on any document.
//!
//! Properties: linting never panics and gives the same report every time; a report is
//! compliant exactly when it lists no problem; only MARKETING templates have problems; the
//! keyword table is a built-in language; each problem has a known code, a message, a
//! suggestion and a pointer into the template (the place itself, or the object where
//! something is missing); and the fix the linter suggests is one it accepts: with the
//! suggested footer and a QUICK_REPLY button of the suggested text, the template passes.

use crate::domain::keywords::KeywordSet;
use crate::template::{lint, lint_str, suggested_button_text, suggested_footer, LintReport};
use serde_json::{json, Value};

const CODES: [&str; 6] = [
    "missing-footer",
    "footer-without-opt-out",
    "wrong-language-keyword",
    "footer-too-long",
    "missing-opt-out-button",
    "opt-out-button-not-quick-reply",
];

fn kind(c: &Value) -> String {
    c.get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// `template` with its first FOOTER's text and its first BUTTONS' list fixed as `report`
/// suggests, or with a footer and a button added where there were none.
fn fixed(template: &Value, report: &LintReport) -> Value {
    let mut t = template.clone();
    let footer = suggested_footer(&report.keyword_language);
    let button =
        json!({"type": "QUICK_REPLY", "text": suggested_button_text(&report.keyword_language)});
    if !t["components"].is_array() {
        t["components"] = json!([]);
    }
    let components = t["components"].as_array_mut().expect("made an array");
    match components.iter_mut().find(|c| kind(c) == "FOOTER") {
        Some(c) => c["text"] = json!(footer),
        None => components.push(json!({"type": "FOOTER", "text": footer})),
    }
    match components.iter_mut().find(|c| kind(c) == "BUTTONS") {
        Some(c) => match c.get_mut("buttons").and_then(Value::as_array_mut) {
            Some(list) => list.push(button),
            None => c["buttons"] = json!([button]),
        },
        None => components.push(json!({"type": "BUTTONS", "buttons": [button]})),
    }
    t
}

/// The target's properties on one input: panics where one does not hold.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let linted = lint_str(text);
    assert_eq!(linted, lint_str(text), "linted twice: different reports");
    let Ok(report) = linted else {
        return;
    };
    let template: Value = serde_json::from_str(text).expect("a linted template is JSON");
    assert_eq!(report.compliant, report.problems.is_empty());
    assert!(["MARKETING", "UTILITY", "AUTHENTICATION"].contains(&report.category.as_str()));
    assert!(report.category == "MARKETING" || report.problems.is_empty());
    assert!(KeywordSet::builtin_languages().contains(&report.keyword_language.as_str()));
    for p in &report.problems {
        assert!(CODES.contains(&p.code), "unknown code {}", p.code);
        assert!(!p.message.is_empty() && !p.suggestion.is_empty());
        let parent = p.pointer.rsplit_once('/').map_or("", |(parent, _)| parent);
        assert!(
            template.pointer(&p.pointer).is_some()
                || template.pointer(parent).is_some_and(Value::is_object),
            "{} points to {:?}, which is not in the template",
            p.code,
            p.pointer
        );
    }
    if !report.compliant {
        let after =
            lint(&fixed(&template, &report)).expect("the fixed template is still a template");
        assert!(
            after.compliant,
            "the suggested fix leaves {:?}",
            after.problems
        );
    }
}
