//! Checks every language file, so that a new or edited file is complete and consistent before
//! any customer message meets it.

use std::collections::HashMap;

use super::*;
use crate::domain::keywords::{match_keys, normalize, KeywordSet};
use crate::template::{MAX_BUTTON_TEXT_CHARS, MAX_FOOTER_CHARS};

#[test]
fn every_file_parses_and_is_named_by_its_language_code() {
    assert!(!FILES.is_empty());
    for (code, text) in FILES {
        parse(code, text).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            code.len() == 2 && code.bytes().all(|b| b.is_ascii_lowercase()),
            "{code}.toml: name a language file by its ISO 639-1 code"
        );
    }
    assert_eq!(builtins().len(), FILES.len());
}

#[test]
fn positions_are_unique_and_keep_todays_order() {
    let mut positions: Vec<u32> = builtins().iter().map(|l| l.position).collect();
    positions.dedup();
    assert_eq!(
        positions.len(),
        builtins().len(),
        "two files share a position"
    );
    // Which language a shared word is reported in, and the order init and the linter list
    // languages in, follow this order: a new language goes after these.
    assert_eq!(codes()[..6], ["en", "fr", "es", "de", "it", "pt"]);
    assert!(get("en").is_some(), "English is the fallback language");
}

#[test]
fn every_file_has_its_keywords_and_reply_texts() {
    for l in builtins() {
        let code = l.code;
        for (name, list) in [
            ("opt_out", &l.keywords.opt_out),
            ("opt_in", &l.keywords.opt_in),
            ("help", &l.keywords.help),
        ] {
            assert!(!list.is_empty(), "{code}.toml: {name} is empty");
        }
        l.replies
            .validate()
            .unwrap_or_else(|e| panic!("{code}.toml: [replies] {e}"));
        let region = &l.init.region;
        assert!(
            region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase()),
            "{code}.toml: [init] region {region:?} is no ISO 3166 code"
        );
    }
}

#[test]
fn every_word_is_written_in_normalized_form() {
    for l in builtins() {
        for (name, list) in l.keywords.lists() {
            for term in list {
                assert_eq!(
                    normalize(&term.word),
                    term.word,
                    "{}.toml: {name} word {:?} is not in the form the classifier compares",
                    l.code,
                    term.word
                );
            }
        }
    }
}

#[test]
fn no_word_is_listed_twice_or_in_two_lists() {
    for l in builtins() {
        // Compared as matched: "opt out" and "opt-out" are one word, "m'abonner" also "mabonner".
        let mut seen: HashMap<String, (&str, &str)> = HashMap::new();
        for (name, list) in l.keywords.lists() {
            for term in list {
                for key in match_keys(&term.word) {
                    if let Some((other_list, other)) = seen.insert(key, (name, &term.word)) {
                        panic!(
                            "{}.toml: {name} word {:?} is already listed as {other:?} in {other_list}",
                            l.code, term.word
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_word_names_a_source_the_file_describes() {
    for l in builtins() {
        let mut used = std::collections::BTreeSet::new();
        for (name, list) in l.keywords.lists() {
            for term in list {
                assert!(
                    l.sources.contains_key(&term.source),
                    "{}.toml: {name} word {:?} has source {:?}, which [sources] does not describe",
                    l.code,
                    term.word,
                    term.source
                );
                used.insert(term.source.as_str());
            }
        }
        used.insert(l.grammar.source.as_str());
        used.insert(l.typo.source.as_str());
        for key in [&l.grammar.source, &l.typo.source] {
            assert!(
                l.sources.contains_key(key),
                "{}.toml: grammar or typo source {key:?} is not in [sources]",
                l.code
            );
        }
        for (key, text) in &l.sources {
            assert!(
                !text.trim().is_empty(),
                "{}.toml: source {key} says nothing",
                l.code
            );
            assert!(
                used.contains(key.as_str()),
                "{}.toml: source {key} is used by no word",
                l.code
            );
        }
    }
}

#[test]
fn template_texts_fit_meta_limits_and_name_an_opt_out_keyword() {
    for l in builtins() {
        let code = l.code;
        let set = KeywordSet::defaults(&[code]);
        let TemplateTexts { footer, button } = &l.template;
        assert!(
            footer.chars().count() <= MAX_FOOTER_CHARS,
            "{code}.toml: footer"
        );
        assert!(
            button.chars().count() <= MAX_BUTTON_TEXT_CHARS,
            "{code}.toml: button"
        );
        assert!(
            set.is_opt_out_keyword(code, button),
            "{code}.toml: button {button:?} is no opt-out keyword of {code}"
        );
    }
}

#[test]
fn every_grammar_compiles_and_its_words_are_normalized() {
    for l in builtins() {
        crate::domain::keywords::check_grammar(&l.grammar)
            .unwrap_or_else(|e| panic!("{}.toml: [grammar] {e}", l.code));
        let words = l.grammar.classes.values().flatten();
        let single = l.grammar.links.iter().chain(&l.grammar.not_before);
        for word in words.chain(single).chain(&l.typo.words) {
            assert_eq!(&normalize(word), word, "{}.toml: {word:?}", l.code);
        }
        for term in &l.keywords.topics {
            assert!(
                !term.word.contains(' '),
                "{}.toml: topic {:?} is one word",
                l.code,
                term.word
            );
        }
    }
}

#[test]
fn typo_data_has_a_keyboard_and_leaves_keywords_out() {
    for l in builtins() {
        assert!(
            !l.typo.keyboard.is_empty(),
            "{}.toml: [typo] keyboard",
            l.code
        );
        for word in &l.typo.words {
            assert!(
                !KeywordSet::defaults(&[l.code]).is_opt_out_keyword(l.code, word),
                "{}.toml: typo word {word:?} is an opt-out keyword",
                l.code
            );
        }
    }
}
