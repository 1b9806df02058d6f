//! Keyboard typos of opt-out keywords ("stpo", "unsubscibe", "arrte"): a customer who mistypes
//! STOP still means it, and platforms (Braze's and MoEngage's fuzzy opt-out) honour it. Only
//! built-in keywords of four letters or more are targets, since their real-word neighbours are
//! curated in the language files; a word of any enabled language is never a typo, so "shop",
//! "top" and "stoop" stay chat.

use super::{Map, Set};

use super::tables::{Kind, LangTable};
use crate::domain::language;

/// Shortest keyword, in letters, a typo can target: shorter ones have too many real neighbours.
const MIN_TARGET_LETTERS: usize = 4;

/// Longest word looked at: a keyword plus one letter, or a run of repeated letters.
const MAX_WORD_LETTERS: usize = 32;

#[derive(Debug, Clone, Default)]
pub(super) struct TypoIndex {
    /// Target keys (single words), by themselves and by their letter runs collapsed.
    targets: Set<String>,
    collapsed: Map<String, String>,
    /// Keys next to each key on the enabled languages' keyboards.
    neighbours: Map<char, Vec<char>>,
    /// Letters a dropped one may have been.
    alphabet: Vec<char>,
    /// Real words that are one typo from a target.
    words: Set<String>,
    /// The targets' letters, by their number of letters: a word is compared with the targets
    /// of its length and one more, never turned into every candidate spelling (hundreds of
    /// allocations for each word of every chat message).
    by_len: Map<usize, Vec<Vec<char>>>,
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
        let mut targets: Vec<&String> = index.targets.iter().collect();
        targets.sort();
        for t in targets {
            let letters: Vec<char> = t.chars().collect();
            index.by_len.entry(letters.len()).or_default().push(letters);
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
        let same = self.by_len.get(&letters.len()).into_iter().flatten();
        let longer = self.by_len.get(&(letters.len() + 1)).into_iter().flatten();
        // The edits in their order of precedence: two swapped letters, then a neighbouring
        // key, then a dropped letter; within one, the earliest position, then the order of
        // the neighbours or the alphabet. Distinct targets never tie on that order, since
        // one edit at one place with one letter makes one word.
        let pick = |found: Option<(usize, usize, &Vec<char>)>| {
            found.map(|(_, _, t)| t.iter().collect::<String>())
        };
        let swapped = same.clone().filter_map(|t| {
            let diff: Vec<usize> = (0..t.len()).filter(|&j| t[j] != letters[j]).collect();
            match diff[..] {
                [i, j] if j == i + 1 && t[i] == letters[j] && t[j] == letters[i] => Some((i, 0, t)),
                _ => None,
            }
        });
        let target = pick(swapped.min_by_key(|&(i, o, _)| (i, o)))
            .or_else(|| {
                let replaced = same.filter_map(|t| {
                    let mut diff = (0..t.len()).filter(|&j| t[j] != letters[j]);
                    let i = diff.next()?;
                    if diff.next().is_some() {
                        return None;
                    }
                    let near = self.neighbours.get(&letters[i])?;
                    let order = near.iter().position(|&n| n == t[i])?;
                    Some((i, order, t))
                });
                pick(replaced.min_by_key(|&(i, o, _)| (i, o)))
            })
            .or_else(|| {
                let inserted = longer.filter_map(|t| {
                    let i = (0..=letters.len())
                        .find(|&i| t[..i] == letters[..i] && t[i + 1..] == letters[i..])?;
                    let order = self.alphabet.iter().position(|&c| c == t[i])?;
                    Some((i, order, t))
                });
                pick(inserted.min_by_key(|&(i, o, _)| (i, o)))
            })?;
        self.targets.get(&target).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::tables::{build_table, builtin};
    use super::*;

    /// The index of every built-in language, as a tenant with all of them enabled has it.
    fn index() -> TypoIndex {
        let tables: Vec<LangTable> = ["en", "fr", "es", "de", "it", "pt"]
            .iter()
            .filter_map(|code| build_table(code, builtin(code), None).ok())
            .collect();
        TypoIndex::new(&tables)
    }

    /// The first definition of a correction: every candidate spelling, in order of
    /// precedence, looked up among the targets. Kept as the reference the comparing
    /// correction must agree with.
    fn by_candidates<'a>(index: &'a TypoIndex, word: &str) -> Option<&'a str> {
        let letters: Vec<char> = word.chars().collect();
        let hit = |candidate: Vec<char>| -> Option<&str> {
            let s: String = candidate.into_iter().collect();
            index.targets.get(&s).map(String::as_str)
        };
        for i in 0..letters.len().saturating_sub(1) {
            let mut swapped = letters.clone();
            swapped.swap(i, i + 1);
            if let Some(k) = hit(swapped) {
                return Some(k);
            }
        }
        for (i, c) in letters.iter().enumerate() {
            for &n in index.neighbours.get(c).into_iter().flatten() {
                let mut replaced = letters.clone();
                replaced[i] = n;
                if let Some(k) = hit(replaced) {
                    return Some(k);
                }
            }
        }
        for i in 0..=letters.len() {
            for &c in &index.alphabet {
                let mut longer = letters.clone();
                longer.insert(i, c);
                if let Some(k) = hit(longer) {
                    return Some(k);
                }
            }
        }
        None
    }

    /// What `correct` answers once its guards and the collapsed runs are passed.
    fn guarded<'a>(index: &'a TypoIndex, word: &str) -> Option<Option<&'a str>> {
        let n = word.chars().count();
        let skip = !(MIN_TARGET_LETTERS - 1..=MAX_WORD_LETTERS).contains(&n)
            || !word.chars().all(char::is_alphabetic)
            || index.targets.contains(word)
            || index.words.contains(word)
            || index.collapsed.contains_key(&collapse(word));
        (!skip).then(|| index.correct(word))
    }

    #[test]
    fn every_one_edit_spelling_of_every_target_is_corrected_as_the_candidates_say() {
        let index = index();
        let mut checked = 0;
        for target in &index.targets {
            let letters: Vec<char> = target.chars().collect();
            let mut words = Vec::new();
            for i in 0..letters.len() {
                let mut dropped = letters.clone();
                dropped.remove(i);
                words.push(dropped);
                if i + 1 < letters.len() {
                    let mut swapped = letters.clone();
                    swapped.swap(i, i + 1);
                    words.push(swapped);
                }
                for &n in index.neighbours.get(&letters[i]).into_iter().flatten() {
                    let mut replaced = letters.clone();
                    replaced[i] = n;
                    words.push(replaced);
                }
            }
            for word in words {
                let word: String = word.into_iter().collect();
                if let Some(answer) = guarded(&index, &word) {
                    assert_eq!(answer, by_candidates(&index, &word), "{word:?}");
                    checked += 1;
                }
            }
        }
        assert!(
            checked > 1000,
            "only {checked} spellings reached the comparison"
        );
    }

    proptest! {
        #[test]
        fn any_word_is_corrected_as_the_candidates_say(word in "[a-zéèàüöäñç]{3,12}") {
            let index = index();
            if let Some(answer) = guarded(&index, &word) {
                prop_assert_eq!(answer, by_candidates(&index, &word));
            }
        }
    }
}
