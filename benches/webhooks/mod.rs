//! WhatsApp Cloud API webhooks as Meta posts them, drawn from a seeded generator. Shared by
//! the benchmarks so that file mode and Kafka mode are measured on the same traffic.
//!
//! Three mixes ([`Mix`]):
//! - `consent`: over 50,000 French mobiles, 30% STOP variants, 15% START, 5% quick replies,
//!   5% help, 45% ordinary chat. Exercises the commit path.
//! - `chat`: the traffic of issue 13's measurement, a business's real inbound stream: over
//!   200,000 mobiles (French, Spanish, British, German, in the national and international
//!   spellings Meta sends), 2% consent keywords (1.4% STOP variants, 0.4% START, 0.2% opt-out
//!   quick replies), 98% ordinary chat of varied length, about 470 bytes a webhook.
//! - `stops`: every message a STOP from a number never seen before, for the rate of durable
//!   opt-out events.

/// The business number every webhook is addressed to; with no `[tenants]` table in the
/// config it is also the tenant.
pub const PHONE_NUMBER_ID: &str = "106540352242922";

/// xorshift64: the same seed gives the same traffic on every machine and every run, which a
/// library RNG does not promise across versions.
pub struct Rng(u64);

impl Rng {
    /// A zero state would stay zero, so it is replaced by a fixed non-zero one.
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Which traffic to generate (see the module's doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    Consent,
    Chat,
    Stops,
}

impl std::str::FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Mix, String> {
        match s {
            "consent" => Ok(Mix::Consent),
            "chat" => Ok(Mix::Chat),
            "stops" => Ok(Mix::Stops),
            _ => Err(format!("unknown mix {s:?} (consent, chat or stops)")),
        }
    }
}

impl Mix {
    /// The `i`-th message of this mix, from draw `x`: its sender and the `messages[0]` object.
    pub fn message(self, i: usize, x: u64) -> (String, String) {
        match self {
            Mix::Consent => message(i, x),
            Mix::Chat => chat_message(i, x),
            Mix::Stops => text(i, &format!("3361{i:07}"), "STOP"),
        }
    }
}

/// What customers write to a shop's WhatsApp number, most of it not about consent.
const CHAT: [&str; 16] = [
    "Bonjour, est-ce que ma commande 1042 est bien partie ? Merci !",
    "Hi! I ordered the blue jacket in size M last Tuesday and the tracking link still says the parcel is being prepared. Could you check what is going on please?",
    "Ok merci",
    "Hola, ¿tienen la talla 38 en negro? La quiero para el sábado.",
    "Guten Tag, ich möchte meine Lieferadresse ändern. Die neue Adresse ist Hauptstraße 12, 10115 Berlin.",
    "👍",
    "Can I return an item that I bought on sale? The receipt says final sale but the website says 30 days.",
    "Le livreur est passé mais je n'étais pas là, comment je fais pour récupérer mon colis ?",
    "Thanks, got it!",
    "Quel est le code promo pour les soldes ? Celui de la newsletter ne marche pas sur l'appli.",
    "Where is my order #58213? It was supposed to arrive yesterday and I need it for a birthday party this weekend.",
    "Ciao, avete ancora lo sconto del 20%?",
    "Je voudrais changer la couleur de ma commande, c'est possible avant l'expédition ?",
    "Yes",
    "Bom dia, vocês entregam em Lisboa? Quanto custa o envio?",
    "Is the store on Rue de Rivoli open on Sunday? And do you have the new sneakers in stock there?",
];

/// The `i`-th message of the `chat` mix.
fn chat_message(i: usize, x: u64) -> (String, String) {
    let n = x % 200_000;
    // Meta sends the number without its "+"; the country follows the contact.
    let from = match n % 4 {
        0 => format!("3361{n:07}"),
        1 => format!("3461{n:07}"),
        2 => format!("4477{n:08}"),
        _ => format!("49151{n:07}"),
    };
    let per_mille = (x >> 20) % 1000;
    if per_mille < 2 {
        let message = format!(
            r#"{{"context":{{"from":"33180884200","id":"wamid.c{i}"}},"from":"{from}","id":"wamid.HBgLMzM2MTIzNDU2NzgVAgASGBQzQUI{i:012}","timestamp":"{}","type":"button","button":{{"payload":"STOP","text":"Se désabonner"}}}}"#,
            1_763_978_400 + i
        );
        return (from, message);
    }
    let body = match per_mille {
        2..=15 => [
            "STOP",
            "Stop",
            "stop please",
            "ARRÊT",
            "BAJA",
            "STOP ALL",
            "Abmelden",
        ][(x >> 40) as usize % 7],
        16..=19 => ["START", "Start", "ALTA"][(x >> 40) as usize % 3],
        _ => CHAT[(x >> 40) as usize % CHAT.len()],
    };
    text(i, &from, body)
}

/// A text message, with a message id shaped as Meta's.
fn text(i: usize, from: &str, body: &str) -> (String, String) {
    let message = format!(
        r#"{{"from":"{from}","id":"wamid.HBgLMzM2MTIzNDU2NzgVAgASGBQzQUI{i:012}","timestamp":"{}","type":"text","text":{{"body":"{body}"}}}}"#,
        1_763_978_400 + i
    );
    (from.to_string(), message)
}

/// The `i`-th message of the `consent` mix, from draw `x`: its sender and the `messages[0]`
/// object.
pub fn message(i: usize, x: u64) -> (String, String) {
    let from = format!("3361{:07}", x % 50_000);
    let body = match x % 20 {
        0..=5 => [
            "STOP",
            "Stop svp",
            "ARRÊT",
            "stop please",
            "STOP ALL",
            "Merci de me désinscrire",
        ][(x / 20 % 6) as usize],
        6..=8 => "START",
        9 => "AIDE",
        _ => "Bonjour, est-ce que ma commande 1042 est bien partie ? Merci !",
    };
    let message = if x % 20 == 10 {
        format!(
            r#"{{"context":{{"from":"33180884200","id":"wamid.c{i}"}},"from":"{from}","id":"wamid.b{i}","timestamp":"{}","type":"button","button":{{"payload":"STOP","text":"Se désabonner"}}}}"#,
            1_763_978_400 + i
        )
    } else {
        format!(
            r#"{{"from":"{from}","id":"wamid.b{i}","timestamp":"{}","type":"text","text":{{"body":"{body}"}}}}"#,
            1_763_978_400 + i
        )
    };
    (from, message)
}

/// The webhook Meta posts around one message from `wa_id`.
pub fn webhook(wa_id: &str, message: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"33180884200","phone_number_id":"{PHONE_NUMBER_ID}"}},"contacts":[{{"profile":{{"name":"Client"}},"wa_id":"{wa_id}"}}],"messages":[{message}]}},"field":"messages"}}]}}]}}"#
    )
}
