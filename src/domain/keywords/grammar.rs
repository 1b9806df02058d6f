//! The revocation grammar of one language: word classes and patterns over them, read from the
//! language file. People revoke consent in endless wordings ("never message me again", "take my
//! number off your list"), but the wordings are few families of (verb, me, object); a pattern
//! per family covers them where a phrase list would need every combination.

use super::Map;

use super::normalize::{match_keys, normalize};
use crate::domain::language;

/// One position of a pattern; classes are indexes into [`Grammar::classes`].
#[derive(Debug, Clone)]
enum Slot {
    Class {
        class: usize,
        optional: bool,
    },
    /// The next word is not in the class; consumes nothing.
    Not(usize),
    /// Only courtesy words follow.
    End,
    /// Only courtesy words come before: for wordings that are a request only when they open
    /// the message ("plus de sms svp", never "je voudrais plus de promos").
    Start,
}

/// Where only courtesy words surround the message's words: `head[i]`, only courtesy words
/// before token `i`; `tail[i]`, only courtesy words from token `i` on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Edges<'a> {
    pub(super) head: &'a [bool],
    pub(super) tail: &'a [bool],
}

/// A language's compiled grammar.
#[derive(Debug, Clone, Default)]
pub(super) struct Grammar {
    /// Each class: its words, each as the tokens of one match key.
    classes: Vec<Vec<Vec<String>>>,
    /// For each class, its words by their first token: a class of hundreds of words is
    /// looked up, not scanned, at each token of every message.
    by_first: Vec<Map<String, Vec<usize>>>,
    patterns: Vec<Vec<Slot>>,
    /// The patterns by a first token they can start with: only those are tried at a token.
    starting: Map<String, Vec<usize>>,
    /// Words after which a match does not count (another object follows the verb), as word
    /// sequences ("prima delle").
    pub(super) not_before: Vec<Vec<String>>,
    /// Negations before which a match does not count, as word sequences.
    pub(super) not_after: Vec<Vec<String>>,
    /// Nouns after which, within three words, a match does not count (another object), as
    /// word sequences ("voice notes", "estado de cuenta").
    pub(super) other_objects: Vec<Vec<String>>,
    /// Keywords that take any one-word topic; words that widen a keyword to every purpose.
    pub(super) any_topic: Vec<String>,
    pub(super) all_words: Vec<String>,
    pub(super) determiners: Vec<String>,
    pub(super) wait_words: Vec<String>,
    pub(super) conjunctions: Vec<String>,
    pub(super) not_services: Vec<String>,
    pub(super) topic_links: Vec<String>,
}

/// The match keys of a spelling, split into words.
fn token_forms(spelling: &str) -> Vec<Vec<String>> {
    let normalized = normalize(spelling);
    if normalized.is_empty() {
        return Vec::new();
    }
    match_keys(&normalized)
        .into_iter()
        .map(|k| k.split(' ').map(str::to_string).collect())
        .collect()
}

/// Every match key of every spelling, as word sequences: for the lists whose entries may be
/// phrases (`not_before`, `not_after`, `other_objects`).
fn phrases(spellings: &[String]) -> Vec<Vec<String>> {
    spellings.iter().flat_map(|w| token_forms(w)).collect()
}

/// Every match key of every spelling, one word each: for the single-word lists (links, topics).
pub(super) fn single_words<'a>(spellings: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    spellings
        .into_iter()
        .flat_map(token_forms)
        .filter(|t| t.len() == 1)
        .flatten()
        .collect()
}

impl Grammar {
    /// Compiles a language file's grammar; an unknown class name is an error, so a typo in a
    /// pattern fails the language files' test instead of silently matching nothing.
    pub(super) fn compile(data: &language::Grammar) -> Result<Self, String> {
        let mut names: Map<&str, usize> = Map::default();
        let mut classes: Vec<Vec<Vec<String>>> = Vec::new();
        for (name, words) in &data.classes {
            names.insert(name.as_str(), classes.len());
            classes.push(words.iter().flat_map(|w| token_forms(w)).collect());
        }
        let mut patterns = Vec::new();
        for pattern in &data.patterns {
            let mut slots = Vec::new();
            for raw in pattern.split_whitespace() {
                if raw == "$" {
                    slots.push(Slot::End);
                    continue;
                }
                if raw == "^" {
                    if !slots.is_empty() {
                        return Err(format!("pattern {pattern:?}: ^ must come first"));
                    }
                    slots.push(Slot::Start);
                    continue;
                }
                let (negated, rest) = match raw.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, raw),
                };
                let (name, optional) = match rest.strip_suffix('?') {
                    Some(name) => (name, true),
                    None => (rest, false),
                };
                // CLASS names are upper case, digits allowed after the first letter ("VIT2").
                let is_class = name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                let class = if is_class {
                    *names
                        .get(name)
                        .ok_or_else(|| format!("pattern {pattern:?}: no class {name}"))?
                } else {
                    // A literal word is a class of its own.
                    classes.push(token_forms(name));
                    classes.len() - 1
                };
                slots.push(if negated {
                    Slot::Not(class)
                } else {
                    Slot::Class { class, optional }
                });
            }
            let first = slots.iter().find(|s| !matches!(s, Slot::Start));
            if !matches!(
                first,
                Some(Slot::Class {
                    optional: false,
                    ..
                })
            ) {
                return Err(format!(
                    "pattern {pattern:?} must start with a required word"
                ));
            }
            patterns.push(slots);
        }
        let by_first: Vec<Map<String, Vec<usize>>> = classes
            .iter()
            .map(|words| {
                let mut index: Map<String, Vec<usize>> = Map::default();
                for (w, word) in words.iter().enumerate() {
                    if let Some(first) = word.first() {
                        index.entry(first.clone()).or_default().push(w);
                    }
                }
                index
            })
            .collect();
        let mut starting: Map<String, Vec<usize>> = Map::default();
        for (p, slots) in patterns.iter().enumerate() {
            // compile checked that the first slot after ^ is a required class.
            if let Some(Slot::Class { class, .. }) =
                slots.iter().find(|s| !matches!(s, Slot::Start))
            {
                for first in by_first[*class].keys() {
                    starting.entry(first.clone()).or_default().push(p);
                }
            }
        }
        Ok(Self {
            classes,
            by_first,
            patterns,
            starting,
            not_before: phrases(&data.not_before),
            not_after: phrases(&data.not_after),
            other_objects: phrases(&data.other_objects),
            any_topic: data
                .any_topic
                .iter()
                .flat_map(|w| token_forms(w))
                .map(|t| t.join(" "))
                .collect(),
            all_words: single_words(data.all_words.iter().map(String::as_str)),
            determiners: single_words(data.determiners.iter().map(String::as_str)),
            wait_words: single_words(data.wait_words.iter().map(String::as_str)),
            conjunctions: single_words(data.conjunctions.iter().map(String::as_str)),
            not_services: single_words(data.not_services.iter().map(String::as_str)),
            topic_links: single_words(data.topic_links.iter().map(String::as_str)),
        })
    }

    /// Lengths of the class's words found at token `i`.
    fn lens_at<'a>(
        &'a self,
        class: usize,
        toks: &'a [&str],
        i: usize,
    ) -> impl Iterator<Item = usize> + 'a {
        let words = &self.classes[class];
        toks.get(i)
            .and_then(|first| self.by_first[class].get(*first))
            .into_iter()
            .flatten()
            .filter_map(move |&w| {
                let word = &words[w];
                let end = i + word.len();
                (end <= toks.len() && toks[i..end].iter().zip(word).all(|(t, w)| t == w))
                    .then_some(word.len())
            })
    }

    /// Every end position a pattern's slots can reach from token `i`.
    fn ends(&self, slots: &[Slot], toks: &[&str], i: usize, edges: Edges, out: &mut Vec<usize>) {
        let Some((slot, rest)) = slots.split_first() else {
            out.push(i);
            return;
        };
        match slot {
            Slot::End => {
                if edges.tail[i] {
                    self.ends(rest, toks, i, edges, out);
                }
            }
            Slot::Start => {
                if edges.head[i] {
                    self.ends(rest, toks, i, edges, out);
                }
            }
            Slot::Not(class) => {
                if self.lens_at(*class, toks, i).next().is_none() {
                    self.ends(rest, toks, i, edges, out);
                }
            }
            Slot::Class { class, optional } => {
                for len in self.lens_at(*class, toks, i) {
                    self.ends(rest, toks, i + len, edges, out);
                }
                if *optional {
                    self.ends(rest, toks, i, edges, out);
                }
            }
        }
    }

    /// The longest (then earliest) span some pattern matches, as token positions. `allowed`
    /// vetoes a span (a negation before it, or a word after it that shows another object).
    pub(super) fn find(
        &self,
        toks: &[&str],
        edges: Edges,
        allowed: impl Fn(usize, usize) -> bool,
    ) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        let mut ends = Vec::new();
        for start in 0..toks.len() {
            let tried = self.starting.get(toks[start]).into_iter().flatten();
            for slots in tried.map(|&p| &self.patterns[p]) {
                ends.clear();
                self.ends(slots, toks, start, edges, &mut ends);
                for &end in ends.iter().filter(|&&e| e > start && allowed(start, e)) {
                    if best.map_or(true, |(s, e)| end - start > e - s) {
                        best = Some((start, end));
                    }
                }
            }
        }
        best
    }
}
