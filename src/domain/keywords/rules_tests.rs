//! The rules of issue 9: keyword with a short code or topic, the revocation grammar, typos.

use super::*;

fn en() -> KeywordSet {
    KeywordSet::defaults(&["en"])
}

fn rule_of(c: &Classification) -> Option<Rule> {
    match c {
        Classification::OptOut { rule, .. } => Some(*rule),
        _ => None,
    }
}

/// Whether a tenant with `languages` enabled opts out on `text`, by any rule.
fn opts_out(languages: &[&str], text: &str) -> bool {
    matches!(
        KeywordSet::defaults(languages).classify(text),
        Classification::OptOut { .. }
    )
}

/// Every text opts out by `rule` (None: does not opt out) for an English and French tenant.
fn assert_rule(texts: &[&str], rule: Option<Rule>) {
    let set = KeywordSet::defaults(&["en", "fr"]);
    for text in texts {
        assert_eq!(rule_of(&set.classify(text)), rule, "{text:?}");
    }
}

#[test]
fn keyboard_typos_of_long_keywords_opt_out_with_rule_typo() {
    let set = KeywordSet::defaults(&["en", "fr"]);
    for text in [
        "stpo",
        "Please stopppp",
        "unsubscibe",
        "cancle",
        "srop",
        "arrte",
    ] {
        assert_eq!(rule_of(&set.classify(text)), Some(Rule::Typo), "{text:?}");
    }
}

#[test]
fn real_words_near_a_keyword_stay_chat() {
    let set = KeywordSet::defaults(&["en", "fr"]);
    for text in [
        "SHOP", "step", "top", "spot", "stoop", "atop", "suit", "quiz",
    ] {
        assert_eq!(set.classify(text), Classification::NoChange, "{text:?}");
    }
}

#[test]
fn a_removed_keyword_is_no_typo_of_another() {
    let mut map = BTreeMap::new();
    let ov = KeywordOverrides {
        opt_out_remove: vec!["quit".into()],
        ..Default::default()
    };
    map.insert("en".to_string(), ov);
    let set = KeywordSet::new(&["en".to_string()], &map).unwrap();
    assert_eq!(set.classify("qiut"), Classification::NoChange);
}

#[test]
fn leading_keyword_with_short_code_or_topic_opts_out_of_marketing() {
    let set = KeywordSet::defaults(&["fr", "en"]);
    for (text, keyword) in [
        ("STOP 36180", "STOP 36180"),
        ("STOP au 36180", "STOP AU 36180"),
        ("STOP PUB", "STOP PUB"),
        ("Stop promotions", "STOP PROMOTIONS"),
    ] {
        assert_eq!(
            set.classify(text),
            Classification::OptOut {
                scope: Scope::Marketing,
                keyword: keyword.to_string(),
                rule: Rule::KeywordWithCode,
                language: Some("fr".to_string()),
            },
            "{text:?}"
        );
    }
    assert!(matches!(
        set.classify("stop 2 items please"),
        Classification::PossibleOptOut { .. }
    ));
}

/// The opt-out quick reply Meta's template builder adds to marketing templates, in the
/// built-in languages whose wording was found: English "Stop promotions" (en.toml, source
/// `meta`), Italian "Interrompi promozioni" (it.toml, source `meta`), and the Spanish and
/// Portuguese wordings seen in public WhatsApp code, which the keyword-with-topic rule already
/// reads. The button's title is classified as text when its payload is no keyword.
#[test]
fn metas_marketing_opt_out_quick_reply_opts_out_in_each_language() {
    for (lang, title) in [
        ("en", "Stop promotions"),
        ("es", "Detener promociones"),
        ("it", "Interrompi promozioni"),
        ("pt", "Parar promoções"),
    ] {
        let c = KeywordSet::defaults(&[lang]).classify(title);
        assert!(
            matches!(
                &c,
                Classification::OptOut { scope: Scope::Marketing, language: Some(l), .. } if l == lang
            ),
            "{lang} {title:?}: {c:?}"
        );
    }
}

#[test]
fn grammar_covers_the_families_of_the_issue() {
    assert_rule(
        &[
            "never message me again",
            "take my number off your list",
            "I don't want these messages anymore",
            "je ne souhaite plus être contacté",
            "enlevez-moi de votre liste",
            "cessez vos envois",
        ],
        Some(Rule::RevocationPhrase),
    );
}

#[test]
fn another_object_or_a_negation_undoes_a_revocation() {
    assert_rule(
        &[
            "don't message me the code, email it instead",
            "retirez-moi l'article du panier",
            "Don't stop the deals coming!",
            "remove the item from my order",
            "stop by the store",
        ],
        None,
    );
    assert_eq!(
        rule_of(&en().classify("never text me again")),
        Some(Rule::RevocationPhrase)
    );
}

#[test]
fn a_keyword_ending_the_message_as_its_own_sentence_opts_out() {
    assert_rule(
        &[
            "comment arrêter de recevoir vos sms ? stop",
            "Who is this? STOP",
            "Not interested, stop",
            "I got your promo again. Unsubscribe please!",
            "Unsubscribe. Who gave you this number?",
        ],
        Some(Rule::KeywordInSentence),
    );
    // A wait word opening the message ("Stop!" as in "wait"), or a keyword inside a longer
    // sentence, is for review only.
    assert_rule(
        &[
            "Stop! I ordered the wrong size, don't ship it yet",
            "Thanks. I'll stop by the store tomorrow",
            "Where is the bus stop?",
        ],
        None,
    );
}

#[test]
fn a_caret_pattern_counts_only_at_the_start_of_the_message() {
    assert!(opts_out(&["fr", "en"], "plus de sms svp"));
    assert!(!opts_out(&["fr", "en"], "je voudrais avoir plus de promos"));
}

#[test]
fn bare_revocations_and_a_verb_on_these_messages_opt_out_but_not_on_another_object() {
    assert_rule(
        &[
            "do not text",
            "Don't call",
            "take me off",
            "Please delete me from your text list",
            "stop this",
            "Stop sending these, please!",
            "I revoke my consent to receive texts",
            "how many times do I have to say stop",
            "Je refuse de recevoir vos offres par SMS",
            "Je m'oppose à l'utilisation de mon numéro pour la prospection",
        ],
        Some(Rule::RevocationPhrase),
    );
    assert_rule(
        &[
            "stop this order",
            "take me off the waiting list for the table at 8",
            "please stop the repair",
            "je m'oppose à ce prélèvement",
        ],
        None,
    );
}

#[test]
fn an_all_word_after_a_leading_keyword_revokes_every_purpose() {
    let set = KeywordSet::defaults(&["fr", "en"]);
    for text in [
        "Unsubscribe from everything",
        "block all",
        "Stop à tous vos messages",
    ] {
        assert!(
            matches!(
                set.classify(text),
                Classification::OptOut {
                    scope: Scope::All,
                    ..
                }
            ),
            "{text:?}"
        );
    }
}

#[test]
fn platform_keywords_of_every_language_opt_out() {
    for (lang, words) in [
        ("es", &["salir", "Baja de la lista"][..]),
        (
            "de",
            &["STORNIEREN", "Ich wünsche keine weiteren Nachrichten"][..],
        ),
        (
            "it",
            &["Fermare", "FERMARSI", "annulla", "Disiscrizione", "FINE"][..],
        ),
        ("pt", &["Remover meu número", "Não quero mais ofertas"][..]),
    ] {
        let set = KeywordSet::defaults(&[lang, "en"]);
        for text in words {
            assert!(
                matches!(set.classify(text), Classification::OptOut { .. }),
                "{lang} {text:?}"
            );
        }
    }
}

/// A class name with a digit ("VIT2") was read as a literal word, so its patterns matched
/// nothing: "Non mi scriva più" stayed chat.
#[test]
fn a_class_name_with_a_digit_is_a_class() {
    let set = KeywordSet::defaults(&["it", "en"]);
    assert!(matches!(
        set.classify("Non mi scriva più"),
        Classification::OptOut { .. }
    ));
}

/// A message typed a letter at a time (holdout8's "R E M O V E   M E"): the letters spell a
/// keyword or a phrase once the spaces are gone. "S T O P" was left as chat before; a spelled
/// STOP is still a STOP, marked `typo` for review.
#[test]
fn a_message_spelled_a_letter_at_a_time_opts_out_for_review() {
    assert_rule(
        &["R E M O V E   M E", "s t o p", "S T O P", "S.T.O.P"],
        Some(Rule::Typo),
    );
    assert_rule(&["o k", "h i t h e r e"], None);
}

#[test]
fn a_keyword_after_a_conjunction_is_a_clause_unless_it_can_mean_wait() {
    let set = KeywordSet::defaults(&["en", "fr"]);
    assert_eq!(
        set.classify("Cancel my appointment and STOP ALL"),
        Classification::OptOut {
            scope: Scope::All,
            keyword: "STOP ALL".into(),
            rule: Rule::KeywordInSentence,
            language: Some("en".into()),
        }
    );
    assert_rule(
        &[
            "I read it and unsubscribe",
            "merci et désabonnement",
            "How much does it pay? But also stop.",
        ],
        Some(Rule::KeywordInSentence),
    );
    // "stop" and "cancel" may be about what came before.
    assert_rule(
        &[
            "Can I reschedule and cancel",
            "drive up and stop",
            "vérifiez et arrêtez",
        ],
        None,
    );
}

#[test]
fn the_grammar_reads_each_clause_with_its_own_edges() {
    assert_rule(
        &[
            "Quelles informations avez-vous ? Une copie. Plus de newsletter ni d'offres",
            "Who is this? Lose my number.",
        ],
        Some(Rule::RevocationPhrase),
    );
    assert!(opts_out(
        &["de", "en"],
        "Ich habe kein Interesse mehr, bitte nicht weiter schreiben."
    ));
    // A "^" pattern still needs the clause to open with it.
    assert_rule(&["Thanks. I always forget my number"], None);
}

#[test]
fn an_article_before_the_messages_themselves_is_no_other_object() {
    assert!(opts_out(&["es", "en"], "Y dejen de mandarme los avisos"));
    assert!(!opts_out(&["es", "en"], "no me manden el código otra vez"));
}

#[test]
fn a_compound_of_the_language_is_no_service_to_stop() {
    assert_rule(
        &["arrêt maladie", "stop tabac", "stop sign", "stop by"],
        None,
    );
    assert_rule(&["stop meteo", "arret quiz"], Some(Rule::KeywordWithCode));
}

#[test]
fn a_clause_that_the_message_goes_on_after_is_no_revocation_on_its_own() {
    assert_rule(
        &["stop it, that's funny", "Stop it. You are hilarious"],
        None,
    );
    assert_rule(&["that's funny. stop it"], Some(Rule::RevocationPhrase));
}

#[test]
fn a_request_for_later_or_a_negated_removal_is_no_revocation() {
    // A pause with a date is still a request to stop for now: the side that stops marketing.
    assert!(opts_out(&["en"], "don't text me until Friday"));
    for (lang, text) in [
        (
            "es",
            "no me manden nada todavía, primero quiero ver la demo",
        ),
        ("pt", "não me tire da lista, por favor"),
    ] {
        assert!(!opts_out(&[lang, "en"], text), "{text:?}");
    }
}

#[test]
fn a_noun_after_about_is_what_the_messages_are_about() {
    assert_rule(
        &[
            "Stop texting me about my invoice",
            "stop texting me about my appointments!",
        ],
        Some(Rule::RevocationPhrase),
    );
    assert_rule(&["stop texting me the invoice, email it"], None);
}

#[test]
fn unsubscribing_again_and_again_opts_out_but_once_by_mistake_does_not() {
    assert_rule(
        &[
            "I keep getting these, I've already unsubscribed",
            "je me suis désinscrite deux fois déjà",
        ],
        Some(Rule::RevocationPhrase),
    );
    assert_rule(
        &[
            "je me suis désabonné par erreur, vous pouvez me réinscrire ?",
            "Envoyez-moi plus d'offres !",
        ],
        None,
    );
}

#[test]
fn asking_how_to_unsubscribe_or_to_be_removed_from_a_list_opts_out() {
    assert_rule(
        &[
            "LET ME UNSUBSCRIBE",
            "lemme unsubscribe from this",
            "I'm not able to unsubscribe from the email list.",
            "Is there any way to be removed from the mailing list??",
            "Pas d'autre moyen de me désinscrire de la liste",
            "Désinscription de la mailing list",
        ],
        Some(Rule::RevocationPhrase),
    );
    assert_rule(&["Désinscription de mon fils au cours de judo"], None);
}

#[test]
fn mail_still_coming_after_unsubscribing_opts_out() {
    assert_rule(
        &[
            "Fix the unsubscribe button, I unsubscribed 4 times. I still receive emails.",
            "I've tried unsubscribing several times, but the emails keep coming.",
            "I'm still getting emails every day",
            "Stop the email spam",
            "Please don't send SPAM emails",
            "I unsubscribed already. Stop fucking spamming me.",
        ],
        Some(Rule::RevocationPhrase),
    );
    assert!(opts_out(&["en"], "Please stop these mails"));
}

#[test]
fn a_request_to_delete_an_account_or_personal_data_opts_out() {
    assert_rule(
        &[
            "could you delete my account, please?",
            "I want to delete all my personal data",
        ],
        Some(Rule::RevocationPhrase),
    );
    assert_rule(
        &[
            "how do I get my account back?",
            "what if I don't want to delete my account?",
        ],
        None,
    );
}

#[test]
fn a_colon_ends_a_clause() {
    assert!(opts_out(
        &["fr", "en"],
        "c'est la 2e fois que je demande : PLUS DE SMS"
    ));
}

#[test]
fn new_wordings_in_other_languages_opt_out() {
    for (lang, text) in [
        ("fr", "stp arête de m'envoyer des messages"),
        (
            "fr",
            "svp arretez avec vos sms de promo, ca fait 3 par jour",
        ),
        ("es", "quita mi número"),
        ("de", "hoert endlich auf mir werbung zu schicken!!!"),
        ("de", "vergiss mich"),
        ("it", "nn voglio piu ricevere le vostre offerte grz"),
        ("pt", "me descadastra por favor"),
        ("pt", "não me chame mais"),
        ("pt", "Quero que meus dados sejam excluídos"),
    ] {
        assert!(opts_out(&[lang, "en"], text), "{lang}: {text:?}");
    }
    assert!(!opts_out(
        &["de", "en"],
        "schreib mir nicht mehr als einen Satz"
    ));
}

/// Each (languages, text) of `opt_out` opts out, and none of `stays`.
fn assert_classes(opt_out: &[(&[&str], &str)], stays: &[(&[&str], &str)]) {
    for (languages, text) in opt_out {
        assert!(opts_out(languages, text), "{text:?}");
    }
    for (languages, text) in stays {
        assert!(!opts_out(languages, text), "{text:?}");
    }
}

#[test]
fn the_classes_of_tune13_opt_out_and_their_look_alikes_do_not() {
    assert_classes(
        &[
            (&["en"][..], "nah im good. pls stop sending these every day"),
            (&["en"], "delete my number"),
            (&["en"], "Take my contact info off please"),
            (
                &["fr"],
                "si je reçois encore un seul sms je vous signale au 33700",
            ),
            (&["es"], "borrad mis datos por favor"),
            (&["de"], "boah hört endlich auf mit den sms"),
            (&["de"], "lasst mich in Ruhe"),
        ],
        &[
            (&["en"][..], "what is this number?? how did u get my info"),
            (&["en"], "can you take my number for the delivery"),
            (&["en"], "stop sending these to my old address"),
            (
                &["de"],
                "lassen Sie mich in Ruhe überlegen, dann bestelle ich",
            ),
        ],
    );
}

#[test]
fn the_classes_of_tune14_opt_out_and_their_look_alikes_do_not() {
    assert_classes(
        &[
            (&["en"][..], "Yeah\nknock it off"),
            (&["en"], "stop notifying me"),
            (&["en"], "don't text this #"),
            (&["fr"], "lâchez-moi"),
            (&["fr"], "arrêtez ça ne m'intéressera jamais"),
            (
                &["fr"],
                "Cessez d'utiliser mon adresse pour vos campagnes marketing",
            ),
            (&["fr"], "J'ai dit STOP, ça aurait dû stop."),
            (&["es"], "No me vuelvan a llamar."),
            (&["es"], "quiero salir de la lista"),
            (&["es"], "No me escriban más por este carrito"),
            (&["de"], "Hören Sie auf!"),
            (&["de"], "Bitte keinen Kontakt mehr"),
            (&["de"], "Belästigen Sie mich nicht"),
            (&["de"], "Sie haben die falsche Nummer"),
            (&["de"], "Ich verlange die Löschung meiner Daten nach DSGVO"),
            (&["it"], "lasciami in pace"),
            (&["pt"], "não me procure mais"),
        ],
        &[
            (
                &["fr"][..],
                "j'ai envoyé STOP par erreur, vous pouvez me remettre sur la liste ?",
            ),
            (&["es"], "No quiero volver a recibir este plato."),
            (
                &["de"],
                "Wie kann ich im Antrag falsche Daten löschen und neu eingeben",
            ),
            (&["it"], "non chiamatemi prima delle 10, scrivetemi qui"),
        ],
    );
}

/// Regression: entries of several words in `not_before` and `other_objects` ("voice notes",
/// "notas de voz", "lista de presentes") were dropped when the grammar was compiled, so they
/// never undid a revocation.
#[test]
fn multi_word_other_objects_and_not_before_entries_count() {
    assert_classes(
        &[(&["pt"][..], "me tira da lista de vocês")],
        &[
            (&["en"][..], "stop sending me voice notes, text me instead"),
            (&["es"], "no me manden más notas de voz"),
            (&["pt"], "me tira da lista de presentes"),
        ],
    );
}
