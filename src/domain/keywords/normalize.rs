//! The one text form both the tables and the messages are compared in, so that however a
//! customer types a keyword (casing, accents, emoji, curly apostrophes) it meets the table's
//! spelling.

use unicode_normalization::char::{decompose_compatible, is_combining_mark};
use unicode_normalization::UnicodeNormalization;

/// Typographic apostrophes and dashes that NFKC leaves alone but phones
/// insert automatically ("don’t", "opt‑out"); mapped so they match the ASCII
/// spellings. Invisible format characters are dropped so "st\u{200B}op" is "stop".
/// Applied before decomposition (U+00B4 would become a space and a mark) and
/// after it (U+0149 decomposes to U+02BC, a letter-like apostrophe).
fn pre_map(c: char) -> Option<char> {
    match c {
        '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{02BC}' | '\u{2032}' | '`' | '\u{00B4}'
        | '\u{FF07}' => Some('\''),
        '\u{2010}'..='\u{2015}'
        | '\u{2212}'
        | '\u{2043}'
        | '\u{FE58}'
        | '\u{FE63}'
        | '\u{FF0D}' => Some('-'),
        '\u{00AD}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}' => None,
        _ => Some(c),
    }
}

fn is_connector(c: char) -> bool {
    c == '-' || c == '\''
}

/// The normalization used before matching (public so callers and tests can show it).
///
/// Both tables and messages go through it, so "ARRÊT", "arret" and "Arrêt !"
/// meet in the same form. Hyphens and apostrophes survive only between two
/// letters/digits ("opt-out", "don't"); every other non-alphanumeric character
/// (punctuation, emoji, symbols) separates words, and the result is the words
/// joined by single spaces. German ß folds to "ss" as full case folding does.
pub fn normalize(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for c in text.chars() {
        fold_char(c, &mut folded);
    }
    // Marks are gone, so recomposition only matters outside ASCII (Hangul).
    if folded.is_ascii() {
        words(folded.chars(), folded.len())
    } else {
        words(folded.nfc(), folded.len())
    }
}

/// NFKD, lowercase, NFKD again (lowercasing can yield decomposable
/// characters), drop marks: with the final recomposition this equals
/// NFKC + case fold + diacritic stripping. Per character, because canonical
/// reordering only moves the marks that are dropped anyway; ASCII skips the
/// tables since it is most of the traffic.
fn fold_char(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(if c == '`' {
            '\''
        } else {
            c.to_ascii_lowercase()
        });
        return;
    }
    let Some(c) = pre_map(c) else { return };
    decompose_compatible(c, |d| {
        for lower in d.to_lowercase() {
            decompose_compatible(lower, |e| match pre_map(e) {
                Some('ß') => out.push_str("ss"),
                Some(e) if !is_combining_mark(e) => out.push(e),
                _ => {}
            });
        }
    });
}

/// Keeps letters and digits, hyphens/apostrophes between two of them, and
/// turns every other run of characters into one space between words.
fn words(chars: impl Iterator<Item = char>, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    let mut chars = chars.peekable();
    let mut prev_alnum = false;
    let mut pending_space = false;
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
            prev_alnum = true;
        } else if is_connector(c) && prev_alnum && chars.peek().is_some_and(|n| n.is_alphanumeric())
        {
            out.push(c);
            prev_alnum = false;
        } else {
            pending_space = true;
            prev_alnum = false;
        }
    }
    out
}

/// The form messages are matched in: hyphens and apostrophes split words, so
/// "opt-out" is "opt out" and French elisions stay visible ("l'arrêt" has the
/// word "arret"). Table entries with an apostrophe are also stored joined
/// ([`joined_key`]) because people type "dont" and "mabonner".
pub(super) fn match_key(normalized: &str) -> String {
    normalized
        .chars()
        .map(|c| if is_connector(c) { ' ' } else { c })
        .collect()
}

/// Every form a normalized table entry matches: [`match_key`], plus [`joined_key`] when it
/// differs.
pub(crate) fn match_keys(normalized: &str) -> Vec<String> {
    let mut keys = vec![match_key(normalized)];
    keys.extend(joined_key(normalized));
    keys
}

/// The apostrophe-free spelling of a normalized table entry, if it differs.
fn joined_key(normalized: &str) -> Option<String> {
    normalized.contains('\'').then(|| {
        normalized
            .chars()
            .filter(|c| *c != '\'')
            .map(|c| if c == '-' { ' ' } else { c })
            .collect()
    })
}

/// Byte ranges of the words of a match key (single-space separated by construction).
pub(super) fn token_spans(key: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for (i, b) in key.bytes().enumerate() {
        if b == b' ' {
            if i > start {
                spans.push((start, i));
            }
            start = i + 1;
        }
    }
    if key.len() > start {
        spans.push((start, key.len()));
    }
    spans
}
