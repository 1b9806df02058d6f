//! `consent-ledger init`: a config file with the STOP automation already set up for one
//! tenant, so a business only fills in its WhatsApp number id and its own wording.
//!
//! The keyword lists in its comments and the reply texts are read from the tables the ledger
//! classifies and answers with ([`KeywordSet`], [`default_messages`]), so the file cannot
//! promise a keyword the ledger does not act on; the region comes from the language file's
//! `[init]` section.

use std::fmt::Write as _;

use crate::domain::keywords::{Classification, Intent, KeywordSet, Scope};
use crate::domain::language;
use crate::domain::replies::{default_messages, Messages};
use crate::domain::tenant::{InvalidTenantId, TenantId};
use crate::template::{suggested_button_text, suggested_footer};

/// What marks the line the user must edit before going live.
pub const PHONE_NUMBER_ID_PLACEHOLDER: &str = "REPLACE_WITH_YOUR_PHONE_NUMBER_ID";
/// The host in the webhook URLs to replace.
pub const PUBLIC_HOST_PLACEHOLDER: &str = "REPLACE_WITH_YOUR_HOST";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitError {
    #[error("no built-in language {0:?}: choose one of {1}")]
    UnknownLanguage(String, String),
    #[error("invalid tenant: {0}")]
    InvalidTenant(InvalidTenantId),
}

/// The region national numbers are read in, a guess from the language the user edits.
fn region_for(code: &str) -> &'static str {
    &language::get_or_english(code).init.region
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_key(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        s.to_string()
    } else {
        toml_string(s)
    }
}

/// Wraps a comma-separated keyword list into `# ` comment lines of about 96 columns.
fn comment_list(out: &mut String, label: &str, words: &[String]) {
    let indent = format!("#   {label:<26}");
    let mut line = indent.clone();
    for (i, w) in words.iter().enumerate() {
        let piece = if i + 1 < words.len() {
            format!("{w}, ")
        } else {
            w.clone()
        };
        if line.len() + piece.len() > 96 && line.len() > indent.len() {
            out.push_str(line.trim_end());
            out.push('\n');
            line = format!("#   {:<26}", "");
        }
        line.push_str(&piece);
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// The keywords of `language` that revoke marketing only, and those that revoke everything.
fn opt_out_by_scope(set: &KeywordSet, language: &str) -> (Vec<String>, Vec<String>) {
    set.keywords(language, Intent::OptOut)
        .into_iter()
        .partition(|k| {
            !matches!(
                set.classify(k),
                Classification::OptOut {
                    scope: Scope::All,
                    ..
                }
            )
        })
}

fn messages_table(out: &mut String, tenant: &str, language: &str, m: &Messages) {
    let _ = writeln!(
        out,
        "\n[tenants.{tenant}.messages.{language}]\n\
         # EDIT: sent once after each opt-out, in reply to the customer's message.\n\
         opt_out_confirmation = {}\n\
         # EDIT: sent after START (or another opt-in keyword).\n\
         opt_in_confirmation = {}\n\
         # EDIT: sent for the help keywords; say who you are and how to reach you.\n\
         help = {}",
        toml_string(&m.opt_out_confirmation),
        toml_string(&m.opt_in_confirmation),
        toml_string(&m.help),
    );
}

/// The commented TOML config for `tenant` in `language`.
pub fn config_file(language: &str, tenant: &str) -> Result<String, InitError> {
    let language = language.trim().to_ascii_lowercase();
    let builtins = KeywordSet::builtin_languages();
    if !builtins.contains(&language.as_str()) {
        return Err(InitError::UnknownLanguage(language, builtins.join(", ")));
    }
    // The boundary: the id is checked here, then written into the file as given.
    TenantId::new(tenant).map_err(InitError::InvalidTenant)?;
    let mut languages = vec![language.clone()];
    if language != "en" {
        languages.push("en".to_string());
    }
    let langs_toml = languages
        .iter()
        .map(|l| toml_string(l))
        .collect::<Vec<_>>()
        .join(", ");
    let set = KeywordSet::defaults(&[language.as_str()]);
    let (opt_out, opt_out_all) = opt_out_by_scope(&set, &language);
    let messages = default_messages();
    let key = toml_key(tenant);
    let region = region_for(&language);
    let button = suggested_button_text(&language);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# consent-ledger configuration for tenant {tenant:?}, written by\n\
         # `consent-ledger init --language {language} --tenant {tenant}`.\n\
         #\n\
         # Before going live, edit the lines marked EDIT: your WhatsApp phone_number_id and the\n\
         # texts the customer receives. Everything else is the STOP automation, already on:\n\
         #\n\
         #   trigger  an inbound WhatsApp or SMS message that is an opt-out keyword below (any\n\
         #            casing, accents or not, with courtesy words around it: \"stop merci\"),\n\
         #            a clear revocation sentence, or a tap on a template's STOP quick reply\n\
         #   action   opt the contact out of marketing (STOP ALL words: of every purpose),\n\
         #            record the event with its proof in the hash-chained ledger, and reply\n\
         #            once with opt_out_confirmation; campaigns checking consent skip them\n\
         #   then     START words opt back in (opt_in_confirmation), help words get `help`\n\
         #\n\
         # Check it: `consent-ledger --config THIS_FILE ingest messages.jsonl`, then `status`.\n\
         # Check your marketing templates carry the footer and button: `consent-ledger lint-template`.\n\
         \n\
         # Records per ledger batch: one atomic write and one fsync each.\n\
         batch_size = 1000\n\
         # true: reject messages for numbers no [tenants.NAME] table lists, instead of applying\n\
         # [defaults] to them.\n\
         strict_tenants = false\n\
         \n\
         [defaults]\n\
         # For messages of numbers no tenant lists (see strict_tenants).\n\
         region = {region:?}\n\
         languages = [{langs_toml}]\n\
         \n\
         [tenants.{key}]\n\
         # EDIT: your WhatsApp Business phone_number_id (WhatsApp Manager > API Setup, or\n\
         # metadata.phone_number_id in a webhook). Until you do, messages to your number are\n\
         # handled with [defaults] under the id itself as tenant name.\n\
         phone_number_ids = [{placeholder}]\n\
         # EDIT if SMS reach you through Twilio: the numbers customers text (E.164, or a short\n\
         # code), from Twilio Console > Phone Numbers > Manage > Active numbers. A Twilio\n\
         # message sent To one of them is this tenant's.\n\
         sms_numbers = []\n\
         # ISO 3166 region used to read national numbers (\"06 12 34 56 78\" with FR).\n\
         region = {region:?}\n\
         # Keyword languages, yours first: replies go out in the language of the keyword the\n\
         # customer used, else in the first one.\n\
         languages = [{langs_toml}]\n\
         # Policy. true: marketing only to contacts with a recorded opt-in (START, a web form\n\
         # recorded through the API, an import).\n\
         marketing_requires_opt_in = false\n\
         # \"allow\": order and delivery messages still go out after a marketing STOP;\n\
         # \"block\": they stop too. STOP ALL always blocks them.\n\
         transactional_after_optout = \"allow\"\n\
         \n\
         # The triggers for {language:?}, from the built-in tables (shown normalized: casing,\n\
         # accents and punctuation do not matter):\n#",
        placeholder = toml_string(PHONE_NUMBER_ID_PLACEHOLDER),
    );
    comment_list(&mut out, "opt-out (marketing):", &opt_out);
    comment_list(&mut out, "opt-out (every purpose):", &opt_out_all);
    comment_list(&mut out, "opt-in:", &set.keywords(&language, Intent::OptIn));
    comment_list(&mut out, "help:", &set.keywords(&language, Intent::Help));
    let _ = writeln!(
        out,
        "#   {:<26}a template button {{\"type\":\"QUICK_REPLY\",\"text\":\"{button}\"}}: its\n\
         #   {:<26}payload {button} opts out like the typed keyword\n\
         #   {:<26}a footer such as {:?}\n\
         #{}\n\
         # To change the lists for your customers, uncomment and edit:\n\
         [tenants.{key}.keywords.{language}]\n\
         # opt_out_add = []                 # more opt-out words\n\
         # opt_out_remove = []              # built-in words your customers use otherwise\n\
         # opt_out_all_add = []             # words that also stop transactional messages\n\
         # opt_in_add = []                  # opt_in_remove = []\n\
         # help_add = []                    # help_remove = []\n\
         # courtesy_add = []                # words allowed around a keyword (\"svp\")\n\
         # phrases_add = []                 # revocation sentences, matched anywhere",
        "quick reply:",
        "",
        "template footer:",
        suggested_footer(&language),
        if language == "en" {
            String::new()
        } else {
            format!("   and the English keywords, since languages lists \"en\" after {language:?}.")
        },
    );
    for lang in &languages {
        if let Some(m) = messages.get(lang) {
            messages_table(&mut out, &key, lang, m);
        }
    }
    let _ = writeln!(
        out,
        "\n# The HTTP API (`consent-ledger serve` / `run --listen`): put the SHA-256 of each token\n\
         # here, never the token: printf %s \"$TOKEN\" | sha256sum\n\
         # [api]\n\
         # admin_tokens_sha256 = []\n\
         # and under [tenants.{key}]: api_tokens_sha256 = [\"...\"]"
    );
    webhooks_tables(&mut out);
    Ok(out)
}

/// The receivers Meta and Twilio post to, with where each value is found in their consoles.
/// Secrets are `env:` references, so the file holds none and can be committed.
fn webhooks_tables(out: &mut String) {
    let _ = writeln!(
        out,
        "\n# Webhooks: point Meta and Twilio straight at `serve` (or `run --listen`), see README\n\
         # \"Connect WhatsApp\" and \"Connect Twilio\". Secrets stay out of this file: \"env:NAME\" is\n\
         # read from the environment when the endpoints start, and the service does not start\n\
         # while one is missing. Delete a table to turn its webhook off. Try them without the\n\
         # provider: `consent-ledger sign-webhook`.\n\
         [webhooks]\n\
         # max_body_bytes = 3145728        # larger bodies get 413 (Meta's payloads stay under 3 MB)\n\
         # rate_limit_per_source = \"50/s\"  # per client address; past it 429 and the provider retries\n\
         \n\
         [webhooks.whatsapp]\n\
         # Meta App Dashboard > your app > WhatsApp > Configuration > Webhook > Edit:\n\
         #   Callback URL  https://{PUBLIC_HOST_PLACEHOLDER}/webhooks/whatsapp\n\
         #   Verify token  a random string of your choice, the value of this variable\n\
         # then subscribe to the \"messages\" and \"user_preferences\" webhook fields.\n\
         verify_token = \"env:WHATSAPP_VERIFY_TOKEN\"\n\
         # App Dashboard > App settings > Basic > App secret (Show). While rotating it, list the\n\
         # new one and the old one until Meta signs with the new one only.\n\
         app_secrets = [\"env:WHATSAPP_APP_SECRET\"]\n\
         \n\
         [webhooks.twilio]\n\
         # Twilio Console > Account Info (Account > API keys & tokens): Auth Token. While\n\
         # rotating, list the secondary token too until it is promoted.\n\
         auth_tokens = [\"env:TWILIO_AUTH_TOKEN\"]\n\
         # EDIT: the URL set in Twilio Console > Phone Numbers > Manage > Active numbers > your\n\
         # number > Messaging Configuration > \"A message comes in\" (Webhook, HTTP POST), as\n\
         # Twilio calls it, without any #... part. Twilio signs this URL.\n\
         public_url = \"https://{PUBLIC_HOST_PLACEHOLDER}/webhooks/twilio/sms\""
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::template::lint;

    #[test]
    fn every_builtin_language_loads_with_its_texts_and_keywords() {
        for lang in KeywordSet::builtin_languages() {
            // Given the file init writes for this language
            let text = config_file(lang, "shop").unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("consent-ledger.toml");
            std::fs::write(&path, &text).unwrap();
            // When the service loads it
            let settings = Settings::load(Some(&path)).unwrap_or_else(|e| panic!("{lang}: {e}"));
            // Then the tenant has the language first, then English, and the built-in replies
            let p = settings.profile(&"shop".parse().unwrap());
            assert_eq!(p.languages[0], *lang);
            assert_eq!(p.languages.last().unwrap(), "en");
            let (reply_lang, m) = p.messages_for(Some(lang));
            assert_eq!(reply_lang, *lang);
            assert_eq!(m, &default_messages()[*lang]);
            assert!(text.contains(PHONE_NUMBER_ID_PLACEHOLDER));
            // And every keyword its comments list is one the ledger acts on
            for kw in KeywordSet::defaults(&[lang]).keywords(lang, Intent::OptOut) {
                assert!(text.contains(&kw), "{lang}: {kw} not listed");
                assert!(matches!(
                    p.keywords.classify(&kw),
                    Classification::OptOut { .. }
                ));
            }
        }
    }

    #[test]
    fn the_webhook_tables_hold_no_secret_and_say_where_each_value_is() {
        let text = config_file("fr", "shop").unwrap();
        let settings = Settings::from_file(toml::from_str(&text).unwrap()).unwrap();
        let w = &settings.file.webhooks;
        assert!(w.whatsapp.is_some() && w.twilio.is_some());
        // Every secret is read from the environment, so it is missing until the user sets it.
        let e = w.resolve(&|_| None).err().unwrap().to_string();
        assert!(e.contains("WHATSAPP_VERIFY_TOKEN"), "{e}");
        let set = |name: &str| Some(format!("value of {name}"));
        let keys = w.resolve(&set).unwrap();
        assert_eq!(
            keys.whatsapp.unwrap().app_secrets,
            vec![b"value of WHATSAPP_APP_SECRET".to_vec()]
        );
        for console in [
            "App secret",
            "Verify token",
            "Auth Token",
            "A message comes in",
            "Active numbers",
        ] {
            assert!(text.contains(console), "{console}");
        }
    }

    #[test]
    fn stop_all_words_are_listed_apart_from_marketing_ones() {
        let text = config_file("fr", "shop").unwrap();
        let all_line = text
            .lines()
            .find(|l| l.contains("opt-out (every purpose):"))
            .unwrap();
        assert!(all_line.contains("STOP ALL") && all_line.contains("STOP TOUT"));
        let marketing = text
            .lines()
            .find(|l| l.contains("opt-out (marketing):"))
            .unwrap();
        assert!(marketing.contains("STOP,") && !marketing.contains("STOP ALL"));
        let help = text.lines().find(|l| l.contains("help:")).unwrap();
        assert!(help.ends_with("AIDE, INFO"), "{help}");
    }

    #[test]
    fn the_suggested_footer_and_button_make_a_compliant_template() {
        let t = serde_json::json!({"name": "promo", "language": "de", "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Angebot"},
                {"type": "FOOTER", "text": suggested_footer("de")},
                {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": suggested_button_text("de")}]}]});
        assert!(lint(&t).unwrap().compliant);
    }

    #[test]
    fn tenant_names_with_dots_are_quoted_and_bad_input_is_refused() {
        let text = config_file("en", "shop.eu").unwrap();
        assert!(text.contains("[tenants.\"shop.eu\"]"));
        let settings = Settings::from_file(toml::from_str(&text).unwrap()).unwrap();
        let shop: TenantId = "shop.eu".parse().unwrap();
        assert_eq!(settings.profile(&shop).languages, vec!["en"]);
        assert!(matches!(
            config_file("nl", "shop"),
            Err(InitError::UnknownLanguage(..))
        ));
        assert!(matches!(
            config_file("fr", "my shop"),
            Err(InitError::InvalidTenant(_))
        ));
    }
}
