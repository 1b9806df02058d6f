//! Keyboard typos of opt-out keywords ("stpo", "unsubscibe", "arrte"): a customer who mistypes
//! STOP still means it, and platforms (Braze's and MoEngage's fuzzy opt-out) honour it. Only
//! built-in keywords of four letters or more are targets, since their real-word neighbours are
//! curated in the language files; a word of any enabled language is never a typo, so "shop",
//! "top" and "stoop" stay chat.

use std::collections::{HashMap, HashSet};

use super::tables::{Kind, LangTable};
use crate::domain::language;

/// Shortest keyword, in letters, a typo can target: shorter ones have too many real neighbours.
const MIN_TARGET_LETTERS: usize = 4;

/// Longest word looked at: a keyword plus one letter, or a run of repeated letters.
const MAX_WORD_LETTERS: usize = 32;

#[derive(Debug, Clone, Default)]
pub(super) struct TypoIndex {
    /// Target keys (single words), by themselves and by their letter runs collapsed.
    targets: HashSet<String>,
    collapsed: HashMap<String, String>,
    /// Keys next to each key on the enabled languages' keyboards.
    neighbours: HashMap<char, Vec<char>>,
    /// Letters a dropped one may have been.
    alphabet: Vec<char>,
    /// Real words that are one typo from a target.
    words: HashSet<String>,
}

/// "stooop" -> "stop": runs of one letter read as one.
fn collapse(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut last = None;
    for c in word.chars() {
        if last != Some(c) {
            out.push(c);
        }
        last = Some(c);
    }
    out
}

impl TypoIndex {
    pub(super) fn new(tables: &[LangTable]) -> Self {
        let mut index = Self::default();
        for table in tables {
            let Some(lang) = language::get(&table.code) else {
                continue;
            };
            let builtin: Vec<&str> = lang
                .keywords
                .opt_out
                .iter()
                .chain(&lang.keywords.opt_out_all)
                .map(|t| t.word.as_str())
                .collect();
            // The table has the tenant's removals applied; a removed keyword is no target.
            for word in table
                .words
                .iter()
                .filter(|w| matches!(w.kind, Kind::OptOut(_)))
            {
                for key in word.keys.iter().filter(|k| {
                    !k.contains(' ')
                        && k.chars().count() >= MIN_TARGET_LETTERS
                        && builtin.iter().any(|b| b == k)
                }) {
                    index.targets.insert(key.clone());
                    index
                        .collapsed
                        .entry(collapse(key))
                        .or_insert_with(|| key.clone());
                    for c in key.chars() {
                        if !index.alphabet.contains(&c) {
                            index.alphabet.push(c);
                        }
                    }
                }
            }
            // A keyword the tenant removed is meant as chat: it is no typo of a kept one either.
            let kept = |b: &&&str| {
                table
                    .words
                    .iter()
                    .any(|w| matches!(w.kind, Kind::OptOut(_)) && w.keys.iter().any(|k| k == **b))
            };
            index
                .words
                .extend(builtin.iter().filter(|b| !kept(b)).map(|b| b.to_string()));
            index.add_keyboard(&lang.typo.keyboard);
            index.words.extend(lang.typo.words.iter().cloned());
        }
        index
    }

    fn add_keyboard(&mut self, rows: &[String]) {
        let rows: Vec<Vec<char>> = rows.iter().map(|r| r.chars().collect()).collect();
        for (r, row) in rows.iter().enumerate() {
            for (i, &c) in row.iter().enumerate() {
                let mut near = Vec::new();
                near.extend(i.checked_sub(1).map(|j| row[j]));
                near.extend(row.get(i + 1));
                // Staggered rows: the keys above are at i and i+1, below at i-1 and i.
                if let Some(above) = r.checked_sub(1).map(|r| &rows[r]) {
                    near.extend(above.get(i));
                    near.extend(above.get(i + 1));
                }
                if let Some(below) = rows.get(r + 1) {
                    near.extend(i.checked_sub(1).and_then(|j| below.get(j)));
                    near.extend(below.get(i));
                }
                let entry = self.neighbours.entry(c).or_default();
                for n in near {
                    if !entry.contains(&n) {
                        entry.push(n);
                    }
                }
            }
        }
    }

    /// The keyword `word` is a typo of, if any: a repeated or dropped-double letter, two
    /// swapped letters, a neighbouring key, or one dropped letter.
    pub(super) fn correct(&self, word: &str) -> Option<&str> {
        let letters: Vec<char> = word.chars().collect();
        if self.targets.is_empty()
            || letters.len() < MIN_TARGET_LETTERS - 1
            || letters.len() > MAX_WORD_LETTERS
            || !letters.iter().all(|c| c.is_alphabetic())
            || self.targets.contains(word)
            || self.words.contains(word)
        {
            return None;
        }
        if let Some(key) = self.collapsed.get(&collapse(word)) {
            return Some(key);
        }
        let hit = |candidate: Vec<char>| -> Option<&str> {
            let s: String = candidate.into_iter().collect();
            self.targets.get(&s).map(String::as_str)
        };
        for i in 0..letters.len().saturating_sub(1) {
            let mut swapped = letters.clone();
            swapped.swap(i, i + 1);
            if let Some(k) = hit(swapped) {
                return Some(k);
            }
        }
        for (i, c) in letters.iter().enumerate() {
            for &n in self.neighbours.get(c).into_iter().flatten() {
                let mut replaced = letters.clone();
                replaced[i] = n;
                if let Some(k) = hit(replaced) {
                    return Some(k);
                }
            }
        }
        for i in 0..=letters.len() {
            for &c in &self.alphabet {
                let mut longer = letters.clone();
                longer.insert(i, c);
                if let Some(k) = hit(longer) {
                    return Some(k);
                }
            }
        }
        None
    }
}
