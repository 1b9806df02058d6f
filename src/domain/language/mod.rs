//! The built-in languages, each one data file in this folder (`en.toml`, `fr.toml`, …).
//!
//! A customer meets a language in several places: the words the ledger reads (keywords,
//! courtesy words, revocation phrases), the replies it sends, the template footer and button the
//! linter asks for, and the starter config `init` writes. Keeping all of them in one file lets a
//! reviewer check a language as a whole, and makes adding a language adding one file: build.rs
//! compiles every `*.toml` of this folder into the binary, and tests.rs checks each one.
//!
//! A file, named by its ISO 639-1 code, holds:
//! - `position`: its rank among the built-in languages. A word several enabled languages share
//!   (STOP) is reported in the first by rank, and language lists follow this order.
//! - `[sources]`: a key for each list the words come from (a platform's defaults, a regulator's
//!   or operators' list, or common use) and what that list is.
//! - `[keywords]`: `opt_out`, `opt_out_all`, `opt_in`, `help`, `courtesy` and `phrases`, each a
//!   list of `{ word, source }` in the form [`normalize`](super::keywords::normalize()) gives, so
//!   the file shows exactly what is compared. Order matters: it is the order keywords are listed
//!   in (init's comments, the linter's messages).
//! - `[replies]`: `opt_out_confirmation`, `opt_in_confirmation` and `help`, the defaults a
//!   tenant's config may replace.
//! - `[template]`: the `footer` and QUICK_REPLY `button` text the linter suggests.
//! - `[init]`: the `region` init writes for this language.
//!
//! The files are parsed once, on first use, into the typed structs below.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

use super::replies::Messages;

/// One word or phrase of a list, with where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    pub word: String,
    /// A key of the file's `[sources]`.
    pub source: String,
}

/// The word lists of one language, as the classifier compiles them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keywords {
    /// Revoke marketing.
    pub opt_out: Vec<Term>,
    /// Revoke every purpose.
    pub opt_out_all: Vec<Term>,
    pub opt_in: Vec<Term>,
    pub help: Vec<Term>,
    /// Allowed around a keyword, never a request on their own.
    pub courtesy: Vec<Term>,
    /// Revocation sentences, matched anywhere in a message.
    pub phrases: Vec<Term>,
    /// What a leading opt-out keyword may name ("STOP PROMO", "STOP PUB"): marketing topics.
    #[serde(default)]
    pub topics: Vec<Term>,
}

impl Keywords {
    /// Every list with its name in the file.
    pub fn lists(&self) -> [(&'static str, &[Term]); 7] {
        [
            ("opt_out", &self.opt_out),
            ("opt_out_all", &self.opt_out_all),
            ("opt_in", &self.opt_in),
            ("help", &self.help),
            ("courtesy", &self.courtesy),
            ("phrases", &self.phrases),
            ("topics", &self.topics),
        ]
    }
}

/// The revocation grammar: word classes and the patterns over them, so that "never message me
/// again" and "don't ever text me" are one rule rather than two phrases to list.
///
/// A pattern is a list of slots separated by spaces: `CLASS` (one of the class's words),
/// `CLASS?` (optional), `!CLASS` (the next word is not one of the class's, nothing consumed),
/// `$` (only courtesy words follow), `^` (first only: only courtesy words come before), or a
/// literal word.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Grammar {
    /// A key of the file's `[sources]` for the class words and patterns.
    pub source: String,
    /// Words between a leading keyword and a short code ("STOP au 36180").
    pub links: Vec<String>,
    /// Words that, right after a revocation, show its verb has another object ("don't text
    /// me the code"): such a match does not count.
    pub not_before: Vec<String>,
    /// Words that, right before a revocation, negate it ("don't stop the deals"): such a
    /// match does not count.
    pub not_after: Vec<String>,
    /// Nouns that, within three words after a revocation, show it is about something other
    /// than messages ("no me manden más cobros duplicados", "me désinscrire de l'atelier"):
    /// such a match does not count.
    pub other_objects: Vec<String>,
    /// Leading keywords that take any one word after them as the service they stop ("STOP
    /// meteo", "STOPP INFO"): French and Swiss operators' practice. Only unambiguous ones:
    /// "cancel appointment" must stay chat.
    pub any_topic: Vec<String>,
    /// Words that, after a leading keyword, widen it to every purpose ("STOP ALLE", "block
    /// all", "stop tutti i messaggi").
    pub all_words: Vec<String>,
    /// Words skipped between a leading keyword and its topic ("cancel these messages", "STOP
    /// à tous vos messages").
    pub determiners: Vec<String>,
    /// Opt-out keywords that also mean "wait" or "cancel that" ("Stop, I ordered the wrong
    /// size"): on their own before the last sentence, they are left for review.
    pub wait_words: Vec<String>,
    /// Words that join two requests in one sentence ("Cancel my appointment and STOP ALL"):
    /// a keyword after the last of them is a clause of its own, as after a comma.
    pub conjunctions: Vec<String>,
    /// Words that make a leading keyword a compound of the language rather than a service
    /// ("arrêt maladie", sick leave; "stop tabac", a quit-smoking programme): no opt-out.
    pub not_services: Vec<String>,
    /// Words after a revocation that introduce what the messages are about ("stop texting me
    /// about my invoice"): a noun after them is no other object of the verb.
    pub topic_links: Vec<String>,
    pub classes: BTreeMap<String, Vec<String>>,
    pub patterns: Vec<String>,
}

/// What the typo rule needs: the keyboard typos come from, and the real words it must leave alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TypoData {
    /// Keyboard rows, top to bottom; neighbours are left, right and the staggered keys above
    /// and below.
    pub keyboard: Vec<String>,
    /// A key of the file's `[sources]` for `words`.
    pub source: String,
    /// Real words of the language one typo away from a built-in opt-out keyword of any
    /// built-in language: never read as a typo.
    pub words: Vec<String>,
}

/// What the template linter suggests for a marketing template in this language.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateTexts {
    pub footer: String,
    pub button: String,
}

/// What `consent-ledger init` writes for this language.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitTexts {
    /// ISO 3166 region national numbers are read in.
    pub region: String,
}

/// One language file, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// The file name; not written inside the file, so the two cannot disagree.
    #[serde(skip)]
    pub code: &'static str,
    pub position: u32,
    pub sources: BTreeMap<String, String>,
    pub keywords: Keywords,
    #[serde(default)]
    pub grammar: Grammar,
    #[serde(default)]
    pub typo: TypoData,
    pub replies: Messages,
    pub template: TemplateTexts,
    pub init: InitTexts,
}

/// A language file that does not have the layout above.
#[derive(Debug, thiserror::Error)]
#[error("language file {code}.toml: {source}")]
pub struct LanguageError {
    code: &'static str,
    source: toml::de::Error,
}

/// Every `*.toml` of this folder as (code, text), in file-name order; written by build.rs.
const FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/language_files.rs"));

/// Parses the text of the language file named `code`.
pub fn parse(code: &'static str, text: &str) -> Result<Language, LanguageError> {
    let mut language: Language =
        toml::from_str(text).map_err(|source| LanguageError { code, source })?;
    language.code = code;
    Ok(language)
}

/// The files are part of the binary and tests.rs parses each of them, so a failure here is a
/// build that skipped its tests.
static BUILTINS: LazyLock<Vec<Language>> = LazyLock::new(|| {
    let mut all: Vec<Language> = FILES
        .iter()
        .map(|(code, text)| parse(code, text).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    all.sort_by_key(|l| l.position);
    all
});

static CODES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| BUILTINS.iter().map(|l| l.code).collect());

/// The built-in languages, by position.
pub fn builtins() -> &'static [Language] {
    &BUILTINS
}

/// The built-in language codes, by position.
pub fn codes() -> &'static [&'static str] {
    &CODES
}

/// The built-in language `code` exactly as written (`fr`, not `FR` or `fr_FR`).
pub fn get(code: &str) -> Option<&'static Language> {
    BUILTINS.iter().find(|l| l.code == code)
}

/// [`get`], or English for a language without a file: English texts are the ones a customer
/// of an unknown language is most likely to read.
pub fn get_or_english(code: &str) -> &'static Language {
    get(code)
        .or_else(|| get("en"))
        .expect("en.toml is a built-in language file")
}

#[cfg(test)]
mod tests;
