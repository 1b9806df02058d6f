//! Deciding what one inbound WhatsApp/SMS text means for consent.
//!
//! Carriers and regulators expect "STOP" to work however the customer types it
//! (any casing, accents or not, with emoji or "please"), while a customer who
//! writes "don't stop" or "stop by the store" must not lose their subscription.
//! The module therefore normalizes aggressively, then only acts on messages that
//! *are* a keyword (possibly wrapped in courtesy words) or contain an
//! unambiguous revocation phrase; a keyword buried in another sentence is only
//! surfaced for human review.
//!
//! Everything here is pure: the tables are compiled once per tenant by
//! [`KeywordSet::new`] and classification only reads them.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use unicode_normalization::char::{decompose_compatible, is_combining_mark};
use unicode_normalization::UnicodeNormalization;

/// Which purposes an opt-out revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Marketing,
    All,
}

/// The rule that matched; recorded in the ledger as proof, so names are stable (snake_case in serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    ExactKeyword,
    CourtesyKeyword,
    RevocationPhrase,
    QuickReplyPayload,
    KeywordInSentence,
}

/// The kinds of keyword a tenant can list; opt-out covers both scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    OptOut,
    OptIn,
    Help,
}

/// What one inbound message means for consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    OptOut {
        scope: Scope,
        keyword: String,
        rule: Rule,
        language: Option<String>,
    },
    OptIn {
        keyword: String,
        rule: Rule,
        language: Option<String>,
    },
    Help {
        keyword: String,
        rule: Rule,
        language: Option<String>,
    },
    /// A keyword appeared but not as a request (e.g. "don't stop"): no consent change, kept for review.
    PossibleOptOut {
        keyword: String,
        language: Option<String>,
    },
    NoChange,
}

/// Per-tenant changes to one language's default keywords, as written in the config file.
///
/// Removals apply to the built-in defaults only and are applied before additions,
/// so a keyword both removed and added ends up present. Removing a keyword the
/// language does not have is not an error: tenants may strip a word from every
/// language without checking which ones ship it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeywordOverrides {
    pub opt_out_add: Vec<String>,
    pub opt_out_remove: Vec<String>,
    pub opt_out_all_add: Vec<String>,
    pub opt_in_add: Vec<String>,
    pub opt_in_remove: Vec<String>,
    pub help_add: Vec<String>,
    pub help_remove: Vec<String>,
    pub courtesy_add: Vec<String>,
    pub phrases_add: Vec<String>,
}

/// Longest keyword, courtesy expression or phrase accepted, in words. Bounding it
/// keeps span matching linear in the message length.
pub const MAX_KEYWORD_WORDS: usize = 16;

/// What a table word does; courtesy words and phrases never change consent on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OptOut(Scope),
    OptIn,
    Help,
    Courtesy,
    Phrase,
}

impl Kind {
    /// Keywords of different groups in one language would make a message mean two things.
    fn group(self) -> Option<Intent> {
        match self {
            Kind::OptOut(_) => Some(Intent::OptOut),
            Kind::OptIn => Some(Intent::OptIn),
            Kind::Help => Some(Intent::Help),
            Kind::Courtesy | Kind::Phrase => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Word {
    /// Match forms: [`match_key`], plus [`joined_key`] when it differs.
    keys: Vec<String>,
    /// Normalized and uppercased, as shown in results and documentation.
    display: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
struct LangTable {
    code: String,
    words: Vec<Word>,
}

/// The winning table word for one role of a key: first language in priority order.
#[derive(Debug, Clone)]
struct Hit {
    lang: usize,
    display: String,
    scope: Scope,
}

/// Everything every enabled language says about one key, merged so that a
/// single hash lookup answers all questions about a span of tokens.
#[derive(Debug, Clone, Default)]
struct Entry {
    courtesy: bool,
    opt_out: Option<Hit>,
    opt_in: Option<Hit>,
    help: Option<Hit>,
    phrase: Option<Hit>,
}

impl Entry {
    fn role(&self, intent: Intent) -> Option<&Hit> {
        match intent {
            Intent::OptOut => self.opt_out.as_ref(),
            Intent::OptIn => self.opt_in.as_ref(),
            Intent::Help => self.help.as_ref(),
        }
    }
}

/// The compiled keyword tables of one tenant: the default sets of its enabled languages plus its overrides.
#[derive(Debug, Clone)]
pub struct KeywordSet {
    languages: Vec<LangTable>,
    entries: HashMap<String, Entry>,
    /// Longest key (in tokens) starting with a given token, so span scanning
    /// only tries lengths that can exist.
    first_token_max: HashMap<String, usize>,
}

struct Builtin {
    code: &'static str,
    opt_out: &'static [&'static str],
    opt_out_all: &'static [&'static str],
    opt_in: &'static [&'static str],
    help: &'static [&'static str],
    courtesy: &'static [&'static str],
    phrases: &'static [&'static str],
}

const BUILTIN_CODES: &[&str] = &["en", "fr", "es", "de", "it", "pt"];

// Defaults are written as people type them; they go through `normalize` like
// tenant config does, so there is one source of truth for matching.
// Generic answers (YES, OUI, SI, JA...) are deliberately absent from opt-in:
// customers send them in reply to unrelated questions.
const BUILTINS: &[Builtin] = &[
    Builtin {
        code: "en",
        opt_out: &[
            "STOP",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
            "OPT OUT",
            "OPT-OUT",
        ],
        opt_out_all: &["STOPALL", "STOP ALL"],
        opt_in: &[
            "START",
            "UNSTOP",
            "SUBSCRIBE",
            "RESUBSCRIBE",
            "OPTIN",
            "OPT IN",
            "OPT-IN",
        ],
        help: &["HELP", "INFO"],
        courtesy: &[
            "please",
            "pls",
            "plz",
            "plse",
            "kindly",
            "thanks",
            "thank you",
            "thankyou",
            "thank u",
            "thank you very much",
            "thanks a lot",
            "many thanks",
            "thx",
            "ty",
            "tks",
            "cheers",
            "now",
            "right now",
            "asap",
            "ok",
            "okay",
            "hello",
            "hi",
            "hey",
            "good morning",
            "good afternoon",
            "good evening",
        ],
        phrases: &[
            "remove me",
            "remove me from your list",
            "remove me from the list",
            "remove me from this list",
            "remove me from your mailing list",
            "remove my number",
            "delete my number",
            "take me off your list",
            "take me off the list",
            "take me off this list",
            "take me off your mailing list",
            "take my number off",
            "don't text me",
            "do not text me",
            "don't message me",
            "do not message me",
            "don't contact me",
            "do not contact me",
            "don't sms me",
            "do not sms me",
            "don't send me messages",
            "do not send me messages",
            "don't send me texts",
            "do not send me texts",
            "don't send me any more",
            "do not send me any more",
            "don't send me anymore",
            "stop sending me",
            "stop sending me messages",
            "stop sending messages",
            "stop sending texts",
            "stop texting me",
            "stop texting",
            "stop messaging me",
            "stop contacting me",
            "stop spamming",
            "stop spamming me",
            "stop the messages",
            "stop these messages",
            "stop all messages",
            "stop messages",
            "no more messages",
            "no more texts",
            "no more text messages",
            "no more sms",
            "no more promotions",
            "unsubscribe me",
            "opt me out",
            "i want to unsubscribe",
            "i want to opt out",
            "leave me alone",
            "don't want to receive",
            "do not want to receive",
            "no longer want to receive",
            "no longer wish to receive",
            "don't want these messages",
            "do not want these messages",
        ],
    },
    Builtin {
        code: "fr",
        opt_out: &[
            "STOP",
            "STOP SMS",
            "ARRÊT",
            "ARRÊTER",
            "ARRÊTEZ",
            "DÉSABONNER",
            "SE DÉSABONNER",
            "ME DÉSABONNER",
            "DÉSINSCRIRE",
            "ME DÉSINSCRIRE",
            "DÉSINSCRIPTION",
            "DÉSABONNEMENT",
        ],
        opt_out_all: &[
            "STOPALL",
            "STOP ALL",
            "STOP TOUT",
            "ARRÊT TOUT",
            "ARRÊTER TOUT",
            "TOUT ARRÊTER",
        ],
        opt_in: &[
            "START",
            "REPRENDRE",
            "ABONNER",
            "S'ABONNER",
            "M'ABONNER",
            "RÉABONNER",
        ],
        help: &["AIDE", "INFO"],
        courtesy: &[
            "merci",
            "merci beaucoup",
            "merci d'avance",
            "svp",
            "stp",
            "s'il vous plaît",
            "s'il te plaît",
            "bonjour",
            "bonsoir",
            "salut",
            "ok",
            "d'accord",
            "maintenant",
            "cordialement",
        ],
        phrases: &[
            "je ne veux plus recevoir",
            "je ne veux plus recevoir de messages",
            "je ne veux plus recevoir vos messages",
            "je ne souhaite plus recevoir",
            "ne plus recevoir",
            "merci de me désinscrire",
            "merci de me désabonner",
            "merci de me retirer",
            "désinscrivez-moi",
            "désabonnez-moi",
            "retirez-moi",
            "retirez-moi de votre liste",
            "retirez-moi de la liste",
            "supprimez-moi",
            "supprimez mon numéro",
            "arrêtez de m'envoyer",
            "arrêtez de m'envoyer des messages",
            "arrêtez de m'écrire",
            "arrêtez les messages",
            "arrêtez les sms",
            "ne m'envoyez plus",
            "ne me contactez plus",
            "ne m'écrivez plus",
            "je veux me désinscrire",
            "je veux me désabonner",
            "je souhaite me désinscrire",
            "je souhaite me désabonner",
            "veuillez me désinscrire",
            "laissez-moi tranquille",
        ],
    },
    Builtin {
        code: "es",
        opt_out: &[
            "BAJA",
            "PARAR",
            "CANCELAR",
            "DETENER",
            "STOP",
            "DESUSCRIBIR",
            "DESUSCRIBIRME",
            "DARSE DE BAJA",
            "CANCELAR SUSCRIPCIÓN",
        ],
        opt_out_all: &["STOPALL", "STOP ALL", "STOP TODO", "PARAR TODO"],
        opt_in: &["START", "SUSCRIBIR", "SUSCRIBIRME", "REANUDAR"],
        help: &["AYUDA", "INFO"],
        courtesy: &[
            "por favor",
            "porfavor",
            "porfa",
            "gracias",
            "muchas gracias",
            "hola",
            "buenos días",
            "ok",
            "ya",
        ],
        phrases: &[
            "no quiero recibir",
            "no quiero recibir más mensajes",
            "no quiero más mensajes",
            "no me envíen más",
            "no me manden más",
            "dejen de enviarme",
            "dejen de escribirme",
            "dejen de mandarme",
            "darme de baja",
            "quiero darme de baja",
            "elimínenme de su lista",
            "bórrenme de su lista",
            "sáquenme de su lista",
        ],
    },
    Builtin {
        code: "de",
        opt_out: &[
            "STOPP",
            "STOP",
            "ABMELDEN",
            "ABBESTELLEN",
            "AUSTRAGEN",
            "ABMELDUNG",
        ],
        opt_out_all: &[
            "STOPALL",
            "STOP ALL",
            "STOPP ALLES",
            "STOP ALLES",
            "STOPP ALLE",
        ],
        opt_in: &["START", "STARTEN", "ANMELDEN", "ABONNIEREN"],
        help: &["HILFE", "INFO"],
        courtesy: &[
            "bitte",
            "danke",
            "danke schön",
            "vielen dank",
            "hallo",
            "guten tag",
            "ok",
            "jetzt",
            "sofort",
        ],
        phrases: &[
            "keine nachrichten mehr",
            "keine sms mehr",
            "keine werbung mehr",
            "nicht mehr schreiben",
            "nicht mehr kontaktieren",
            "nicht mehr anschreiben",
            "ich möchte keine nachrichten",
            "ich will keine nachrichten",
            "meine nummer löschen",
            "löschen sie meine nummer",
            "hört auf mir zu schreiben",
        ],
    },
    Builtin {
        code: "it",
        opt_out: &[
            "STOP",
            "CANCELLAMI",
            "DISISCRIVIMI",
            "DISISCRIVI",
            "RIMUOVIMI",
            "ANNULLA ISCRIZIONE",
        ],
        opt_out_all: &["STOPALL", "STOP ALL", "STOP TUTTO"],
        opt_in: &["START", "ISCRIVIMI", "RIPRENDI"],
        help: &["AIUTO", "INFO"],
        courtesy: &[
            "per favore",
            "perfavore",
            "grazie",
            "grazie mille",
            "ciao",
            "buongiorno",
            "ok",
            "subito",
        ],
        phrases: &[
            "non voglio più ricevere",
            "non voglio più messaggi",
            "non inviatemi più",
            "non mandatemi più",
            "non scrivetemi più",
            "toglietemi dalla lista",
            "rimuovetemi",
            "rimuovetemi dalla lista",
            "cancellatemi",
            "smettete di scrivermi",
            "smettete di inviarmi",
        ],
    },
    Builtin {
        code: "pt",
        opt_out: &[
            "PARAR",
            "SAIR",
            "CANCELAR",
            "STOP",
            "PARE",
            "DESCADASTRAR",
            "DESCADASTRE",
            "DESINSCREVER",
            "CANCELAR INSCRIÇÃO",
        ],
        opt_out_all: &["STOPALL", "STOP ALL", "PARAR TUDO", "STOP TUDO"],
        opt_in: &["START", "INSCREVER", "RETOMAR"],
        help: &["AJUDA", "INFO"],
        courtesy: &[
            "por favor",
            "pf",
            "obrigado",
            "obrigada",
            "obg",
            "olá",
            "oi",
            "bom dia",
            "ok",
            "já",
        ],
        phrases: &[
            "não quero receber",
            "não quero mais receber",
            "não quero mais mensagens",
            "não me envie mais",
            "não me mandem mais",
            "parem de enviar",
            "parem de me enviar",
            "me tire da lista",
            "me tirem da lista",
            "me remova da lista",
            "me descadastre",
            "quero sair da lista",
        ],
    },
];

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
fn match_key(normalized: &str) -> String {
    normalized
        .chars()
        .map(|c| if is_connector(c) { ' ' } else { c })
        .collect()
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
fn token_spans(key: &str) -> Vec<(usize, usize)> {
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

fn lang_code(code: &str) -> String {
    code.trim().to_ascii_lowercase()
}

fn builtin(code: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.code == code)
}

/// Turns a configured spelling into (match keys, display), rejecting entries that
/// could never match so config mistakes surface at load time rather than as silence.
fn prepare(code: &str, field: &str, spelling: &str) -> Result<(Vec<String>, String), String> {
    let normalized = normalize(spelling);
    if normalized.is_empty() {
        return Err(format!(
            "keywords for language \"{code}\": {field} entry {spelling:?} has no letters or digits"
        ));
    }
    let key = match_key(&normalized);
    let words = key.split(' ').count();
    if words > MAX_KEYWORD_WORDS {
        return Err(format!(
            "keywords for language \"{code}\": {field} entry {spelling:?} has {words} words \
             (at most {MAX_KEYWORD_WORDS} allowed)"
        ));
    }
    let display = normalized.to_uppercase();
    let mut keys = vec![key];
    keys.extend(joined_key(&normalized));
    Ok((keys, display))
}

fn keys_of(code: &str, field: &str, list: &[String]) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    for spelling in list {
        keys.extend(prepare(code, field, spelling)?.0);
    }
    Ok(keys)
}

struct TableBuilder<'a> {
    code: &'a str,
    words: Vec<Word>,
}

impl TableBuilder<'_> {
    fn add(&mut self, field: &str, spelling: &str, kind: Kind) -> Result<(), String> {
        let (keys, display) = prepare(self.code, field, spelling)?;
        let existing = self.words.iter().position(|w| {
            w.keys.iter().any(|k| keys.contains(k))
                && match kind.group() {
                    Some(_) => w.kind.group().is_some(),
                    None => w.kind == kind,
                }
        });
        match existing {
            None => {
                self.words.push(Word {
                    keys,
                    display,
                    kind,
                });
                Ok(())
            }
            Some(i) => {
                let other = self.words[i].kind;
                if other.group() != kind.group() {
                    return Err(format!(
                        "keywords for language \"{code}\": {spelling:?} ({field}) is already \
                         a {other} keyword; one word cannot mean both",
                        code = self.code,
                        other = group_name(other),
                    ));
                }
                // A tenant asking for STOP to revoke everything upgrades the scope.
                if kind == Kind::OptOut(Scope::All) {
                    self.words[i].kind = kind;
                }
                Ok(())
            }
        }
    }
}

fn group_name(kind: Kind) -> &'static str {
    match kind {
        Kind::OptOut(_) => "opt-out",
        Kind::OptIn => "opt-in",
        Kind::Help => "help",
        Kind::Courtesy => "courtesy",
        Kind::Phrase => "phrase",
    }
}

fn build_table(
    code: &str,
    defaults: Option<&Builtin>,
    ov: Option<&KeywordOverrides>,
) -> Result<LangTable, String> {
    let empty = KeywordOverrides::default();
    let ov = ov.unwrap_or(&empty);
    let out_remove = keys_of(code, "opt_out_remove", &ov.opt_out_remove)?;
    let in_remove = keys_of(code, "opt_in_remove", &ov.opt_in_remove)?;
    let help_remove = keys_of(code, "help_remove", &ov.help_remove)?;
    let mut b = TableBuilder {
        code,
        words: Vec::new(),
    };

    if let Some(d) = defaults {
        let lists: [(&[&str], Kind, &[String]); 6] = [
            (d.opt_out, Kind::OptOut(Scope::Marketing), &out_remove),
            (d.opt_out_all, Kind::OptOut(Scope::All), &out_remove),
            (d.opt_in, Kind::OptIn, &in_remove),
            (d.help, Kind::Help, &help_remove),
            (d.courtesy, Kind::Courtesy, &[]),
            (d.phrases, Kind::Phrase, &[]),
        ];
        for (list, kind, removed) in lists {
            for spelling in list {
                let (keys, _) = prepare(code, "default", spelling)?;
                if !keys.iter().any(|k| removed.contains(k)) {
                    b.add("default", spelling, kind)?;
                }
            }
        }
    }

    let adds: [(&[String], Kind, &str); 6] = [
        (
            &ov.opt_out_all_add,
            Kind::OptOut(Scope::All),
            "opt_out_all_add",
        ),
        (
            &ov.opt_out_add,
            Kind::OptOut(Scope::Marketing),
            "opt_out_add",
        ),
        (&ov.opt_in_add, Kind::OptIn, "opt_in_add"),
        (&ov.help_add, Kind::Help, "help_add"),
        (&ov.courtesy_add, Kind::Courtesy, "courtesy_add"),
        (&ov.phrases_add, Kind::Phrase, "phrases_add"),
    ];
    for (list, kind, field) in adds {
        for spelling in list {
            b.add(field, spelling, kind)?;
        }
    }
    Ok(LangTable {
        code: code.to_string(),
        words: b.words,
    })
}

/// Ordering of competing matches: broader scope, then more words, then earlier.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    all_scope: bool,
    len: usize,
    earlier: std::cmp::Reverse<usize>,
}

impl KeywordSet {
    /// Languages with built-in defaults ("en", "fr", "es", "de", "it", "pt").
    pub fn builtin_languages() -> &'static [&'static str] {
        BUILTIN_CODES
    }

    /// `languages` in priority order (the tenant's default language first). Unknown language codes
    /// without overrides are an error (return Err(String) with a clear message naming the code);
    /// a language code that only has overrides (no builtin) is allowed.
    ///
    /// Codes are compared trimmed and ASCII-lowercased; a repeated code keeps its
    /// first position. An empty list is an error, since STOP would then do
    /// nothing. Overrides for a language the tenant does not enable are ignored:
    /// shared config defaults carry overrides for every language any tenant uses.
    pub fn new(
        languages: &[String],
        overrides: &BTreeMap<String, KeywordOverrides>,
    ) -> Result<Self, String> {
        let mut codes: Vec<String> = Vec::new();
        for raw in languages {
            let code = lang_code(raw);
            if code.is_empty() {
                return Err("keyword languages: empty language code".to_string());
            }
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        if codes.is_empty() {
            return Err(
                "keyword languages: no language enabled, so no opt-out keyword would be recognized"
                    .to_string(),
            );
        }

        let mut by_code: HashMap<String, &KeywordOverrides> = HashMap::new();
        for (raw, ov) in overrides {
            let code = lang_code(raw);
            if !codes.contains(&code) {
                continue;
            }
            if by_code.insert(code, ov).is_some() {
                return Err(format!(
                    "keyword overrides for language \"{raw}\" are given twice"
                ));
            }
        }

        let mut tables = Vec::with_capacity(codes.len());
        for code in &codes {
            let defaults = builtin(code);
            let ov = by_code.get(code).copied();
            if defaults.is_none() && ov.is_none() {
                return Err(format!(
                    "unknown keyword language \"{code}\": built-in languages are {}; \
                     add keyword overrides for \"{code}\" to define it",
                    BUILTIN_CODES.join(", ")
                ));
            }
            tables.push(build_table(code, defaults, ov)?);
        }
        Ok(Self::compile(tables))
    }

    /// Convenience: builtin defaults for the given languages, no overrides.
    ///
    /// Unknown codes are skipped rather than failing, since this cannot return an
    /// error; if none is known, English is used so STOP always works.
    pub fn defaults(languages: &[&str]) -> Self {
        let mut codes: Vec<String> = Vec::new();
        for raw in languages {
            let code = lang_code(raw);
            if builtin(&code).is_some() && !codes.contains(&code) {
                codes.push(code);
            }
        }
        if codes.is_empty() {
            codes.push("en".to_string());
        }
        let tables = codes
            .iter()
            .filter_map(|code| build_table(code, builtin(code), None).ok())
            .collect();
        Self::compile(tables)
    }

    fn compile(tables: Vec<LangTable>) -> Self {
        let mut entries: HashMap<String, Entry> = HashMap::new();
        let mut first_token_max: HashMap<String, usize> = HashMap::new();
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
            languages: tables,
            entries,
            first_token_max,
        }
    }

    fn language(&self, hit: &Hit) -> Option<String> {
        self.languages.get(hit.lang).map(|t| t.code.clone())
    }

    fn result(&self, intent: Intent, hit: &Hit, rule: Rule) -> Classification {
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
    fn exact(&self, key: &str, rule: Rule) -> Option<Classification> {
        let e = self.entries.get(key)?;
        [Intent::OptOut, Intent::OptIn, Intent::Help]
            .into_iter()
            .find_map(|intent| e.role(intent).map(|h| self.result(intent, h, rule)))
    }

    /// Longest span worth trying at token `i`: no key starting with this
    /// word is longer, which is what keeps scanning linear.
    fn max_len_at(&self, key: &str, toks: &[(usize, usize)], i: usize) -> usize {
        self.first_token_max
            .get(&key[toks[i].0..toks[i].1])
            .copied()
            .unwrap_or(0)
            .min(toks.len() - i)
    }

    /// The table entry for the `len` words starting at token `i`.
    fn entry_at(&self, key: &str, toks: &[(usize, usize)], i: usize, len: usize) -> Option<&Entry> {
        self.entries.get(&key[toks[i].0..toks[i + len - 1].1])
    }

    /// The best keyword of `intent` such that the whole message is that keyword
    /// surrounded by courtesy words (or repeats of keywords of the same intent,
    /// as in "STOP STOP STOP"). Linear: forward and backward reachability over
    /// token positions, each step trying only the bounded span lengths.
    fn wrapped(&self, key: &str, toks: &[(usize, usize)], intent: Intent) -> Option<&Hit> {
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
    /// please"), in the same order; a revocation phrase anywhere; an opt-out
    /// keyword as whole words inside other text (review only). Among candidates
    /// of one step the broader scope, then the longer, then the earlier wins.
    /// Acting only on the first three is deliberate: a missed keyword in chatter
    /// is reviewed by a human, a wrong opt-out silently loses a customer.
    pub fn classify(&self, text: &str) -> Classification {
        let key = match_key(&normalize(text));
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
        if let Some(h) = self.find_span(&key, &toks, |e| e.phrase.as_ref()) {
            // Phrases revoke marketing only: they name messages, not every purpose.
            return Classification::OptOut {
                scope: Scope::Marketing,
                keyword: h.display.clone(),
                rule: Rule::RevocationPhrase,
                language: self.language(h),
            };
        }
        if let Some(h) = self.find_span(&key, &toks, |e| e.opt_out.as_ref()) {
            return Classification::PossibleOptOut {
                keyword: h.display.clone(),
                language: self.language(h),
            };
        }
        Classification::NoChange
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

    /// Keywords (normalized, uppercase for display) of `intent` for `language`, for documentation and the template linter.
    ///
    /// Opt-out includes the revoke-everything keywords; spellings that differ
    /// only by hyphen or apostrophe are listed once. Unknown languages yield
    /// an empty list.
    pub fn keywords(&self, language: &str, intent: Intent) -> Vec<String> {
        let code = lang_code(language);
        self.languages
            .iter()
            .filter(|t| t.code == code)
            .flat_map(|t| t.words.iter())
            .filter(|w| w.kind.group() == Some(intent))
            .map(|w| w.display.clone())
            .collect()
    }

    /// True if `text` (any form) normalizes to an opt-out keyword of `language` (for template lint: "is this button text an opt-out keyword?").
    pub fn is_opt_out_keyword(&self, language: &str, text: &str) -> bool {
        let code = lang_code(language);
        let key = match_key(&normalize(text));
        !key.is_empty()
            && self.languages.iter().filter(|t| t.code == code).any(|t| {
                t.words
                    .iter()
                    .any(|w| w.keys.contains(&key) && matches!(w.kind, Kind::OptOut(_)))
            })
    }

    /// Enabled language codes in priority order, as compiled.
    pub fn languages(&self) -> Vec<String> {
        self.languages.iter().map(|t| t.code.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
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

    fn with_overrides(
        codes: &[&str],
        lang: &str,
        ov: KeywordOverrides,
    ) -> Result<KeywordSet, String> {
        let mut map = BTreeMap::new();
        map.insert(lang.to_string(), ov);
        KeywordSet::new(&langs(codes), &map)
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
            "S T O P",
            "S.T.O.P",
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
        let err =
            KeywordSet::new(&langs(&["en", "xx"]), &BTreeMap::new()).expect_err("unknown language");
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
        let ov =
            KeywordOverrides::deserialize(MapDeserializer::<_, DeError>::new(fields.into_iter()))
                .unwrap();
        assert_eq!(ov.opt_out_add, vec!["BASTA".to_string()]);
        assert!(ov.opt_out_remove.is_empty());

        let bad = vec![("opt_out_ad", vec!["BASTA".to_string()])];
        assert!(
            KeywordOverrides::deserialize(MapDeserializer::<_, DeError>::new(bad.into_iter()))
                .is_err()
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
            BUILTINS
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
        let noisy = "stop sending ".repeat(400);
        assert!(matches!(
            set.classify(&noisy),
            Classification::PossibleOptOut { .. }
        ));
    }

    fn arb_message() -> impl Strategy<Value = String> {
        let words = prop::sample::select(vec![
            "stop", "STOP", "all", "arrêt", "please", "merci", "svp", "don't", "opt-out", "-", "'",
            "remove", "me", "from", "your", "list", "🙏", "!!", "ß", "İ", "ǅ", "\u{301}",
            "\u{200B}", "ﬁ", "㎒", " ", "\n", "end", "start", "help",
        ]);
        prop::collection::vec(words, 0..40).prop_map(|w| w.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn never_panics_and_normalize_is_idempotent(s in any::<String>()) {
            let set = KeywordSet::defaults(KeywordSet::builtin_languages());
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
            let set = en_fr();
            let n = normalize(&s);
            prop_assert_eq!(normalize(&n), n.clone());
            let _ = set.classify(&s);
            let _ = set.classify_payload(&s);
        }

        #[test]
        fn keyword_soup_is_consistent(s in arb_message()) {
            let set = en_fr();
            let n = normalize(&s);
            prop_assert_eq!(normalize(&n), n.clone());
            // Classification depends only on the normalized text.
            prop_assert_eq!(set.classify(&s), set.classify(&n));
            prop_assert_eq!(set.classify_payload(&s), set.classify_payload(&n));
        }
    }
}
