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
//!
//! A feature of its own rather than a ledger rule: nothing in the ledger's data flow runs it
//! (the CLI's `lint-template` and `POST /v1/templates/lint` do), it only reads the domain's
//! keyword tables and language files.

use serde::Serialize;
use serde_json::Value;

use crate::domain::keywords::KeywordSet;
use crate::domain::language;

mod checks;
#[cfg(test)]
mod tests;

use checks::Context;

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

/// A footer that passes this linter in `language` (a built-in code as written, else English),
/// within Meta's 60 characters; the text is the language file's `[template] footer`.
pub fn suggested_footer(language: &str) -> &'static str {
    &language::get_or_english(language).template.footer
}

/// The opt-out QUICK_REPLY text to suggest, from the language file's `[template] button`:
/// STOP in every built-in language, since the ledger reads it as a payload in all of them.
pub fn suggested_button_text(language: &str) -> String {
    language::get_or_english(language).template.button.clone()
}
