//! WhatsApp Cloud API webhooks as Meta posts them, drawn from a seeded generator. Shared by
//! the benchmarks so that file mode and Kafka mode are measured on the same traffic.
//!
//! The mix over 50,000 French mobiles: 30% STOP variants, 15% START, 5% quick replies, 5%
//! help, 45% ordinary chat.

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

/// The `i`-th message of the mix, from draw `x`: its sender and the `messages[0]` object.
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
