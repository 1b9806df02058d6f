use super::*;
use proptest::prelude::*;
use serde::de::value::{Error as DeError, StrDeserializer};
use serde::de::IntoDeserializer;

fn en_fr() -> KeywordSet {
    KeywordSet::defaults(&["en", "fr"])
}

fn langs(codes: &[&str]) -> Vec<String> {
    codes.iter().map(|c| c.to_string()).collect()
}

fn opt_out(scope: Scope, keyword: &str, rule: Rule, lang: &str) -> Classification {
    Classification::OptOut {
        scope,
        keyword: keyword.to_string(),
        rule,
        language: Some(lang.to_string()),
    }
}

fn marketing(keyword: &str, rule: Rule, lang: &str) -> Classification {
    opt_out(Scope::Marketing, keyword, rule, lang)
}

fn possible(keyword: &str, lang: &str) -> Classification {
    Classification::PossibleOptOut {
        keyword: keyword.to_string(),
        language: Some(lang.to_string()),
    }
}

fn opt_in(keyword: &str, rule: Rule, lang: &str) -> Classification {
    Classification::OptIn {
        keyword: keyword.to_string(),
        rule,
        language: Some(lang.to_string()),
    }
}

fn help(keyword: &str, rule: Rule, lang: &str) -> Classification {
    Classification::Help {
        keyword: keyword.to_string(),
        rule,
        language: Some(lang.to_string()),
    }
}

fn with_overrides(codes: &[&str], lang: &str, ov: KeywordOverrides) -> Result<KeywordSet, String> {
    let mut map = BTreeMap::new();
    map.insert(lang.to_string(), ov);
    KeywordSet::new(&langs(codes), &map).map_err(|e| e.to_string())
}

// ---- normalization ----

#[test]
fn normalize_folds_case_accents_and_surrounding_noise() {
    // Given messages typed with accents, casing, emoji and punctuation
    let cases = [
        ("ARRÊT", "arret"),
        ("Arrêt", "arret"),
        ("  Stop!!!  ", "stop"),
        ("STOP.", "stop"),
        ("stop!!! 🙏", "stop"),
        ("¡¡BAJA!!", "baja"),
        ("ＳＴＯＰ", "stop"),
        ("𝐒𝐓𝐎𝐏", "stop"),
        ("Désinscription", "desinscription"),
        ("STRAẞE", "strasse"),
        ("st\u{200B}op", "stop"),
        ("stop,please", "stop please"),
        ("stop\n\t please", "stop please"),
    ];
    for (input, expected) in cases {
        // When normalized
        // Then the matching form is the bare lowercase words
        assert_eq!(normalize(input), expected, "input {input:?}");
    }
}

#[test]
fn normalize_keeps_intra_word_hyphen_and_apostrophe_only() {
    // Given hyphens/apostrophes inside and around words, typed and typographic
    // When normalized
    // Then only those between two letters survive, as ASCII
    assert_eq!(normalize("OPT-OUT"), "opt-out");
    assert_eq!(normalize("opt‑out"), "opt-out");
    assert_eq!(normalize("Don’t"), "don't");
    assert_eq!(normalize("'stop'"), "stop");
    assert_eq!(normalize("- stop -"), "stop");
    assert_eq!(normalize("a--b"), "a b");
    assert_eq!(normalize("Désinscrivez-moi !"), "desinscrivez-moi");
}

#[test]
fn normalize_empty_and_symbol_only_inputs_are_empty() {
    for input in ["", "   ", "\n\t", "🙏🙏", "!!!", "👍🏽", "👨\u{200D}👩"] {
        assert_eq!(normalize(input), "", "input {input:?}");
    }
}

// ---- exact keywords ----

#[test]
fn stop_in_any_casing_or_punctuation_is_exact_opt_out() {
    // Given an English+French tenant
    let set = en_fr();
    for text in [
        "STOP",
        "stop",
        "Stop",
        "STOP.",
        "Stop!!!",
        " stop ",
        "stop!!! 🙏",
        "«STOP»",
    ] {
        // When the customer sends it
        // Then it is an exact opt-out of marketing, reported in English (first language)
        assert_eq!(
            set.classify(text),
            marketing("STOP", Rule::ExactKeyword, "en"),
            "text {text:?}"
        );
    }
}

#[test]
fn english_default_opt_out_keywords_all_match() {
    let set = KeywordSet::defaults(&["en"]);
    for (text, kw) in [
        ("unsubscribe", "UNSUBSCRIBE"),
        ("Cancel", "CANCEL"),
        ("END", "END"),
        ("quit", "QUIT"),
        ("Revoke", "REVOKE"),
        ("optout", "OPTOUT"),
        ("opt out", "OPT OUT"),
        ("OPT-OUT", "OPT OUT"),
        ("Opt Out!", "OPT OUT"),
    ] {
        assert_eq!(
            set.classify(text),
            marketing(kw, Rule::ExactKeyword, "en"),
            "text {text:?}"
        );
    }
}

#[test]
fn french_arret_matches_with_or_without_accent() {
    // Given a French-first tenant
    let set = KeywordSet::defaults(&["fr", "en"]);
    for text in ["ARRÊT", "arret", "Arrêt", "ARRET !", "arrêt."] {
        // When the customer writes ARRÊT in any form
        // Then it is the French ARRET keyword
        assert_eq!(
            set.classify(text),
            marketing("ARRET", Rule::ExactKeyword, "fr"),
            "text {text:?}"
        );
    }
}

#[test]
fn french_default_opt_out_keywords_all_match() {
    let set = KeywordSet::defaults(&["fr"]);
    for (text, kw) in [
        ("Arrêter", "ARRETER"),
        ("ARRÊTEZ", "ARRETEZ"),
        ("désabonner", "DESABONNER"),
        ("Se désabonner", "SE DESABONNER"),
        ("DÉSINSCRIRE", "DESINSCRIRE"),
        ("me désinscrire", "ME DESINSCRIRE"),
        ("Désinscription", "DESINSCRIPTION"),
        ("désabonnement", "DESABONNEMENT"),
        ("STOP SMS", "STOP SMS"),
        ("stop", "STOP"),
    ] {
        assert_eq!(
            set.classify(text),
            marketing(kw, Rule::ExactKeyword, "fr"),
            "text {text:?}"
        );
    }
}

#[test]
fn stop_all_revokes_every_purpose_and_beats_stop() {
    // Given STOP (marketing) and STOP ALL (all purposes) are both keywords
    let set = en_fr();
    for text in ["STOP ALL", "stopall", "Stop all!", "stop-all"] {
        // When the customer sends STOP ALL in any spelling
        let got = set.classify(text);
        // Then the longer keyword wins and the scope is all purposes
        assert!(
            matches!(
                got,
                Classification::OptOut {
                    scope: Scope::All,
                    rule: Rule::ExactKeyword,
                    ..
                }
            ),
            "text {text:?}: {got:?}"
        );
    }
    assert_eq!(
        set.classify("STOP ALL"),
        opt_out(Scope::All, "STOP ALL", Rule::ExactKeyword, "en")
    );
}

#[test]
fn french_stop_tout_and_arret_tout_revoke_everything() {
    let set = KeywordSet::defaults(&["fr"]);
    assert_eq!(
        set.classify("Stop tout"),
        opt_out(Scope::All, "STOP TOUT", Rule::ExactKeyword, "fr")
    );
    assert_eq!(
        set.classify("ARRÊT TOUT"),
        opt_out(Scope::All, "ARRET TOUT", Rule::ExactKeyword, "fr")
    );
    assert_eq!(
        set.classify("stop all"),
        opt_out(Scope::All, "STOP ALL", Rule::ExactKeyword, "fr")
    );
}

#[test]
fn other_builtin_languages_have_working_defaults() {
    let cases = [
        ("es", "Baja", "BAJA"),
        ("es", "parar", "PARAR"),
        ("es", "DETENER", "DETENER"),
        ("de", "Stopp", "STOPP"),
        ("de", "abmelden", "ABMELDEN"),
        ("de", "ABBESTELLEN", "ABBESTELLEN"),
        ("it", "Cancellami", "CANCELLAMI"),
        ("it", "DISISCRIVIMI", "DISISCRIVIMI"),
        ("pt", "Sair", "SAIR"),
        ("pt", "cancelar inscrição", "CANCELAR INSCRICAO"),
    ];
    for (lang, text, kw) in cases {
        let set = KeywordSet::defaults(&[lang]);
        assert_eq!(
            set.classify(text),
            marketing(kw, Rule::ExactKeyword, lang),
            "{lang} {text:?}"
        );
    }
}

// ---- language reporting ----

#[test]
fn shared_keyword_reports_first_language_in_priority_order() {
    // Given STOP exists in both English and French
    // When the tenant lists French first
    let fr_first = KeywordSet::defaults(&["fr", "en"]);
    // Then STOP is reported as French, and as English for an English-first tenant
    assert_eq!(
        fr_first.classify("stop"),
        marketing("STOP", Rule::ExactKeyword, "fr")
    );
    assert_eq!(
        en_fr().classify("stop"),
        marketing("STOP", Rule::ExactKeyword, "en")
    );
}

#[test]
fn keyword_of_a_later_language_reports_that_language() {
    let set = en_fr();
    assert_eq!(
        set.classify("Arrêtez"),
        marketing("ARRETEZ", Rule::ExactKeyword, "fr")
    );
    assert_eq!(
        set.classify("unsubscribe"),
        marketing("UNSUBSCRIBE", Rule::ExactKeyword, "en")
    );
}

#[test]
fn keyword_of_a_language_not_enabled_is_no_change() {
    // Given an English-only tenant
    let set = KeywordSet::defaults(&["en"]);
    // When a French keyword arrives
    // Then nothing matches
    assert_eq!(set.classify("arrêt"), Classification::NoChange);
}

// ---- courtesy ----

#[test]
fn keyword_wrapped_in_courtesy_words_is_opt_out() {
    let set = en_fr();
    for (text, kw, lang) in [
        ("please stop", "STOP", "en"),
        ("STOP merci", "STOP", "en"),
        ("arrêtez svp", "ARRETEZ", "fr"),
        ("stop please thanks", "STOP", "en"),
        ("Stop svp merci", "STOP", "en"),
        ("Bonjour, ARRÊT s'il vous plaît", "ARRET", "fr"),
        ("arret sil vous plait", "ARRET", "fr"),
        ("Unsubscribe, thank you!", "UNSUBSCRIBE", "en"),
        ("hi, please opt-out now 🙏", "OPT OUT", "en"),
        ("STOP STOP STOP", "STOP", "en"),
    ] {
        assert_eq!(
            set.classify(text),
            marketing(kw, Rule::CourtesyKeyword, lang),
            "text {text:?}"
        );
    }
}

#[test]
fn courtesy_wrapped_stop_all_keeps_all_scope() {
    let set = en_fr();
    assert_eq!(
        set.classify("STOP ALL please"),
        opt_out(Scope::All, "STOP ALL", Rule::CourtesyKeyword, "en")
    );
    assert_eq!(
        set.classify("stop, stop all, thanks"),
        opt_out(Scope::All, "STOP ALL", Rule::CourtesyKeyword, "en")
    );
}

#[test]
fn courtesy_words_alone_are_no_change() {
    let set = en_fr();
    for text in ["thanks!", "merci beaucoup", "ok", "hello 👋", "please"] {
        assert_eq!(
            set.classify(text),
            Classification::NoChange,
            "text {text:?}"
        );
    }
}

#[test]
fn mixed_intents_are_not_courtesy_wrapped() {
    // Given a message holding both an opt-out and an opt-in keyword
    // When classified
    // Then neither courtesy rule applies; the opt-out is only flagged for review
    assert_eq!(en_fr().classify("stop start"), possible("STOP", "en"));
}

// ---- revocation phrases ----

#[test]
fn english_revocation_phrases_opt_out_anywhere_in_the_message() {
    let set = en_fr();
    for (text, phrase) in [
        (
            "Please remove me from your list",
            "REMOVE ME FROM YOUR LIST",
        ),
        ("take me off your list asap!!", "TAKE ME OFF YOUR LIST"),
        ("Don't text me again", "DON'T TEXT ME"),
        ("dont text me", "DON'T TEXT ME"),
        ("do not message me anymore", "DO NOT MESSAGE ME"),
        ("stop sending me messages", "STOP SENDING ME MESSAGES"),
        ("Can you stop texting me?", "STOP TEXTING ME"),
        ("no more messages please", "NO MORE MESSAGES"),
        ("unsubscribe me", "UNSUBSCRIBE ME"),
        ("Hi, who is this? Remove me.", "REMOVE ME"),
    ] {
        assert_eq!(
            set.classify(text),
            marketing(phrase, Rule::RevocationPhrase, "en"),
            "text {text:?}"
        );
    }
}

#[test]
fn french_revocation_phrases_opt_out() {
    let set = KeywordSet::defaults(&["fr", "en"]);
    for (text, phrase) in [
        (
            "Je ne veux plus recevoir de messages",
            "JE NE VEUX PLUS RECEVOIR DE MESSAGES",
        ),
        ("Merci de me désinscrire", "MERCI DE ME DESINSCRIRE"),
        (
            "je souhaite ne plus recevoir vos offres",
            "NE PLUS RECEVOIR",
        ),
        ("Désinscrivez-moi svp", "DESINSCRIVEZ-MOI"),
        ("Retirez-moi de votre liste.", "RETIREZ-MOI DE VOTRE LISTE"),
        (
            "Arrêtez de m'envoyer des messages !",
            "ARRETEZ DE M'ENVOYER DES MESSAGES",
        ),
        (
            "arretez de m’envoyer des messages",
            "ARRETEZ DE M'ENVOYER DES MESSAGES",
        ),
    ] {
        assert_eq!(
            set.classify(text),
            marketing(phrase, Rule::RevocationPhrase, "fr"),
            "text {text:?}"
        );
    }
}

#[test]
fn longest_phrase_wins() {
    // Given "remove me" and "remove me from your list" are both phrases
    // When the message contains the longer one
    // Then the longer one is reported
    assert_eq!(
        en_fr().classify("remove me from your list now"),
        marketing("REMOVE ME FROM YOUR LIST", Rule::RevocationPhrase, "en")
    );
}

#[test]
fn exact_and_courtesy_keywords_take_precedence_over_phrases() {
    let set = en_fr();
    assert_eq!(
        set.classify("stop all"),
        opt_out(Scope::All, "STOP ALL", Rule::ExactKeyword, "en")
    );
    // "stop texting" is a phrase, but "please stop" is courtesy-wrapped first.
    assert_eq!(
        set.classify("please stop"),
        marketing("STOP", Rule::CourtesyKeyword, "en")
    );
}

#[test]
fn apostrophes_may_be_typed_curly_dropped_or_as_a_space() {
    // Given entries written with an apostrophe
    let set = en_fr();
    // When customers type them with ’, without it, or with a space
    // Then they match the same entry, reported with the apostrophe
    for text in ["M'abonner", "m’abonner", "mabonner", "m abonner"] {
        assert_eq!(
            set.classify(text),
            opt_in("M'ABONNER", Rule::ExactKeyword, "fr"),
            "text {text:?}"
        );
    }
    for text in ["don't text me", "Don’t text me!", "dont text me"] {
        assert_eq!(
            set.classify(text),
            marketing("DON'T TEXT ME", Rule::RevocationPhrase, "en"),
            "text {text:?}"
        );
    }
}

// ---- keyword inside an unrelated sentence ----

#[test]
fn keyword_inside_a_sentence_is_only_a_possible_opt_out() {
    let set = en_fr();
    for (text, kw, lang) in [
        ("don't stop", "STOP", "en"),
        ("Don’t stop!", "STOP", "en"),
        ("I'll stop by the store tomorrow", "STOP", "en"),
        ("I can't stop laughing 😂", "STOP", "en"),
        ("when does the sale end?", "END", "en"),
        ("end of season sale", "END", "en"),
        ("l'arrêt de bus est fermé", "ARRET", "fr"),
        ("arrêt de bus", "ARRET", "fr"),
        ("how do I opt out?", "OPT OUT", "en"),
        ("please stop all the noise", "STOP ALL", "en"),
    ] {
        assert_eq!(set.classify(text), possible(kw, lang), "text {text:?}");
    }
}

#[test]
fn keyword_as_part_of_a_longer_word_is_no_change() {
    let set = en_fr();
    for text in [
        "stopwatch",
        "our backend is down",
        "nonstop deals",
        "unstoppable",
        "the weekend",
    ] {
        assert_eq!(
            set.classify(text),
            Classification::NoChange,
            "text {text:?}"
        );
    }
}

#[test]
fn empty_and_emoji_only_messages_are_no_change() {
    let set = en_fr();
    for text in ["", "   ", "\n", "🙏", "👍👍👍", "?!", "\u{200B}"] {
        assert_eq!(
            set.classify(text),
            Classification::NoChange,
            "text {text:?}"
        );
    }
}

#[test]
fn ordinary_messages_are_no_change() {
    let set = en_fr();
    for text in [
        "What time do you open?",
        "yes",
        "oui",
        "Bonjour, avez-vous la taille M ?",
        "start the engine",
    ] {
        assert_eq!(
            set.classify(text),
            Classification::NoChange,
            "text {text:?}"
        );
    }
}

// ---- opt-in and help ----

#[test]
fn opt_in_keywords_exact_or_courtesy_wrapped() {
    let set = en_fr();
    assert_eq!(
        set.classify("START"),
        opt_in("START", Rule::ExactKeyword, "en")
    );
    assert_eq!(
        set.classify("unstop"),
        opt_in("UNSTOP", Rule::ExactKeyword, "en")
    );
    assert_eq!(
        set.classify("Opt-in"),
        opt_in("OPT IN", Rule::ExactKeyword, "en")
    );
    assert_eq!(
        set.classify("resubscribe please"),
        opt_in("RESUBSCRIBE", Rule::CourtesyKeyword, "en")
    );
    assert_eq!(
        set.classify("Reprendre"),
        opt_in("REPRENDRE", Rule::ExactKeyword, "fr")
    );
    assert_eq!(
        set.classify("m’abonner svp"),
        opt_in("M'ABONNER", Rule::CourtesyKeyword, "fr")
    );
    assert_eq!(
        set.classify("Réabonner"),
        opt_in("REABONNER", Rule::ExactKeyword, "fr")
    );
}

#[test]
fn generic_yes_answers_are_not_opt_in() {
    let set = KeywordSet::defaults(KeywordSet::builtin_languages());
    for text in ["YES", "oui", "sí", "ja", "sim", "ok"] {
        assert_eq!(
            set.classify(text),
            Classification::NoChange,
            "text {text:?}"
        );
    }
}

#[test]
fn help_keywords_in_each_language() {
    let all = KeywordSet::defaults(&["en", "fr", "es", "de", "it", "pt"]);
    assert_eq!(all.classify("HELP"), help("HELP", Rule::ExactKeyword, "en"));
    assert_eq!(all.classify("info"), help("INFO", Rule::ExactKeyword, "en"));
    assert_eq!(all.classify("Aide"), help("AIDE", Rule::ExactKeyword, "fr"));
    assert_eq!(
        all.classify("ayuda"),
        help("AYUDA", Rule::ExactKeyword, "es")
    );
    assert_eq!(
        all.classify("HILFE"),
        help("HILFE", Rule::ExactKeyword, "de")
    );
    assert_eq!(
        all.classify("aiuto"),
        help("AIUTO", Rule::ExactKeyword, "it")
    );
    assert_eq!(
        all.classify("Ajuda"),
        help("AJUDA", Rule::ExactKeyword, "pt")
    );
    assert_eq!(
        all.classify("help please"),
        help("HELP", Rule::CourtesyKeyword, "en")
    );
}

#[test]
fn help_inside_a_sentence_is_no_change() {
    assert_eq!(
        en_fr().classify("can you help me with my order"),
        Classification::NoChange
    );
}

// ---- quick-reply payloads ----

#[test]
fn payload_matching_a_keyword_is_classified_by_payload_rule() {
    let set = en_fr();
    for (payload, kw) in [
        ("STOP", "STOP"),
        ("stop", "STOP"),
        ("UNSUBSCRIBE", "UNSUBSCRIBE"),
        ("OPT_OUT", "OPT OUT"),
        ("optOut", "OPTOUT"),
    ] {
        assert_eq!(
            set.classify_payload(payload),
            marketing(kw, Rule::QuickReplyPayload, "en"),
            "payload {payload:?}"
        );
    }
    assert_eq!(
        set.classify_payload("STOP_ALL"),
        opt_out(Scope::All, "STOP ALL", Rule::QuickReplyPayload, "en")
    );
    assert_eq!(
        set.classify_payload("start"),
        opt_in("START", Rule::QuickReplyPayload, "en")
    );
    assert_eq!(
        set.classify_payload("ARRÊT"),
        marketing("ARRET", Rule::QuickReplyPayload, "fr")
    );
}

#[test]
fn payload_that_is_not_exactly_a_keyword_is_no_change() {
    let set = en_fr();
    for payload in [
        "STOP_PROMOTIONS",
        "please stop",
        "btn_stop",
        "",
        "🙏",
        "remove me",
        "yes",
    ] {
        assert_eq!(
            set.classify_payload(payload),
            Classification::NoChange,
            "payload {payload:?}"
        );
    }
}

// ---- tenant overrides ----

#[test]
fn tenant_can_add_an_opt_out_keyword() {
    // Given an Italian tenant adding BASTA
    let set = with_overrides(
        &["it"],
        "it",
        KeywordOverrides {
            opt_out_add: vec!["Basta".into()],
            ..Default::default()
        },
    )
    .expect("valid config");
    // When a customer writes "basta!" or "basta grazie"
    // Then it opts out, and built-in Italian keywords still work
    assert_eq!(
        set.classify("basta!"),
        marketing("BASTA", Rule::ExactKeyword, "it")
    );
    assert_eq!(
        set.classify("basta grazie"),
        marketing("BASTA", Rule::CourtesyKeyword, "it")
    );
    assert_eq!(
        set.classify("stop"),
        marketing("STOP", Rule::ExactKeyword, "it")
    );
    assert!(set.is_opt_out_keyword("it", "BASTA"));
}

#[test]
fn tenant_can_remove_end_from_english() {
    // Given a tenant whose quiz makes customers answer "end"
    let set = with_overrides(
        &["en"],
        "en",
        KeywordOverrides {
            opt_out_remove: vec!["END".into()],
            ..Default::default()
        },
    )
    .expect("valid config");
    // When a customer answers "end"
    // Then nothing happens, not even a review flag, but STOP still works
    assert_eq!(set.classify("End"), Classification::NoChange);
    assert_eq!(set.classify("the end"), Classification::NoChange);
    assert_eq!(
        set.classify("STOP"),
        marketing("STOP", Rule::ExactKeyword, "en")
    );
    assert!(!set
        .keywords("en", Intent::OptOut)
        .contains(&"END".to_string()));
}

#[test]
fn override_keywords_are_normalized_like_messages() {
    // Given keywords written as users type them
    let set = with_overrides(
        &["fr"],
        "fr",
        KeywordOverrides {
            opt_out_add: vec!["Ça suffit".into()],
            opt_out_remove: vec!["Arrêt".into()],
            phrases_add: vec!["plus jamais de SMS".into()],
            courtesy_add: vec!["Bisous".into()],
            ..Default::default()
        },
    )
    .expect("valid config");
    assert_eq!(
        set.classify("CA SUFFIT"),
        marketing("CA SUFFIT", Rule::ExactKeyword, "fr")
    );
    assert_eq!(set.classify("arret"), Classification::NoChange);
    assert_eq!(
        set.classify("stop bisous"),
        marketing("STOP", Rule::CourtesyKeyword, "fr")
    );
    assert_eq!(
        set.classify("Plus jamais de sms, merci"),
        marketing("PLUS JAMAIS DE SMS", Rule::RevocationPhrase, "fr")
    );
}

#[test]
fn tenant_can_make_stop_revoke_everything() {
    let set = with_overrides(
        &["en"],
        "en",
        KeywordOverrides {
            opt_out_all_add: vec!["stop".into()],
            ..Default::default()
        },
    )
    .expect("valid config");
    assert_eq!(
        set.classify("STOP"),
        opt_out(Scope::All, "STOP", Rule::ExactKeyword, "en")
    );
}

#[test]
fn tenant_can_remove_and_add_opt_in_and_help() {
    let set = with_overrides(
        &["en"],
        "en",
        KeywordOverrides {
            opt_in_remove: vec!["start".into()],
            opt_in_add: vec!["join".into()],
            help_remove: vec!["info".into()],
            help_add: vec!["support".into()],
            ..Default::default()
        },
    )
    .expect("valid config");
    assert_eq!(set.classify("start"), Classification::NoChange);
    assert_eq!(
        set.classify("JOIN"),
        opt_in("JOIN", Rule::ExactKeyword, "en")
    );
    assert_eq!(set.classify("info"), Classification::NoChange);
    assert_eq!(
        set.classify("support"),
        help("SUPPORT", Rule::ExactKeyword, "en")
    );
}

#[test]
fn language_defined_only_by_overrides_is_allowed() {
    // Given Dutch, which has no built-in table, defined entirely in config
    let set = with_overrides(
        &["en", "nl"],
        "nl",
        KeywordOverrides {
            opt_out_add: vec!["afmelden".into()],
            courtesy_add: vec!["alstublieft".into()],
            ..Default::default()
        },
    )
    .expect("override-only language is valid");
    assert_eq!(
        set.classify("Afmelden alstublieft"),
        marketing("AFMELDEN", Rule::CourtesyKeyword, "nl")
    );
    assert_eq!(set.languages(), vec!["en".to_string(), "nl".to_string()]);
}

#[test]
fn unknown_language_without_overrides_is_an_error_naming_it() {
    let err = KeywordSet::new(&langs(&["en", "xx"]), &BTreeMap::new())
        .expect_err("unknown language")
        .to_string();
    assert!(err.contains("\"xx\""), "{err}");
}

#[test]
fn config_mistakes_are_errors() {
    // No language at all.
    assert!(KeywordSet::new(&[], &BTreeMap::new()).is_err());
    // A keyword that normalizes to nothing.
    let err = with_overrides(
        &["en"],
        "en",
        KeywordOverrides {
            opt_out_add: vec!["🛑".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.contains("opt_out_add"), "{err}");
    // One word meaning opt-out and opt-in in the same language.
    let err = with_overrides(
        &["en"],
        "en",
        KeywordOverrides {
            opt_in_add: vec!["Stop".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.contains("opt-out"), "{err}");
    // Too long to be a keyword.
    let long = vec!["word"; MAX_KEYWORD_WORDS + 1].join(" ");
    assert!(with_overrides(
        &["en"],
        "en",
        KeywordOverrides {
            phrases_add: vec![long],
            ..Default::default()
        },
    )
    .is_err());
}

#[test]
fn overrides_for_a_language_not_enabled_are_ignored() {
    // Given shared defaults that carry Italian overrides, and an English-only tenant
    let set = with_overrides(
        &["en"],
        "it",
        KeywordOverrides {
            opt_out_add: vec!["basta".into()],
            ..Default::default()
        },
    )
    .expect("ignored, not an error");
    // Then Italian keywords stay off for this tenant
    assert_eq!(set.classify("basta"), Classification::NoChange);
    assert_eq!(set.languages(), vec!["en".to_string()]);
}

#[test]
fn language_codes_are_case_insensitive_and_deduplicated() {
    let set = KeywordSet::new(&langs(&[" FR ", "en", "fr"]), &BTreeMap::new()).unwrap();
    assert_eq!(set.languages(), vec!["fr".to_string(), "en".to_string()]);
    assert_eq!(
        set.classify("stop"),
        marketing("STOP", Rule::ExactKeyword, "fr")
    );
}

#[test]
fn defaults_skips_unknown_codes_and_falls_back_to_english() {
    assert_eq!(KeywordSet::defaults(&["xx", "fr"]).languages(), vec!["fr"]);
    let fallback = KeywordSet::defaults(&["xx"]);
    assert_eq!(
        fallback.classify("stop"),
        marketing("STOP", Rule::ExactKeyword, "en")
    );
}

#[test]
fn overrides_deserialize_from_config_and_reject_unknown_fields() {
    use serde::de::value::MapDeserializer;
    let fields = vec![("opt_out_add", vec!["BASTA".to_string()])];
    let ov = KeywordOverrides::deserialize(MapDeserializer::<_, DeError>::new(fields.into_iter()))
        .unwrap();
    assert_eq!(ov.opt_out_add, vec!["BASTA".to_string()]);
    assert!(ov.opt_out_remove.is_empty());

    let bad = vec![("opt_out_ad", vec!["BASTA".to_string()])];
    assert!(
        KeywordOverrides::deserialize(MapDeserializer::<_, DeError>::new(bad.into_iter())).is_err()
    );
}

#[test]
fn rule_scope_and_intent_serde_names_are_stable_snake_case() {
    fn de<T: for<'de> Deserialize<'de>>(s: &str) -> T {
        let d: StrDeserializer<DeError> = s.into_deserializer();
        T::deserialize(d).unwrap()
    }
    assert_eq!(de::<Rule>("exact_keyword"), Rule::ExactKeyword);
    assert_eq!(de::<Rule>("courtesy_keyword"), Rule::CourtesyKeyword);
    assert_eq!(de::<Rule>("revocation_phrase"), Rule::RevocationPhrase);
    assert_eq!(de::<Rule>("quick_reply_payload"), Rule::QuickReplyPayload);
    assert_eq!(de::<Rule>("keyword_in_sentence"), Rule::KeywordInSentence);
    assert_eq!(de::<Rule>("typo"), Rule::Typo);
    assert_eq!(de::<Rule>("keyword_with_code"), Rule::KeywordWithCode);
    assert_eq!(de::<Scope>("all"), Scope::All);
    assert_eq!(de::<Scope>("marketing"), Scope::Marketing);
    assert_eq!(de::<Intent>("opt_out"), Intent::OptOut);
    assert_eq!(de::<Intent>("opt_in"), Intent::OptIn);
    assert_eq!(de::<Intent>("help"), Intent::Help);
}

// ---- listing and lint helpers ----

#[test]
fn keywords_lists_normalized_uppercase_tables() {
    let set = en_fr();
    let out = set.keywords("en", Intent::OptOut);
    assert!(out.contains(&"STOP".to_string()));
    assert!(out.contains(&"STOP ALL".to_string()));
    assert!(out.contains(&"OPT OUT".to_string()));
    let fr = set.keywords("FR", Intent::OptOut);
    assert!(fr.contains(&"ARRET".to_string()));
    assert!(fr.contains(&"SE DESABONNER".to_string()));
    assert_eq!(set.keywords("fr", Intent::Help), vec!["AIDE", "INFO"]);
    assert!(!set
        .keywords("en", Intent::OptIn)
        .contains(&"YES".to_string()));
    assert!(set.keywords("de", Intent::OptOut).is_empty());
}

#[test]
fn is_opt_out_keyword_recognizes_button_texts() {
    let set = en_fr();
    assert!(set.is_opt_out_keyword("en", "Stop"));
    assert!(set.is_opt_out_keyword("en", "Opt-out"));
    assert!(set.is_opt_out_keyword("en", "STOP ALL"));
    assert!(set.is_opt_out_keyword("fr", "Arrêt 🛑"));
    assert!(!set.is_opt_out_keyword("en", "Arrêt"));
    assert!(!set.is_opt_out_keyword("en", "Stop promotions"));
    assert!(!set.is_opt_out_keyword("en", "Start"));
    assert!(!set.is_opt_out_keyword("en", ""));
    assert!(!set.is_opt_out_keyword("zz", "stop"));
}

// ---- built-in table sanity ----

#[test]
fn builtin_tables_are_consistent() {
    assert_eq!(
        KeywordSet::builtin_languages(),
        language::builtins()
            .iter()
            .map(|b| b.code)
            .collect::<Vec<_>>()
            .as_slice()
    );
    // Every builtin compiles without conflict on its own and all together.
    for code in KeywordSet::builtin_languages() {
        KeywordSet::new(&langs(&[code]), &BTreeMap::new()).expect(code);
    }
    let all = KeywordSet::new(&langs(KeywordSet::builtin_languages()), &BTreeMap::new())
        .expect("all builtins");
    // No courtesy word of any language is a keyword of any language, or
    // courtesy-only messages would change consent.
    for (key, e) in &all.entries {
        if e.courtesy {
            assert!(
                e.opt_out.is_none() && e.opt_in.is_none() && e.help.is_none(),
                "courtesy word {key:?} is also a keyword"
            );
        }
        // No key is both opt-out and opt-in across languages.
        assert!(
            !(e.opt_out.is_some() && e.opt_in.is_some()),
            "{key:?} is both opt-out and opt-in"
        );
    }
}

#[test]
fn long_messages_are_handled_linearly() {
    let set = KeywordSet::defaults(KeywordSet::builtin_languages());
    // A 4096-char courtesy-wrapped message still resolves correctly.
    let mut text = "please ".repeat(580);
    text.push_str("stop");
    assert!(text.len() > 4000);
    assert!(matches!(
        set.classify(&text),
        Classification::OptOut {
            rule: Rule::CourtesyKeyword,
            ..
        }
    ));
    // Long chatter with a keyword at the end is only a possible opt-out.
    let mut chat = "I really like the new collection and ".repeat(110);
    chat.push_str("stop");
    assert!(matches!(
        set.classify(&chat),
        Classification::PossibleOptOut { .. }
    ));
    // Many phrase prefixes without a full phrase.
    let mut noisy = "stop sending ".repeat(400);
    noisy.push_str("the invoice");
    assert!(matches!(
        set.classify(&noisy),
        Classification::PossibleOptOut { .. }
    ));
}

/// The fuzz target's input `classify/keyword-sentence-spam-basta`: its sentence break makes
/// "basta" a keyword of its own, which the whole normalized text ("spam basta") loses.
#[test]
fn a_message_classifies_as_its_sentences_normal_form() {
    let set = KeywordSet::defaults(&["es", "en"]);
    let text = "\u{6}spam, basta";
    assert!(matches!(set.classify(text), Classification::OptOut { .. }));
    assert_eq!(set.classify(text), set.classify(&normalize_sentences(text)));
}

fn arb_message() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "stop", "STOP", "all", "arrêt", "please", "merci", "svp", "don't", "opt-out", "-", "'",
        "remove", "me", "from", "your", "list", "🙏", "!!", "ß", "İ", "ǅ", "\u{301}", "\u{200B}",
        "ﬁ", "㎒", " ", "\n", "end", "start", "help",
    ]);
    prop::collection::vec(words, 0..40).prop_map(|w| w.concat())
}

/// The properties' keyword sets, built once: building one (tables parsed, grammar compiled)
/// took more time in a debug build than classifying a case, and most of these tests' time.
fn shared_en_fr() -> &'static KeywordSet {
    static SET: std::sync::OnceLock<KeywordSet> = std::sync::OnceLock::new();
    SET.get_or_init(en_fr)
}

fn every_language() -> &'static KeywordSet {
    static SET: std::sync::OnceLock<KeywordSet> = std::sync::OnceLock::new();
    SET.get_or_init(|| KeywordSet::defaults(KeywordSet::builtin_languages()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_and_normalize_is_idempotent(s in any::<String>()) {
        let set = every_language();
        let n = normalize(&s);
        prop_assert_eq!(normalize(&n), n.clone());
        prop_assert!(!n.starts_with(' ') && !n.ends_with(' ') && !n.contains("  "));
        let _ = set.classify(&s);
        let _ = set.classify_payload(&s);
        let _ = set.is_opt_out_keyword("en", &s);
    }

    #[test]
    fn never_panics_on_long_unicode(chars in prop::collection::vec(any::<char>(), 0..5000)) {
        let s: String = chars.into_iter().collect();
        let set = shared_en_fr();
        let n = normalize(&s);
        prop_assert_eq!(normalize(&n), n.clone());
        let _ = set.classify(&s);
        let _ = set.classify_payload(&s);
    }

    #[test]
    fn keyword_soup_is_consistent(s in arb_message()) {
        let set = shared_en_fr();
        let n = normalize(&s);
        prop_assert_eq!(normalize(&n), n.clone());
        // Classification depends only on the normalized text of each sentence: a sentence
        // alone may be a keyword ("... ? stop").
        prop_assert_eq!(set.classify(&s), set.classify(&normalize_sentences(&s)));
        prop_assert_eq!(set.classify_payload(&s), set.classify_payload(&n));
    }
}
