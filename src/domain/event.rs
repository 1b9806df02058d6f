//! The consent event: the one record the ledger keeps forever. Everything else (the consent
//! view, the outbox, the analytics) is derived from these, so the type is deliberately flat,
//! versioned by its schema file (schemas/consent-event.v1.json) and hashed over its canonical
//! bytes so that a regulator can be shown the log was not edited.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::contact::Contact;
use super::tenant::TenantId;

/// Namespace of every `event_id` (UUID v5). Fixed forever: changing it would give a replayed
/// message a new id and break deduplication for every subscriber.
pub const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_2b9e_4d3a_5f70_8e21_9a4b_c0d7_e3f1);

/// The format of events this build writes. Format 3 is format 2's hash over the stored form,
/// whose personal fields (identifiers, message text) are sealed under data keys
/// ([`crate::rgpd::field`]), so the chain verifies after the keys are destroyed. Format 2
/// hashes RFC 8785 canonical JSON in a digest chain (see [`ConsentEvent::compute_hash`]), with
/// fields in clear; format 1 (no `format` field) hashed serde's field order. Both are only
/// read, by `migrate`, which rewrites them.
pub const FORMAT: u8 = 3;

/// The format `migrate` re-hashes layout-2 events into before sealing them.
pub const FORMAT_2: u8 = 2;

/// `prev_hash` of the first event of a chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum EventType {
    OptedOut,
    OptedIn,
    /// Two identifiers of one person, seen together in one record: consent then follows the
    /// person (DESIGN.md invariant 6). Carries no purpose of its own.
    IdentityLinked,
    /// The person was erased (RGPD Art. 17): their keys were destroyed in the same batch and
    /// each of their identifiers put on the suppression list. `contact` is the identifier the
    /// request named, `linked` the person's others; `erasure` says who asked and why. Sets no
    /// consent state of its own: the suppression list keeps them out of marketing.
    Erased,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OptedOut => "OptedOut",
            EventType::OptedIn => "OptedIn",
            EventType::IdentityLinked => "IdentityLinked",
            EventType::Erased => "Erased",
        }
    }
}

/// Why the ledger holds two identifiers for one person. Only records that name both say so:
/// links never come from guesses (a shared vCard is somebody else's card, never a link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkSource {
    /// One message carried both: `from` with `from_user_id`, a `contacts[]` entry with `wa_id`
    /// and `user_id`, a BSUID with its parent BSUID, or the new number with the new BSUID of a
    /// change notice.
    Message,
    /// WhatsApp's `user_changed_number`: `contact` is the old number, now retired.
    NumberChange,
    /// A BSUID change (`user_changed_user_id`, or the new BSUID of a number change): `contact`
    /// is the previous BSUID, now retired.
    UserIdChange,
    /// The customer shared their own number through a `REQUEST_CONTACT_INFO` button.
    ContactRequest,
}

impl LinkSource {
    /// Whether `contact` is an identifier the person left: it stays suppressed until an opt-in
    /// arrives from it, since a number can be given to somebody else.
    pub fn retires_contact(self) -> bool {
        matches!(self, LinkSource::NumberChange | LinkSource::UserIdChange)
    }
}

/// What a consent decision is about. Marketing is what STOP revokes; transactional (order and
/// delivery updates) survives a marketing opt-out unless the tenant or the customer says otherwise.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Marketing,
    Transactional,
}

impl Purpose {
    pub const ALL: [Purpose; 2] = [Purpose::Marketing, Purpose::Transactional];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Transactional => "transactional",
        }
    }

    pub fn parse(s: &str) -> Option<Purpose> {
        match s {
            "marketing" => Some(Purpose::Marketing),
            "transactional" => Some(Purpose::Transactional),
            _ => None,
        }
    }
}

/// How the customer expressed the decision; part of the proof of consent (RGPD Art. 7(1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Keyword,
    QuickReply,
    WhatsappUserPreferences,
    Api,
    Import,
    /// A record that named two identifiers of the customer (`IdentityLinked` events).
    Identity,
    /// An opt-out the SMS provider matched itself (Twilio's `OptOutType=STOP`); `keyword` is
    /// the provider's word.
    Provider,
    /// An erasure the business asked for (`erase`, `DELETE …/contacts/{c}`): `Erased` events.
    Erasure,
}

/// Who asked for an erasure and why: the proof that the business, as controller, asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Erasure {
    /// `cli:<user>` (the operating-system user who ran `erase`) or `api:<token>` (the first
    /// 12 hex digits of the SHA-256 of the tenant token, as `api_tokens_sha256` lists it).
    pub requested_by: String,
    /// The reason the business gave. Kept in clear in the chain: it holds no personal data.
    pub reason: String,
}

/// How `campaign_id` was found, so an analyst knows how much to trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Attribution {
    /// The inbound record named the campaign.
    Explicit,
    /// The customer replied to (or pressed a button on) a message the campaign sent.
    ReplyContext,
    /// The last marketing message sent to the contact within the attribution window.
    Window,
    #[default]
    None,
}

/// Where the event came from: enough to find the original message again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventSource {
    pub kind: SourceKind,
    /// Id of the inbound message (WhatsApp `wamid…`, SMS id, or a derived id).
    pub message_id: String,
    /// The keyword or phrase that matched, normalized (e.g. `ARRET`, `STOP ALL`).
    pub keyword: Option<String>,
    /// The classification rule that matched (`exact_keyword`, `courtesy_keyword`, …).
    pub rule: Option<String>,
    /// What the customer sent, verbatim: the text, or the button title and payload.
    pub text: Option<String>,
    pub language: Option<String>,
    /// The message the customer replied to (WhatsApp `context.id`), when any.
    pub context_message_id: Option<String>,
    /// Kafka position of the inbound record (absent for file input).
    pub topic: Option<String>,
    pub kafka_partition: Option<i32>,
    pub offset: Option<i64>,
    /// Line number in the input file (absent for Kafka input).
    pub line: Option<u64>,
    /// The message's own time, as it wrote it, when the clock rule did not trust it (out of
    /// range or unreadable) and the event took its recording time instead. Written only when
    /// set, so events stored before it existed keep their bytes and their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_time: Option<String>,
}

/// An immutable consent event, as stored in the ledger and published to `consent.events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConsentEvent {
    /// Which hash scheme the event uses: 2 (see [`FORMAT`]). Absent on events of format 1.
    #[serde(default = "format_1", skip_serializing_if = "is_format_1")]
    pub format: u8,
    /// UUID v5 of (tenant, source message id, type): a redelivered message gets the same id.
    pub event_id: Uuid,
    /// Ledger partition (the inbound Kafka partition; 0 for file input) whose chain holds it.
    pub partition: u32,
    /// Position in the partition's chain, from 1, without gaps.
    pub seq: u64,
    pub tenant: TenantId,
    /// The identifier the record came under: an E.164 phone number, or a WhatsApp
    /// business-scoped user ID (`US.13491208655302741918`).
    pub contact: Contact,
    /// `whatsapp`, `sms`, or what the source said.
    pub channel: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub purposes: Vec<Purpose>,
    /// When the customer acted (their message time).
    pub occurred_at: DateTime<Utc>,
    /// When the ledger appended the event.
    pub recorded_at: DateTime<Utc>,
    pub source: EventSource,
    pub campaign_id: Option<String>,
    pub attribution: Attribution,
    /// `IdentityLinked` only: the other identifier of the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_contact: Option<Contact>,
    /// `IdentityLinked` only: why the two are one person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_source: Option<LinkSource>,
    /// The person's other identifiers this event applies to, as the ledger knew them when it
    /// appended the event: a subscriber applies the event to `contact` and to each of these.
    /// An opt-in leaves out identifiers the person retired (they stay suppressed until an
    /// opt-in arrives from them). Written only when the person has more than one identifier,
    /// so events of unlinked contacts keep their bytes and hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linked: Vec<Contact>,
    /// `Erased` only: who asked and why. Written only when set, so other events keep their
    /// bytes and hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure: Option<Erasure>,
    /// `hash` of the previous event of this partition (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of the canonical bytes: this event serialized with `hash` set to "".
    pub hash: String,
}

fn format_1() -> u8 {
    1
}

fn is_format_1(format: &u8) -> bool {
    *format == 1
}

/// One link of a chain: the hash of an event whose content digest is `digest`, after the
/// event whose hash is `prev_hash`.
pub fn chain_hash(prev_hash: &str, digest: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(digest.as_bytes());
    lower_hex(&h.finalize())
}

/// Lowercase hex of a digest. `hex::encode` builds its string a char at a time, which showed
/// in the profile of `verify`, where every event is hashed twice.
fn lower_hex(digest: &[u8]) -> String {
    let mut out = vec![0u8; digest.len() * 2];
    hex::encode_to_slice(digest, &mut out).expect("the buffer is twice the input");
    String::from_utf8(out).expect("hex digits are ASCII")
}

impl ConsentEvent {
    /// The id every copy of one decision shares, whatever the number of redeliveries.
    pub fn id_for(tenant: &TenantId, message_id: &str, event_type: EventType) -> Uuid {
        let name = format!("{tenant}\n{message_id}\n{}", event_type.as_str());
        Uuid::new_v5(&EVENT_NAMESPACE, name.as_bytes())
    }

    /// The id of the link between `contact` and `linked` that a message made: one record may
    /// link several pairs (a number change), each its own event.
    pub fn link_id(
        tenant: &TenantId,
        message_id: &str,
        contact: &Contact,
        linked: &Contact,
    ) -> Uuid {
        let name = format!(
            "{tenant}\n{message_id}\n{}\n{contact}\n{linked}",
            EventType::IdentityLinked.as_str()
        );
        Uuid::new_v5(&EVENT_NAMESPACE, name.as_bytes())
    }

    /// The key of this event's record on Kafka: `tenant:BSUID` when the event names one (the
    /// identifier itself, else the first of its person's), since every WhatsApp message has
    /// carried one since April 2026 and it keeps one person's events in one partition whichever
    /// identifier they came under; else `tenant:contact`. A portfolio's parent BSUID is used
    /// only when the person has no BSUID of the business's own.
    pub fn kafka_key(&self) -> String {
        let named = std::iter::once(&self.contact)
            .chain(&self.linked_contact)
            .chain(&self.linked);
        let user_ids: Vec<&Contact> = named.filter(|c| c.is_user_id()).collect();
        let key = user_ids
            .iter()
            .find(|c| !c.is_parent_user_id())
            .or(user_ids.first())
            .copied()
            .unwrap_or(&self.contact);
        format!("{}:{}", self.tenant, key)
    }

    /// Whether this event concerns identifier `c`: its own, or the other side of a link.
    pub fn names(&self, c: &Contact) -> bool {
        &self.contact == c || self.linked_contact.as_ref() == Some(c)
    }

    /// Whether this event takes marketing away when it wins: the opt-out side of the tie rule.
    pub fn is_opt_out(&self) -> bool {
        self.event_type == EventType::OptedOut
    }

    /// The bytes an event's content is hashed over: the RFC 8785 canonical JSON of the event
    /// without `hash` and `prev_hash`. Reproducible in any language from the event's JSON.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        super::canonical::serialize(self, &["hash", "prev_hash"])
            .expect("an event's fields are strings, numbers and objects with string keys")
    }

    /// Hex SHA-256 of [`Self::canonical_bytes`]: what a proof shows of somebody else's event,
    /// so that the chain can be followed without their data.
    pub fn content_digest(&self) -> String {
        lower_hex(&Sha256::digest(self.canonical_bytes()))
    }

    /// The hash: format 2, `SHA-256(prev_hash ‖ content_digest)` over the two lowercase hex
    /// strings, so a chain can be checked from digests alone; format 1, SHA-256 of the event
    /// in serde's field order with `hash` set to "" (read only, to migrate it).
    pub fn compute_hash(&self) -> String {
        match self.format {
            1 => {
                let mut unhashed = self.clone();
                unhashed.hash = String::new();
                let bytes = serde_json::to_vec(&unhashed).expect("a plain struct serializes");
                hex::encode(Sha256::digest(bytes))
            }
            _ => chain_hash(&self.prev_hash, &self.content_digest()),
        }
    }

    /// Links the event after `prev_hash` and seals it.
    pub fn seal(&mut self, prev_hash: &str) {
        self.prev_hash = prev_hash.to_string();
        self.hash = self.compute_hash();
    }

    /// The bytes stored in the ledger: the sealed event as JSON. `verify` checks that stored
    /// bytes are exactly this, so even an edit that keeps the JSON meaning is detected.
    pub fn stored_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializing a plain struct cannot fail")
    }

    /// Whether `bytes` are exactly [`Self::stored_bytes`], compared as they are written
    /// rather than built first: `verify` asks it of every event.
    pub fn is_stored_as(&self, bytes: &[u8]) -> bool {
        /// A writer that accepts only the bytes `0` starts with.
        struct Same<'a>(&'a [u8]);
        impl std::io::Write for Same<'_> {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                match self.0.strip_prefix(buf) {
                    Some(rest) => {
                        self.0 = rest;
                        Ok(buf.len())
                    }
                    None => Err(std::io::ErrorKind::InvalidData.into()),
                }
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut same = Same(bytes);
        serde_json::to_writer(&mut same, self).is_ok() && same.0.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn tenant(id: &str) -> TenantId {
        TenantId::new(id).unwrap()
    }

    pub(crate) fn sample(event_type: EventType, at_secs: i64, seq: u64) -> ConsentEvent {
        let at = Utc.timestamp_opt(at_secs, 0).unwrap();
        let message_id = format!("wamid.{seq}");
        ConsentEvent {
            format: FORMAT,
            event_id: ConsentEvent::id_for(&tenant("acme"), &message_id, event_type),
            partition: 0,
            seq,
            tenant: tenant("acme"),
            contact: Contact::from_stored("+33612345678".into()),
            channel: "whatsapp".into(),
            event_type,
            purposes: vec![Purpose::Marketing],
            occurred_at: at,
            recorded_at: at,
            source: EventSource {
                kind: SourceKind::Keyword,
                message_id,
                keyword: Some("STOP".into()),
                rule: Some("exact_keyword".into()),
                text: Some("Stop".into()),
                language: Some("fr".into()),
                context_message_id: None,
                topic: None,
                kafka_partition: None,
                offset: None,
                line: Some(seq),
                claimed_time: None,
            },
            campaign_id: None,
            attribution: Attribution::None,
            linked_contact: None,
            link_source: None,
            linked: Vec::new(),
            erasure: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// The canonical bytes are written straight from the event; they must stay those of its
    /// JSON tree with `hash` and `prev_hash` removed, every optional field set or not, or no
    /// stored hash would verify.
    #[test]
    fn canonical_bytes_are_those_of_the_events_json_tree() {
        let bare = sample(EventType::OptedOut, 1_700_000_000, 1);
        let mut full = sample(EventType::IdentityLinked, 1_700_000_001, 2);
        full.source.text = Some("Stop\n\"é😀\u{1}\\".into());
        full.source.context_message_id = Some("wamid.ctx".into());
        full.source.topic = Some("inbound".into());
        full.source.kafka_partition = Some(2);
        full.source.offset = Some(-1);
        full.source.claimed_time = Some("1e99".into());
        full.campaign_id = Some("spring".into());
        full.attribution = Attribution::ReplyContext;
        full.linked_contact = Some(Contact::from_stored("US.13491208655302741918".into()));
        full.link_source = Some(LinkSource::ContactRequest);
        full.linked = vec![Contact::from_stored("+4930123456".into())];
        full.erasure = Some(Erasure {
            requested_by: "cli:dpo".into(),
            reason: "art. 17".into(),
        });
        full.purposes = vec![Purpose::Marketing, Purpose::Transactional];
        for mut event in [bare, full] {
            event.seal(GENESIS_HASH);
            let mut tree = serde_json::to_value(&event).unwrap();
            let map = tree.as_object_mut().unwrap();
            map.remove("hash");
            map.remove("prev_hash");
            assert_eq!(
                String::from_utf8(event.canonical_bytes()).unwrap(),
                String::from_utf8(crate::domain::canonical::to_vec(&tree)).unwrap()
            );
        }
    }

    #[test]
    fn event_id_is_stable_per_message_and_type() {
        let (acme, other) = (tenant("acme"), tenant("other"));
        let a = ConsentEvent::id_for(&acme, "wamid.1", EventType::OptedOut);
        assert_eq!(
            a,
            ConsentEvent::id_for(&acme, "wamid.1", EventType::OptedOut)
        );
        assert_ne!(
            a,
            ConsentEvent::id_for(&acme, "wamid.1", EventType::OptedIn)
        );
        assert_ne!(
            a,
            ConsentEvent::id_for(&other, "wamid.1", EventType::OptedOut)
        );
    }

    #[test]
    fn any_edit_changes_the_hash() {
        let mut e = sample(EventType::OptedOut, 1_700_000_000, 1);
        e.seal(GENESIS_HASH);
        let sealed = e.hash.clone();
        assert_eq!(sealed, e.compute_hash());
        let mut edited = e.clone();
        edited.event_type = EventType::OptedIn;
        assert_ne!(edited.compute_hash(), sealed);
        let mut relinked = e.clone();
        relinked.prev_hash = "1".repeat(64);
        assert_ne!(relinked.compute_hash(), sealed);
    }

    #[test]
    fn stored_bytes_round_trip_exactly() {
        let mut e = sample(EventType::OptedIn, 1_700_000_123, 7);
        e.seal(GENESIS_HASH);
        let bytes = e.stored_bytes();
        let back: ConsentEvent = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.stored_bytes(), bytes);
        assert_eq!(back.compute_hash(), e.hash);
    }

    #[test]
    fn only_the_exact_stored_bytes_are_the_events_stored_form() {
        let mut e = sample(EventType::OptedOut, 1_700_000_123, 7);
        e.seal(GENESIS_HASH);
        let bytes = e.stored_bytes();
        assert!(e.is_stored_as(&bytes));
        assert!(!e.is_stored_as(&bytes[..bytes.len() - 1]), "a prefix");
        assert!(
            !e.is_stored_as(&[&bytes[..], b" "].concat()),
            "more after it"
        );
        let mut edited = bytes.clone();
        edited[bytes.len() / 2] ^= 1;
        assert!(!e.is_stored_as(&edited), "one bit changed");
        assert!(!e.is_stored_as(b""));
    }

    #[test]
    fn digests_are_lowercase_hex_as_before() {
        let digest = Sha256::digest(b"consent");
        assert_eq!(lower_hex(&digest), hex::encode(digest));
    }
}
