//! Deciding what one inbound WhatsApp/SMS text means for consent.
//!
//! Carriers and regulators expect "STOP" to work however the customer types it
//! (any casing, accents or not, with emoji or "please"), while a customer who
//! writes "don't stop" or "stop by the store" must not lose their subscription.
//! The module therefore normalizes aggressively, then only acts on messages that
//! *are* a keyword (possibly wrapped in courtesy words) or contain an
//! unambiguous revocation phrase; a keyword buried in another sentence is only
//! surfaced for human review.
//!
//! Everything here is pure: the built-in words are read from the language files
//! (`domain/language/`), the tables are compiled once per tenant by
//! [`KeywordSet::new`] and classification only reads them. `normalize` is the one
//! text form, `tables` builds a language's table with the tenant's overrides, and
//! `matching` holds the rules.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::domain::language;

#[cfg(test)]
mod corpus_tests;
mod grammar;
mod matching;
mod normalize;
mod rules;
#[cfg(test)]
mod rules_tests;
mod tables;
#[cfg(test)]
mod tests;
mod typo;

pub use matching::normalize_sentences;
use matching::Entry;
use normalize::match_key;
/// For the language files' test: a word listed twice is one that matches twice.
#[cfg(test)]
pub(crate) use normalize::match_keys;
pub use normalize::normalize;

/// For the language files' test: a grammar that does not compile would silently match nothing.
#[cfg(test)]
pub(crate) fn check_grammar(data: &language::Grammar) -> Result<(), String> {
    grammar::Grammar::compile(data).map(|_| ())
}
use tables::{build_table, builtin, lang_code, Kind, LangTable};

/// A keyword configuration that would make STOP fail silently, refused when the config loads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeywordError {
    #[error("keyword languages: empty language code")]
    EmptyLanguageCode,
    #[error("keyword languages: no language enabled, so no opt-out keyword would be recognized")]
    NoLanguage,
    #[error("keyword overrides for language \"{0}\" are given twice")]
    OverridesTwice(String),
    #[error(
        "unknown keyword language \"{0}\": built-in languages are {builtins}; \
         add keyword overrides for \"{0}\" to define it",
        builtins = language::codes().join(", ")
    )]
    UnknownLanguage(String),
    #[error(
        "keywords for language \"{code}\": {field} entry {spelling:?} has no letters or digits"
    )]
    NoLetters {
        code: String,
        field: &'static str,
        spelling: String,
    },
    #[error(
        "keywords for language \"{code}\": {field} entry {spelling:?} has {words} words \
         (at most {MAX_KEYWORD_WORDS} allowed)"
    )]
    TooManyWords {
        code: String,
        field: &'static str,
        spelling: String,
        words: usize,
    },
    #[error(
        "keywords for language \"{code}\": {spelling:?} ({field}) is already \
         a {other} keyword; one word cannot mean both"
    )]
    TwoMeanings {
        code: String,
        field: &'static str,
        spelling: String,
        /// The group the word already has: `opt-out`, `opt-in`, `help`, …
        other: &'static str,
    },
}

/// Which purposes an opt-out revokes: what STOP, STOP ALL and a recorded decision's `scope`
/// say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Marketing only (STOP): transactional messages may still follow, unless the tenant
    /// blocks them.
    #[default]
    Marketing,
    /// Every purpose, transactional included (STOP ALL).
    All,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Marketing => "marketing",
            Scope::All => "all",
        }
    }
}

/// The rule that matched; recorded in the ledger as proof, so names are stable (snake_case in serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    ExactKeyword,
    CourtesyKeyword,
    RevocationPhrase,
    QuickReplyPayload,
    KeywordInSentence,
    /// A keyboard typo of a keyword ("stpo"): an opt-out, marked so it can be reviewed.
    Typo,
    /// A leading keyword with a short code or a topic ("STOP 36180", "STOP PUB").
    KeywordWithCode,
    /// The SMS provider matched an opt-out keyword itself and says so (Twilio's `OptOutType`).
    ProviderOptOut,
}

/// The kinds of keyword a tenant can list; opt-out covers both scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    OptOut,
    OptIn,
    Help,
}

/// What one inbound message means for consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    OptOut {
        scope: Scope,
        keyword: String,
        rule: Rule,
        language: Option<String>,
    },
    OptIn {
        keyword: String,
        rule: Rule,
        language: Option<String>,
    },
    Help {
        keyword: String,
        rule: Rule,
        language: Option<String>,
    },
    /// A keyword appeared but not as a request (e.g. "don't stop"): no consent change, kept for review.
    PossibleOptOut {
        keyword: String,
        language: Option<String>,
    },
    NoChange,
}

/// Per-tenant changes to one language's default keywords, as written in the config file.
///
/// Removals apply to the built-in defaults only and are applied before additions,
/// so a keyword both removed and added ends up present. Removing a keyword the
/// language does not have is not an error: tenants may strip a word from every
/// language without checking which ones ship it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeywordOverrides {
    pub opt_out_add: Vec<String>,
    pub opt_out_remove: Vec<String>,
    pub opt_out_all_add: Vec<String>,
    pub opt_in_add: Vec<String>,
    pub opt_in_remove: Vec<String>,
    pub help_add: Vec<String>,
    pub help_remove: Vec<String>,
    pub courtesy_add: Vec<String>,
    pub phrases_add: Vec<String>,
}

/// Longest keyword, courtesy expression or phrase accepted, in words. Bounding it
/// keeps span matching linear in the message length.
pub const MAX_KEYWORD_WORDS: usize = 16;

/// The tables' hash maps and sets. They are read at every word of every message, and
/// SipHash was a tenth of the pipeline's time on a chat stream (BENCHMARKS.md); their keys
/// are the language files' words, fixed at start, so text a customer writes can only look
/// them up, never fill a bucket, and a fast seeded hash (foldhash) is enough.
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type Set<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// The compiled keyword tables of one tenant: the default sets of its enabled languages plus its overrides.
#[derive(Debug, Clone)]
pub struct KeywordSet {
    languages: Vec<LangTable>,
    entries: Map<String, Entry>,
    /// Longest key (in tokens) starting with a given token, so span scanning
    /// only tries lengths that can exist.
    first_token_max: Map<String, usize>,
    extra: rules::Extra,
}

impl KeywordSet {
    /// Languages with built-in defaults: one file each in `domain/language/`, in their order
    /// ("en", "fr", "es", "de", "it", "pt").
    pub fn builtin_languages() -> &'static [&'static str] {
        language::codes()
    }

    /// `languages` in priority order (the tenant's default language first). Unknown language codes
    /// without overrides are an error naming the code;
    /// a language code that only has overrides (no builtin) is allowed.
    ///
    /// Codes are compared trimmed and ASCII-lowercased; a repeated code keeps its
    /// first position. An empty list is an error, since STOP would then do
    /// nothing. Overrides for a language the tenant does not enable are ignored:
    /// shared config defaults carry overrides for every language any tenant uses.
    pub fn new(
        languages: &[String],
        overrides: &BTreeMap<String, KeywordOverrides>,
    ) -> Result<Self, KeywordError> {
        let mut codes: Vec<String> = Vec::new();
        for raw in languages {
            let code = lang_code(raw);
            if code.is_empty() {
                return Err(KeywordError::EmptyLanguageCode);
            }
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        if codes.is_empty() {
            return Err(KeywordError::NoLanguage);
        }

        let mut by_code: HashMap<String, &KeywordOverrides> = HashMap::new();
        for (raw, ov) in overrides {
            let code = lang_code(raw);
            if !codes.contains(&code) {
                continue;
            }
            if by_code.insert(code, ov).is_some() {
                return Err(KeywordError::OverridesTwice(raw.clone()));
            }
        }

        let mut tables = Vec::with_capacity(codes.len());
        for code in &codes {
            let defaults = builtin(code);
            let ov = by_code.get(code).copied();
            if defaults.is_none() && ov.is_none() {
                return Err(KeywordError::UnknownLanguage(code.clone()));
            }
            tables.push(build_table(code, defaults, ov)?);
        }
        Ok(Self::compile(tables))
    }

    /// Convenience: builtin defaults for the given languages, no overrides.
    ///
    /// Unknown codes are skipped rather than failing, since this cannot return an
    /// error; if none is known, English is used so STOP always works.
    pub fn defaults(languages: &[&str]) -> Self {
        let mut codes: Vec<String> = Vec::new();
        for raw in languages {
            let code = lang_code(raw);
            if builtin(&code).is_some() && !codes.contains(&code) {
                codes.push(code);
            }
        }
        if codes.is_empty() {
            codes.push("en".to_string());
        }
        let tables = codes
            .iter()
            .filter_map(|code| build_table(code, builtin(code), None).ok())
            .collect();
        Self::compile(tables)
    }

    /// Keywords (normalized, uppercase for display) of `intent` for `language`, for documentation and the template linter.
    ///
    /// Opt-out includes the revoke-everything keywords; spellings that differ
    /// only by hyphen or apostrophe are listed once. Unknown languages yield
    /// an empty list.
    pub fn keywords(&self, language: &str, intent: Intent) -> Vec<String> {
        let code = lang_code(language);
        self.languages
            .iter()
            .filter(|t| t.code == code)
            .flat_map(|t| t.words.iter())
            .filter(|w| w.kind.group() == Some(intent))
            .map(|w| w.display.clone())
            .collect()
    }

    /// True if `text` (any form) normalizes to an opt-out keyword of `language` (for template lint: "is this button text an opt-out keyword?").
    pub fn is_opt_out_keyword(&self, language: &str, text: &str) -> bool {
        let code = lang_code(language);
        let key = match_key(&normalize(text));
        !key.is_empty()
            && self.languages.iter().filter(|t| t.code == code).any(|t| {
                t.words
                    .iter()
                    .any(|w| w.keys.contains(&key) && matches!(w.kind, Kind::OptOut(_)))
            })
    }

    /// Enabled language codes in priority order, as compiled.
    pub fn languages(&self) -> Vec<String> {
        self.languages.iter().map(|t| t.code.clone()).collect()
    }
}
