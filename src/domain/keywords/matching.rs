//! Classification: the tenant's tables merged into one lookup per key, then the rules in
//! precedence order over the message's words. Each step tries only span lengths some key has,
//! so a message costs time linear in its length.

use super::Map;

use super::normalize::{match_key, normalize, token_spans};
use super::rules::{Extra, Words};
use super::tables::{Kind, LangTable};
use super::{Classification, Intent, KeywordSet, Rule, Scope};

/// The winning table word for one role of a key: first language in priority order.
#[derive(Debug, Clone)]
pub(super) struct Hit {
    lang: usize,
    pub(super) display: String,
    pub(super) scope: Scope,
}

/// Everything every enabled language says about one key, merged so that a
/// single hash lookup answers all questions about a span of tokens.
#[derive(Debug, Clone, Default)]
pub(super) struct Entry {
    pub(super) courtesy: bool,
    pub(super) opt_out: Option<Hit>,
    pub(super) opt_in: Option<Hit>,
    pub(super) help: Option<Hit>,
    pub(super) phrase: Option<Hit>,
}

impl Entry {
    pub(super) fn role(&self, intent: Intent) -> Option<&Hit> {
        match intent {
            Intent::OptOut => self.opt_out.as_ref(),
            Intent::OptIn => self.opt_in.as_ref(),
            Intent::Help => self.help.as_ref(),
        }
    }
}

/// Ordering of competing matches: broader scope, then more words, then earlier.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    all_scope: bool,
    len: usize,
    earlier: std::cmp::Reverse<usize>,
}

/// What ends a sentence or a clause, for [`KeywordSet::classify`]'s keyword-sentence rule: "Not
/// interested, stop" has a keyword of its own as much as "Not interested. Stop" does, and so
/// has "second time I ask: NO MORE SMS".
pub(super) const SENTENCE_ENDS: [char; 10] = [
    '.', '!', '?', ';', ',', ':', '\n', '\u{2026}', '\u{a1}', '\u{bf}',
];

/// A message as classification sees it: each sentence normalized, joined by ". ". Two texts
/// with the same form classify alike (the property the tests and the fuzz target check).
pub fn normalize_sentences(text: &str) -> String {
    text.split(SENTENCE_ENDS)
        .map(normalize)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(". ")
}

/// One sentence or clause of a message, normalized once for both rules that read clauses.
struct Clause {
    normalized: String,
    key: String,
}

impl Clause {
    /// The message's non-empty clauses, split at [`SENTENCE_ENDS`].
    fn all(text: &str) -> Vec<Clause> {
        text.split(SENTENCE_ENDS)
            .map(normalize)
            .filter(|n| !n.is_empty())
            .map(|normalized| Clause {
                key: match_key(&normalized),
                normalized,
            })
            .collect()
    }
}

impl KeywordSet {
    pub(super) fn compile(tables: Vec<LangTable>) -> Self {
        let mut entries: Map<String, Entry> = Map::default();
        let mut first_token_max: Map<String, usize> = Map::default();
        for (lang, table) in tables.iter().enumerate() {
            for (w, key) in table
                .words
                .iter()
                .flat_map(|w| w.keys.iter().map(move |k| (w, k)))
            {
                let len = key.split(' ').count();
                let first = key.split(' ').next().unwrap_or_default();
                let max = first_token_max.entry(first.to_string()).or_insert(0);
                *max = (*max).max(len);

                let hit = |scope| Hit {
                    lang,
                    display: w.display.clone(),
                    scope,
                };
                let e = entries.entry(key.clone()).or_default();
                match w.kind {
                    Kind::Courtesy => e.courtesy = true,
                    Kind::Phrase => {
                        e.phrase.get_or_insert_with(|| hit(Scope::Marketing));
                    }
                    Kind::OptIn => {
                        e.opt_in.get_or_insert_with(|| hit(Scope::Marketing));
                    }
                    Kind::Help => {
                        e.help.get_or_insert_with(|| hit(Scope::Marketing));
                    }
                    Kind::OptOut(scope) => {
                        let better = match &e.opt_out {
                            None => true,
                            Some(h) => h.scope == Scope::Marketing && scope == Scope::All,
                        };
                        if better {
                            e.opt_out = Some(hit(scope));
                        }
                    }
                }
            }
        }
        Self {
            extra: Extra::new(&tables),
            languages: tables,
            entries,
            first_token_max,
        }
    }

    pub(super) fn language(&self, hit: &Hit) -> Option<String> {
        self.languages.get(hit.lang).map(|t| t.code.clone())
    }

    pub(super) fn result(&self, intent: Intent, hit: &Hit, rule: Rule) -> Classification {
        let keyword = hit.display.clone();
        let language = self.language(hit);
        match intent {
            Intent::OptOut => Classification::OptOut {
                scope: hit.scope,
                keyword,
                rule,
                language,
            },
            Intent::OptIn => Classification::OptIn {
                keyword,
                rule,
                language,
            },
            Intent::Help => Classification::Help {
                keyword,
                rule,
                language,
            },
        }
    }

    /// Whole-key match in intent precedence order.
    pub(super) fn exact(&self, key: &str, rule: Rule) -> Option<Classification> {
        let e = self.entries.get(key)?;
        [Intent::OptOut, Intent::OptIn, Intent::Help]
            .into_iter()
            .find_map(|intent| e.role(intent).map(|h| self.result(intent, h, rule)))
    }

    /// Longest span worth trying at token `i`: no key starting with this
    /// word is longer, which is what keeps scanning linear.
    pub(super) fn max_len_at(&self, key: &str, toks: &[(usize, usize)], i: usize) -> usize {
        self.first_token_max
            .get(&key[toks[i].0..toks[i].1])
            .copied()
            .unwrap_or(0)
            .min(toks.len() - i)
    }

    /// The table entry for the `len` words starting at token `i`.
    pub(super) fn entry_at(
        &self,
        key: &str,
        toks: &[(usize, usize)],
        i: usize,
        len: usize,
    ) -> Option<&Entry> {
        self.entries.get(&key[toks[i].0..toks[i + len - 1].1])
    }

    /// The best keyword of `intent` such that the whole message is that keyword
    /// surrounded by courtesy words (or repeats of keywords of the same intent,
    /// as in "STOP STOP STOP"). Linear: forward and backward reachability over
    /// token positions, each step trying only the bounded span lengths.
    pub(super) fn wrapped(
        &self,
        key: &str,
        toks: &[(usize, usize)],
        intent: Intent,
    ) -> Option<&Hit> {
        let n = toks.len();
        let filler = |e: &Entry| e.courtesy || e.role(intent).is_some();

        let mut fwd = vec![false; n + 1];
        fwd[0] = true;
        let mut furthest = 0;
        for i in 0..n {
            if i > furthest {
                // Nothing reaches this word: some word is neither courtesy nor keyword.
                return None;
            }
            if !fwd[i] {
                continue;
            }
            for len in 1..=self.max_len_at(key, toks, i) {
                if self.entry_at(key, toks, i, len).is_some_and(filler) {
                    fwd[i + len] = true;
                    furthest = furthest.max(i + len);
                }
            }
        }
        if !fwd[n] {
            return None;
        }

        let mut bwd = vec![false; n + 1];
        bwd[n] = true;
        for i in (0..n).rev() {
            bwd[i] = (1..=self.max_len_at(key, toks, i))
                .any(|len| bwd[i + len] && self.entry_at(key, toks, i, len).is_some_and(filler));
        }

        let mut best: Option<(Rank, &Hit)> = None;
        for i in (0..n).filter(|&i| fwd[i]) {
            for len in 1..=self.max_len_at(key, toks, i) {
                let hit = self
                    .entry_at(key, toks, i, len)
                    .and_then(|e| e.role(intent))
                    .filter(|_| bwd[i + len]);
                if let Some(h) = hit {
                    let rank = Rank {
                        all_scope: h.scope == Scope::All,
                        len,
                        earlier: std::cmp::Reverse(i),
                    };
                    let better = match &best {
                        None => true,
                        Some((r, _)) => rank > *r,
                    };
                    if better {
                        best = Some((rank, h));
                    }
                }
            }
        }
        best.map(|(_, h)| h)
    }

    /// Longest (then earliest) span anywhere in the message for which `pick` finds a hit.
    fn find_span(
        &self,
        key: &str,
        toks: &[(usize, usize)],
        pick: impl Fn(&Entry) -> Option<&Hit>,
    ) -> Option<&Hit> {
        let mut best: Option<(usize, &Hit)> = None;
        for i in 0..toks.len() {
            for len in 1..=self.max_len_at(key, toks, i) {
                if let Some(h) = self.entry_at(key, toks, i, len).and_then(&pick) {
                    let better = match &best {
                        None => true,
                        Some((l, _)) => len > *l,
                    };
                    if better {
                        best = Some((len, h));
                    }
                }
            }
        }
        best.map(|(_, h)| h)
    }

    /// Classifies a free-text message.
    ///
    /// Precedence, strongest first: the whole message is a keyword (opt-out-all,
    /// opt-out, opt-in, help); the message is one keyword of one intent plus only
    /// courtesy words or repeats of same-intent keywords ("STOP STOP", "stop
    /// please"), in the same order; a leading opt-out keyword with a short code or
    /// a topic ("STOP 36180", "STOP PUB"); a revocation phrase or grammar sentence
    /// anywhere; a keyboard typo of a keyword that reads as one of the above; an
    /// opt-out keyword as whole words inside other text (review only). Among candidates
    /// of one step the broader scope, then the longer, then the earlier wins.
    /// Acting only on the first three is deliberate: a missed keyword in chatter
    /// is reviewed by a human, a wrong opt-out silently loses a customer.
    pub fn classify(&self, text: &str) -> Classification {
        let normalized = normalize(text);
        let key = match_key(&normalized);
        if key.is_empty() {
            return Classification::NoChange;
        }
        if let Some(c) = self.exact(&key, Rule::ExactKeyword) {
            return c;
        }
        let toks = token_spans(&key);
        for intent in [Intent::OptOut, Intent::OptIn, Intent::Help] {
            if let Some(h) = self.wrapped(&key, &toks, intent) {
                return self.result(intent, h, Rule::CourtesyKeyword);
            }
        }
        let words = Words::new(&normalized, &key);
        if let Some(c) = self
            .keyword_with_code(&words, false)
            .or_else(|| self.revocation(&words))
            .or_else(|| self.typo(&words))
            .or_else(|| self.keyword_with_code(&words, true))
        {
            return c;
        }
        let clauses = Clause::all(text);
        if let Some(c) = self
            .keyword_sentence(&clauses)
            .or_else(|| self.clause_revocation(&clauses))
        {
            return c;
        }
        if let Some(h) = self.find_span(&key, &toks, |e| e.opt_out.as_ref()) {
            return Classification::PossibleOptOut {
                keyword: h.display.clone(),
                language: self.language(h),
            };
        }
        Classification::NoChange
    }

    /// A message with a sentence that is an opt-out keyword on its own ("comment arrêter de
    /// recevoir vos sms ? stop", "Bitte austragen, kein Interesse"): people put the keyword
    /// before or after whatever else they had to say. Before the last sentence a "wait word"
    /// does not count: a leading "Stop!" often means "wait" ("Stop, I ordered the wrong
    /// size"), so it stays a possible opt-out for review. A keyword after a sentence's last
    /// conjunction is a clause too ("Cancel my appointment and STOP ALL"), but only one that
    /// cannot mean "wait": "reschedule and cancel" asks about the appointment, "... But stop."
    /// does not.
    fn keyword_sentence(&self, clauses: &[Clause]) -> Option<Classification> {
        let keys: Vec<&String> = clauses
            .iter()
            .map(|c| &c.key)
            .filter(|key| !key.is_empty())
            .collect();
        let last = keys.len().checked_sub(1)?;
        let waits = |hit: &Hit| {
            self.extra
                .is_wait_word(&match_key(&normalize(&hit.display)))
        };
        let found = |hit: &Hit| self.result(Intent::OptOut, hit, Rule::KeywordInSentence);
        keys.iter().enumerate().rev().find_map(|(i, key)| {
            if let Some(hit) = self.opt_out_keyword(key).filter(|_| last > 0) {
                if i == last || !waits(hit) {
                    return Some(found(hit));
                }
            }
            let toks = token_spans(key);
            let conjunction = toks
                .iter()
                .rposition(|&(s, e)| self.extra.is_conjunction(&key[s..e]))?;
            let &(rest, _) = toks.get(conjunction + 1)?;
            let hit = self.opt_out_keyword(&key[rest..])?;
            // A sentence that opens with the conjunction ("But also stop.") is a sentence of
            // its own keyword, which ends the message as any other would.
            let own_sentence = conjunction == 0 && i == last;
            (own_sentence || !waits(hit)).then(|| found(hit))
        })
    }

    /// The opt-out keyword a clause is, alone or among courtesy words.
    fn opt_out_keyword(&self, key: &str) -> Option<&Hit> {
        self.entries
            .get(key)
            .and_then(|e| e.role(Intent::OptOut))
            .or_else(|| self.wrapped(key, &token_spans(key), Intent::OptOut))
    }

    /// The phrases and grammar again on each clause of a message of several, so that `^` holds
    /// at a clause's start ("Une copie. Plus de newsletter ni d'offres"), and `$` at the last
    /// clause's end.
    fn clause_revocation(&self, clauses: &[Clause]) -> Option<Classification> {
        if clauses.len() < 2 {
            return None;
        }
        let last = clauses.len() - 1;
        clauses
            .iter()
            .enumerate()
            .find_map(|(i, c)| self.revocation_in(&Words::new(&c.normalized, &c.key), i == last))
    }

    /// Classifies a quick-reply button payload or id. Payloads are machine
    /// strings chosen by the template author, so only a whole keyword counts
    /// ("STOP", "opt_out", "Unsubscribe"); anything else is NoChange, never a
    /// possible opt-out.
    pub fn classify_payload(&self, payload: &str) -> Classification {
        let key = match_key(&normalize(payload));
        if key.is_empty() {
            return Classification::NoChange;
        }
        self.exact(&key, Rule::QuickReplyPayload)
            .unwrap_or(Classification::NoChange)
    }
}
