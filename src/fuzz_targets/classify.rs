//! The keyword classifier (`KeywordSet::classify` for typed text, `classify_payload` and the
//! pipeline's button path for quick replies), on any text a customer can send.
//!
//! Properties: classifying never panics; a string's classification is the same every time and
//! from every compilation of the same tables (nothing depends on hash order); normalizing is
//! idempotent and classifying the normalized text of each sentence changes nothing ("ARRÊT" is
//! "arret"); a
//! payload is only ever a whole keyword, and a keyword tapped means what it means typed; a
//! button is classified by its payload first, and only then by its title.

use std::sync::OnceLock;

use crate::domain::clock::Claimed;
use crate::domain::decide::classify;
use crate::domain::inbound::{Content, Message, TenantRef};
use crate::domain::keywords::{normalize, normalize_sentences, Classification, KeywordSet, Rule};

/// For each choice of languages (each built-in one alone, then all of them), two sets
/// compiled separately, so that each has its own hash seeds.
fn sets(choice: u8) -> &'static (KeywordSet, KeywordSet) {
    static SETS: OnceLock<Vec<(KeywordSet, KeywordSet)>> = OnceLock::new();
    let all = SETS.get_or_init(|| {
        let languages = KeywordSet::builtin_languages();
        let mut choices: Vec<Vec<&str>> = languages.iter().map(|l| vec![*l]).collect();
        choices.push(languages.to_vec());
        choices
            .iter()
            .map(|l| (KeywordSet::defaults(l), KeywordSet::defaults(l)))
            .collect()
    });
    &all[usize::from(choice) % all.len()]
}

fn rule(c: &Classification) -> Option<Rule> {
    match c {
        Classification::OptOut { rule, .. }
        | Classification::OptIn { rule, .. }
        | Classification::Help { rule, .. } => Some(*rule),
        Classification::PossibleOptOut { .. } => Some(Rule::KeywordInSentence),
        Classification::NoChange => None,
    }
}

/// `c` as the typed form of the same keyword would be classified.
fn as_typed(c: &Classification) -> Classification {
    let mut c = c.clone();
    if let Classification::OptOut { rule, .. }
    | Classification::OptIn { rule, .. }
    | Classification::Help { rule, .. } = &mut c
    {
        *rule = Rule::ExactKeyword;
    }
    c
}

fn button(payload: &str, title: Option<&str>) -> Message {
    Message {
        tenant: TenantRef::Name("fuzz".into()),
        channel: "whatsapp".into(),
        message_id: "wamid.fuzz".into(),
        from: "33612345678".into(),
        claimed_at: Claimed::default(),
        content: Content::Button {
            payload: payload.into(),
            title: title.map(str::to_string),
        },
        context_message_id: None,
        campaign_id: None,
        language: None,
        links: Vec::new(),
        path: None,
    }
}

/// The target's properties on one input: panics where one does not hold.
pub fn check(data: &[u8]) {
    let Some((&choice, text)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    let (set, twin) = sets(choice);

    let typed = set.classify(&text);
    assert_eq!(typed, set.classify(&text), "classified twice: {text:?}");
    assert_eq!(
        typed,
        twin.classify(&text),
        "two compilations disagree: {text:?}"
    );
    assert_ne!(
        rule(&typed),
        Some(Rule::QuickReplyPayload),
        "typed text as a payload"
    );
    if let Some(keyword) = match &typed {
        Classification::OptOut { keyword, .. }
        | Classification::OptIn { keyword, .. }
        | Classification::Help { keyword, .. }
        | Classification::PossibleOptOut { keyword, .. } => Some(keyword),
        Classification::NoChange => None,
    } {
        assert!(
            !keyword.is_empty(),
            "{typed:?} names no keyword for {text:?}"
        );
    }
    let normalized = normalize(&text);
    assert_eq!(
        normalize(&normalized),
        normalized,
        "normalize is not idempotent on {text:?}"
    );
    // Sentences are kept apart: a sentence alone may be a keyword ("Not interested. Stop").
    let form = normalize_sentences(&text);
    assert_eq!(
        set.classify(&form),
        typed,
        "{text:?} and its normal form {form:?} differ"
    );

    let payload = set.classify_payload(&text);
    assert_eq!(payload, twin.classify_payload(&text));
    match rule(&payload) {
        None => {}
        Some(Rule::QuickReplyPayload) => assert_eq!(
            as_typed(&payload),
            typed,
            "tapped and typed {text:?} differ"
        ),
        Some(other) => panic!("payload {text:?} classified by rule {other:?}"),
    }

    // The button path: the payload decides; the title only when the payload says nothing.
    let (p, title) = text.split_once('\n').unwrap_or((&text, ""));
    let alone = classify(&button(p, None), set).classification;
    assert_eq!(alone, set.classify_payload(p));
    let titled = classify(&button(p, Some(title)), set).classification;
    if alone != Classification::NoChange {
        assert_eq!(
            titled, alone,
            "the title {title:?} overrode the payload {p:?}"
        );
    }
}
