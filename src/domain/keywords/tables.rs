//! One language's table for one tenant: the built-in words of its language file, less the
//! tenant's removals, plus its additions, each checked so a config mistake fails at load time.

use super::normalize::{match_keys, normalize};
use super::{Intent, KeywordError, KeywordOverrides, Scope, MAX_KEYWORD_WORDS};
use crate::domain::language::{self, Keywords, Term};

/// What a table word does; courtesy words and phrases never change consent on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    OptOut(Scope),
    OptIn,
    Help,
    Courtesy,
    Phrase,
}

impl Kind {
    /// Keywords of different groups in one language would make a message mean two things.
    pub(super) fn group(self) -> Option<Intent> {
        match self {
            Kind::OptOut(_) => Some(Intent::OptOut),
            Kind::OptIn => Some(Intent::OptIn),
            Kind::Help => Some(Intent::Help),
            Kind::Courtesy | Kind::Phrase => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Word {
    /// Match forms: [`match_keys`].
    pub(super) keys: Vec<String>,
    /// Normalized and uppercased, as shown in results and documentation.
    pub(super) display: String,
    pub(super) kind: Kind,
}

#[derive(Debug, Clone)]
pub(super) struct LangTable {
    pub(super) code: String,
    pub(super) words: Vec<Word>,
}

pub(super) fn lang_code(code: &str) -> String {
    code.trim().to_ascii_lowercase()
}

/// The built-in words of language `code` (already trimmed and lowercased).
pub(super) fn builtin(code: &str) -> Option<&'static Keywords> {
    language::get(code).map(|l| &l.keywords)
}

/// Turns a configured spelling into (match keys, display), rejecting entries that
/// could never match so config mistakes surface at load time rather than as silence.
pub(super) fn prepare(
    code: &str,
    field: &'static str,
    spelling: &str,
) -> Result<(Vec<String>, String), KeywordError> {
    let normalized = normalize(spelling);
    if normalized.is_empty() {
        return Err(KeywordError::NoLetters {
            code: code.to_string(),
            field,
            spelling: spelling.to_string(),
        });
    }
    let keys = match_keys(&normalized);
    let words = keys[0].split(' ').count();
    if words > MAX_KEYWORD_WORDS {
        return Err(KeywordError::TooManyWords {
            code: code.to_string(),
            field,
            spelling: spelling.to_string(),
            words,
        });
    }
    let display = normalized.to_uppercase();
    Ok((keys, display))
}

fn keys_of(code: &str, field: &'static str, list: &[String]) -> Result<Vec<String>, KeywordError> {
    let mut keys = Vec::new();
    for spelling in list {
        keys.extend(prepare(code, field, spelling)?.0);
    }
    Ok(keys)
}

struct TableBuilder<'a> {
    code: &'a str,
    words: Vec<Word>,
}

impl TableBuilder<'_> {
    fn add(&mut self, field: &'static str, spelling: &str, kind: Kind) -> Result<(), KeywordError> {
        let (keys, display) = prepare(self.code, field, spelling)?;
        let existing = self.words.iter().position(|w| {
            w.keys.iter().any(|k| keys.contains(k))
                && match kind.group() {
                    Some(_) => w.kind.group().is_some(),
                    None => w.kind == kind,
                }
        });
        match existing {
            None => {
                self.words.push(Word {
                    keys,
                    display,
                    kind,
                });
                Ok(())
            }
            Some(i) => {
                let other = self.words[i].kind;
                if other.group() != kind.group() {
                    return Err(KeywordError::TwoMeanings {
                        code: self.code.to_string(),
                        field,
                        spelling: spelling.to_string(),
                        other: group_name(other),
                    });
                }
                // A tenant asking for STOP to revoke everything upgrades the scope.
                if kind == Kind::OptOut(Scope::All) {
                    self.words[i].kind = kind;
                }
                Ok(())
            }
        }
    }
}

fn group_name(kind: Kind) -> &'static str {
    match kind {
        Kind::OptOut(_) => "opt-out",
        Kind::OptIn => "opt-in",
        Kind::Help => "help",
        Kind::Courtesy => "courtesy",
        Kind::Phrase => "phrase",
    }
}

pub(super) fn build_table(
    code: &str,
    defaults: Option<&Keywords>,
    ov: Option<&KeywordOverrides>,
) -> Result<LangTable, KeywordError> {
    let empty = KeywordOverrides::default();
    let ov = ov.unwrap_or(&empty);
    let out_remove = keys_of(code, "opt_out_remove", &ov.opt_out_remove)?;
    let in_remove = keys_of(code, "opt_in_remove", &ov.opt_in_remove)?;
    let help_remove = keys_of(code, "help_remove", &ov.help_remove)?;
    let mut b = TableBuilder {
        code,
        words: Vec::new(),
    };

    if let Some(d) = defaults {
        let lists: [(&[Term], Kind, &[String]); 6] = [
            (&d.opt_out, Kind::OptOut(Scope::Marketing), &out_remove),
            (&d.opt_out_all, Kind::OptOut(Scope::All), &out_remove),
            (&d.opt_in, Kind::OptIn, &in_remove),
            (&d.help, Kind::Help, &help_remove),
            (&d.courtesy, Kind::Courtesy, &[]),
            (&d.phrases, Kind::Phrase, &[]),
        ];
        for (list, kind, removed) in lists {
            for Term { word: spelling, .. } in list {
                let (keys, _) = prepare(code, "default", spelling)?;
                if !keys.iter().any(|k| removed.contains(k)) {
                    b.add("default", spelling, kind)?;
                }
            }
        }
    }

    let adds: [(&[String], Kind, &'static str); 6] = [
        (
            &ov.opt_out_all_add,
            Kind::OptOut(Scope::All),
            "opt_out_all_add",
        ),
        (
            &ov.opt_out_add,
            Kind::OptOut(Scope::Marketing),
            "opt_out_add",
        ),
        (&ov.opt_in_add, Kind::OptIn, "opt_in_add"),
        (&ov.help_add, Kind::Help, "help_add"),
        (&ov.courtesy_add, Kind::Courtesy, "courtesy_add"),
        (&ov.phrases_add, Kind::Phrase, "phrases_add"),
    ];
    for (list, kind, field) in adds {
        for spelling in list {
            b.add(field, spelling, kind)?;
        }
    }
    Ok(LangTable {
        code: code.to_string(),
        words: b.words,
    })
}
