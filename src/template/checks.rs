//! The MARKETING checks: a footer naming an opt-out keyword of the template's language, and a
//! QUICK_REPLY button whose text is one, each problem with a fix the linter itself accepts.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde_json::Value;

use super::{suggested_button_text, suggested_footer, LintProblem, MAX_BUTTONS, MAX_FOOTER_CHARS};
use crate::domain::keywords::{normalize, Intent, KeywordSet};

pub(super) struct Context {
    language: String,
    own: Cow<'static, KeywordSet>,
    /// Every built-in language, to tell "no keyword" from "a keyword of another language".
    all: &'static KeywordSet,
}

/// The built-in tables the linter reads, compiled once per process: compiling six languages'
/// grammar for every lint cost more than the lint itself (`POST /v1/templates/lint`).
struct Builtin {
    each: Vec<(&'static str, KeywordSet)>,
    all: KeywordSet,
}

fn builtin() -> &'static Builtin {
    static BUILTIN: OnceLock<Builtin> = OnceLock::new();
    BUILTIN.get_or_init(|| Builtin {
        each: KeywordSet::builtin_languages()
            .iter()
            .map(|l| (*l, KeywordSet::defaults(&[l])))
            .collect(),
        all: KeywordSet::defaults(KeywordSet::builtin_languages()),
    })
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
    pub(super) fn new(language: &str) -> Context {
        let tables = builtin();
        let own = match tables.each.iter().find(|(l, _)| *l == language) {
            Some((_, set)) => Cow::Borrowed(set),
            None => Cow::Owned(KeywordSet::defaults(&[language])),
        };
        Context {
            language: language.to_string(),
            own,
            all: &tables.all,
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

    pub(super) fn footer(&self, components: &[Value]) -> Vec<LintProblem> {
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

    pub(super) fn button(&self, components: &[Value]) -> Vec<LintProblem> {
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
