//! The rules past exact and courtesy keywords: a leading keyword with a short code or a topic,
//! the revocation phrases and grammar, and keyboard typos. Each reads the language files' data
//! compiled once per tenant into [`Extra`].

use super::Set;

use super::grammar::{single_words, Edges, Grammar};
use super::normalize::token_spans;
use super::tables::LangTable;
use super::typo::TypoIndex;
use super::{Classification, Intent, KeywordSet, Rule, Scope};
use crate::domain::language;

/// The per-tenant data of the rules below, merged over the enabled languages.
#[derive(Debug, Clone, Default)]
pub(super) struct Extra {
    /// (language position, its grammar), in priority order.
    grammars: Vec<(usize, Grammar)>,
    not_before: Vec<Vec<String>>,
    not_after: Vec<Vec<String>>,
    other_objects: Vec<Vec<String>>,
    any_topic: Set<String>,
    all_words: Set<String>,
    determiners: Set<String>,
    wait_words: Set<String>,
    conjunctions: Set<String>,
    not_services: Set<String>,
    topic_links: Set<String>,
    topics: Set<String>,
    links: Set<String>,
    typos: TypoIndex,
}

impl Extra {
    /// Whether a keyword (as a match key) may mean "wait": every word of it is a wait word.
    pub(super) fn is_wait_word(&self, key: &str) -> bool {
        key.split(' ').all(|w| self.wait_words.contains(w))
    }

    pub(super) fn is_conjunction(&self, word: &str) -> bool {
        self.conjunctions.contains(word)
    }

    pub(super) fn new(tables: &[LangTable]) -> Self {
        let mut extra = Self {
            typos: TypoIndex::new(tables),
            ..Self::default()
        };
        for (lang, table) in tables.iter().enumerate() {
            let Some(data) = language::get(&table.code) else {
                continue;
            };
            // The language files' test compiles every grammar, so an error here cannot ship.
            if let Ok(grammar) = Grammar::compile(&data.grammar) {
                extra.not_before.extend(grammar.not_before.iter().cloned());
                extra.not_after.extend(grammar.not_after.iter().cloned());
                extra
                    .other_objects
                    .extend(grammar.other_objects.iter().cloned());
                extra.any_topic.extend(grammar.any_topic.iter().cloned());
                extra.all_words.extend(grammar.all_words.iter().cloned());
                extra
                    .determiners
                    .extend(grammar.determiners.iter().cloned());
                extra.wait_words.extend(grammar.wait_words.iter().cloned());
                extra
                    .conjunctions
                    .extend(grammar.conjunctions.iter().cloned());
                extra
                    .not_services
                    .extend(grammar.not_services.iter().cloned());
                extra
                    .topic_links
                    .extend(grammar.topic_links.iter().cloned());
                extra.grammars.push((lang, grammar));
            }
            let topics = data.keywords.topics.iter().map(|t| t.word.as_str());
            extra.topics.extend(single_words(topics));
            extra
                .links
                .extend(single_words(data.grammar.links.iter().map(String::as_str)));
        }
        extra
    }
}

/// A short code as customers copy it from "STOP au 36180": three to eight digits.
fn is_code(word: &str) -> bool {
    (3..=8).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_digit())
}

/// A message's words, as the rules see it.
pub(super) struct Words<'a> {
    /// Normalized text (apostrophes kept) for display; same byte offsets as `key`.
    pub(super) normalized: &'a str,
    pub(super) key: &'a str,
    pub(super) spans: Vec<(usize, usize)>,
}

impl<'a> Words<'a> {
    pub(super) fn new(normalized: &'a str, key: &'a str) -> Self {
        Self {
            normalized,
            key,
            spans: token_spans(key),
        }
    }

    fn tok(&self, i: usize) -> &'a str {
        &self.key[self.spans[i].0..self.spans[i].1]
    }

    /// Whether one of `phrases` (word sequences) starts at word `i`.
    fn starts_any(&self, i: usize, phrases: &[Vec<String>]) -> bool {
        phrases.iter().any(|p| {
            i + p.len() <= self.spans.len()
                && p.iter().enumerate().all(|(k, t)| self.tok(i + k) == t)
        })
    }

    fn display(&self, from: usize, to: usize) -> String {
        self.normalized[self.spans[from].0..self.spans[to - 1].1].to_uppercase()
    }
}

impl KeywordSet {
    /// `tail[i]`: only courtesy words from token `i` to the end.
    fn courtesy_tail(&self, w: &Words) -> Vec<bool> {
        let n = w.spans.len();
        let mut tail = vec![false; n + 1];
        tail[n] = true;
        for i in (0..n).rev() {
            tail[i] = (1..=self.max_len_at(w.key, &w.spans, i)).any(|len| {
                tail[i + len]
                    && self
                        .entry_at(w.key, &w.spans, i, len)
                        .is_some_and(|e| e.courtesy)
            });
        }
        tail
    }

    /// `head[i]`: only courtesy words before token `i`.
    fn courtesy_head(&self, w: &Words) -> Vec<bool> {
        let n = w.spans.len();
        let mut head = vec![false; n + 1];
        head[0] = true;
        for i in 0..n {
            if !head[i] {
                continue;
            }
            for len in 1..=self.max_len_at(w.key, &w.spans, i) {
                if self
                    .entry_at(w.key, &w.spans, i, len)
                    .is_some_and(|e| e.courtesy)
                {
                    head[i + len] = true;
                }
            }
        }
        head
    }

    /// "STOP 36180", "STOP au 36180", "STOP PUB", "stop to quit": French operators' short-code
    /// practice, Meta's "Stop promotions" button and the echo of "reply STOP to quit". A topic
    /// names marketing, so it revokes marketing only; an all-word ("STOP ALLE") revokes every
    /// purpose; an unambiguous keyword takes any one word as the service it stops ("STOP
    /// meteo").
    /// `any_word`: also take one word of any kind after an unambiguous keyword; tried only once
    /// the phrases and the grammar had their say, so "unsubscribe me" stays a phrase.
    pub(super) fn keyword_with_code(&self, w: &Words, any_word: bool) -> Option<Classification> {
        let n = w.spans.len();
        let head = self.courtesy_head(w);
        let tail = self.courtesy_tail(w);
        for i in (0..n).filter(|&i| head[i]) {
            for len in (1..=self.max_len_at(w.key, &w.spans, i)).rev() {
                let Some(hit) = self
                    .entry_at(w.key, &w.spans, i, len)
                    .and_then(|e| e.role(Intent::OptOut))
                else {
                    continue;
                };
                let mut j = i + len;
                if j < n && self.extra.links.contains(w.tok(j)) {
                    j += 1;
                }
                let start = j;
                let (mut topic, mut all, mut last) = (false, false, start);
                while j < n {
                    let tok = w.tok(j);
                    if is_code(tok) || self.entries.get(tok).is_some_and(|e| e.opt_out.is_some()) {
                        last = j + 1;
                    } else if self.extra.all_words.contains(tok) {
                        all = true;
                        last = j + 1;
                    } else if self.extra.topics.contains(tok) {
                        topic = true;
                        last = j + 1;
                    } else if !self.extra.determiners.contains(tok) {
                        // A determiner is skipped; `last` only moves past a topic after it.
                        break;
                    }
                    j += 1;
                }
                let keyword = &w.key[w.spans[i].0..w.spans[i + len - 1].1];
                if any_word
                    && last == start
                    && start < n
                    && !self.entries.contains_key(w.tok(start))
                    && !self.extra.not_services.contains(w.tok(start))
                    && tail[start + 1]
                    && self.extra.any_topic.contains(keyword)
                {
                    // One word of any kind: the name of the service ("STOP meteo").
                    topic = true;
                    last = start + 1;
                }
                if last > start && tail[last] {
                    let scope = match (all, topic) {
                        (true, _) => Scope::All,
                        (false, true) => Scope::Marketing,
                        (false, false) => hit.scope,
                    };
                    return Some(Classification::OptOut {
                        scope,
                        keyword: w.display(i, last),
                        rule: Rule::KeywordWithCode,
                        language: self.language(hit),
                    });
                }
            }
        }
        None
    }

    /// A revocation phrase of the tables, else a sentence of some language's grammar; either
    /// anywhere in the message, unless the next word shows the verb has another object.
    pub(super) fn revocation(&self, w: &Words) -> Option<Classification> {
        self.revocation_in(w, true)
    }

    /// [`Self::revocation`] in one clause of a message. `$` holds at a clause's end only when
    /// it ends the message: "stop it, that's funny" goes on after "stop it".
    pub(super) fn revocation_in(&self, w: &Words, ends_message: bool) -> Option<Classification> {
        let n = w.spans.len();
        let negated = |start: usize| {
            self.extra.not_after.iter().any(|neg| {
                neg.len() <= start
                    && neg
                        .iter()
                        .zip(start - neg.len()..start)
                        .all(|(t, i)| w.tok(i) == t)
            })
        };
        // After "about" the noun is what the messages are about: "stop texting me about my
        // invoice" still stops the texts.
        let other_object = |end: usize| {
            !(end < n && self.extra.topic_links.contains(w.tok(end)))
                && (end..n.min(end + 4)).any(|i| w.starts_any(i, &self.extra.other_objects))
        };
        // "no me manden el código" has another object; "dejen de mandarme los avisos" names
        // the messages themselves after the same article.
        let another_object = |end: usize| {
            w.starts_any(end, &self.extra.not_before)
                && !(end + 1 < n && self.extra.topics.contains(w.tok(end + 1)))
        };
        let allowed = |start: usize, end: usize| {
            (end == n || !another_object(end)) && !negated(start) && !other_object(end)
        };
        let mut phrase = None;
        for i in 0..n {
            for len in 1..=self.max_len_at(w.key, &w.spans, i) {
                let hit = self
                    .entry_at(w.key, &w.spans, i, len)
                    .and_then(|e| e.phrase.as_ref())
                    .filter(|_| allowed(i, i + len));
                if let Some(h) = hit {
                    if phrase.map_or(true, |(l, _)| len > l) {
                        phrase = Some((len, h));
                    }
                }
            }
        }
        if let Some((_, h)) = phrase {
            return Some(self.revoked(h.display.clone(), self.language(h)));
        }
        let head = self.courtesy_head(w);
        let tail = if ends_message {
            self.courtesy_tail(w)
        } else {
            vec![false; n + 1]
        };
        let edges = Edges {
            head: &head,
            tail: &tail,
        };
        let toks: Vec<&str> = (0..n).map(|i| w.tok(i)).collect();
        let mut best: Option<(usize, usize, usize)> = None;
        for (lang, grammar) in &self.extra.grammars {
            if let Some((s, e)) = grammar.find(&toks, edges, allowed) {
                if best.map_or(true, |(bs, be, _)| e - s > be - bs) {
                    best = Some((s, e, *lang));
                }
            }
        }
        let (s, e, lang) = best?;
        let language = self.languages.get(lang).map(|t| t.code.clone());
        Some(self.revoked(w.display(s, e), language))
    }

    /// Phrases and grammar revoke marketing only: they name messages, not every purpose.
    fn revoked(&self, keyword: String, language: Option<String>) -> Classification {
        Classification::OptOut {
            scope: Scope::Marketing,
            keyword,
            rule: Rule::RevocationPhrase,
            language,
        }
    }

    /// Reads the message again with each typo of a keyword corrected; if that is an opt-out,
    /// the message is one, marked `typo` for review.
    pub(super) fn typo(&self, w: &Words) -> Option<Classification> {
        // "opt outt", "un subscribe": a keyword split by a stray space, typo or not; and
        // "R E M O V E   M E": a message typed a letter at a time.
        let n = w.spans.len();
        let spelled = n >= 3 && (0..n).all(|i| w.tok(i).chars().count() == 1);
        if (2..=3).contains(&n) || spelled {
            let joined: String = (0..w.spans.len()).map(|i| w.tok(i)).collect();
            let keyword = if self.entries.contains_key(joined.as_str()) {
                Some(joined.as_str())
            } else {
                self.extra.typos.correct(&joined)
            };
            if let Some(c) = keyword.and_then(|k| self.exact(k, Rule::Typo)) {
                if matches!(c, Classification::OptOut { .. }) {
                    return Some(c);
                }
            }
            if spelled {
                // The word breaks are gone: an opt-out keyword or phrase spelled the same, the
                // first by key so that the answer never depends on the map's order.
                let hit = self
                    .entries
                    .iter()
                    .filter(|(key, _)| key.replace(' ', "") == joined)
                    .filter_map(|(key, e)| {
                        Some((key, e.role(Intent::OptOut).or(e.phrase.as_ref())?))
                    })
                    .min_by(|a, b| a.0.cmp(b.0))
                    .map(|(_, h)| h);
                if let Some(h) = hit {
                    return Some(Classification::OptOut {
                        scope: h.scope,
                        keyword: h.display.clone(),
                        rule: Rule::Typo,
                        language: self.language(h),
                    });
                }
            }
        }
        let mut corrected = false;
        let fixed: Vec<&str> = (0..w.spans.len())
            .map(|i| {
                let tok = w.tok(i);
                if self.entries.contains_key(tok) {
                    return tok;
                }
                match self.extra.typos.correct(tok) {
                    Some(keyword) => {
                        corrected = true;
                        keyword
                    }
                    None => tok,
                }
            })
            .collect();
        if !corrected {
            return None;
        }
        let fixed = fixed.join(" ");
        let w = Words::new(&fixed, &fixed);
        let c = self
            .exact(&fixed, Rule::Typo)
            .filter(|c| matches!(c, Classification::OptOut { .. }))
            .or_else(|| {
                self.wrapped(&fixed, &w.spans, Intent::OptOut)
                    .map(|h| self.result(Intent::OptOut, h, Rule::Typo))
            })
            .or_else(|| self.keyword_with_code(&w, false))
            .or_else(|| self.revocation(&w))?;
        match c {
            Classification::OptOut {
                scope,
                keyword,
                language,
                ..
            } => Some(Classification::OptOut {
                scope,
                keyword,
                rule: Rule::Typo,
                language,
            }),
            _ => None,
        }
    }
}
