//! The aggregate: `decide(state, message) -> events`. Pure, like a cqrs-es `handle`: given a
//! contact's consent and one classified message, what the ledger appends and what the customer
//! is told. The pipeline supplies the position (partition, seq, clock) so that this stays free
//! of I/O and clocks, and so that tests can state whole scenarios as given/when/then.

use chrono::{DateTime, Duration, Utc};

use super::analytics::SentRef;
use super::consent::{event_type_for, purposes_for, ContactConsent, Request};
use super::contact::Contact;
use super::event::{Attribution, ConsentEvent, EventSource, EventType, SourceKind};
use super::inbound::{Content, Message, Preference, SentCategory};
use super::keywords::{Classification, KeywordSet, Rule, Scope};
use super::replies::ReplyKind;

/// What one message amounted to; the ingest summary counts these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    OptedOut,
    OptedIn,
    Help,
    NoChange,
    PossibleOptOut,
}

/// Where the inbound record was read: part of each event's proof.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub topic: Option<String>,
    pub kafka_partition: Option<i32>,
    pub offset: Option<i64>,
    pub line: Option<u64>,
}

/// A decoded message whose tenant and contact are resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub tenant: String,
    pub contact: Contact,
    pub message: Message,
    pub origin: Origin,
}

/// Where the next event goes in the ledger.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    pub partition: u32,
    pub seq: u64,
    pub recorded_at: DateTime<Utc>,
}

/// The campaign a message answers, and how sure we are of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributed {
    pub campaign_id: Option<String>,
    pub attribution: Attribution,
}

/// Which campaign a message answers, most certain route first: the campaign the record names;
/// the sent message the customer replied to (`context_message_id`), whatever its category,
/// since the customer pointed at it; else the last marketing message sent to the contact no
/// more than `window` before the message (inclusive: exactly `window` before still counts).
/// The caller looks up `replied_to` and `last_marketing` (the latest marketing send at or
/// before the message, or any earlier one); the boundary is decided here.
pub fn attribute(
    message: &Message,
    replied_to: Option<&SentRef>,
    last_marketing: Option<&SentRef>,
    window: Duration,
) -> Attributed {
    if let Some(id) = &message.campaign_id {
        return Attributed {
            campaign_id: Some(id.clone()),
            attribution: Attribution::Explicit,
        };
    }
    if let Some(sent) = replied_to {
        return Attributed {
            campaign_id: Some(sent.campaign_id.clone()),
            attribution: Attribution::ReplyContext,
        };
    }
    if let Some(sent) = last_marketing.filter(|s| {
        s.category == SentCategory::Marketing
            && s.sent_at <= message.occurred_at
            && message.occurred_at - s.sent_at <= window
    }) {
        return Attributed {
            campaign_id: Some(sent.campaign_id.clone()),
            attribution: Attribution::Window,
        };
    }
    Attributed::default()
}

/// The classification of a message, with the kind of source it came from.
pub fn classify(message: &Message, keywords: &KeywordSet) -> (Classification, SourceKind) {
    match &message.content {
        Content::Text(text) => (keywords.classify(text), SourceKind::Keyword),
        Content::Button { payload, title } => {
            let mut c = keywords.classify_payload(payload);
            if c == Classification::NoChange {
                if let Some(title) = title {
                    c = keywords.classify_payload(title);
                    if c == Classification::NoChange {
                        c = keywords.classify(title);
                    }
                }
            }
            (c, SourceKind::QuickReply)
        }
        Content::Preference(p) => {
            let keyword = "user_preferences".to_string();
            let c = match p {
                Preference::Stop => Classification::OptOut {
                    scope: Scope::Marketing,
                    keyword,
                    rule: Rule::ExactKeyword,
                    language: None,
                },
                Preference::Resume => Classification::OptIn {
                    keyword,
                    rule: Rule::ExactKeyword,
                    language: None,
                },
            };
            (c, SourceKind::WhatsappUserPreferences)
        }
    }
}

/// The request a classification makes, if it changes consent.
pub fn request_of(c: &Classification) -> Option<Request> {
    match c {
        Classification::OptOut { scope, .. } => Some(Request::OptOut {
            all: *scope == Scope::All,
        }),
        Classification::OptIn { .. } => Some(Request::OptIn),
        _ => None,
    }
}

pub fn outcome_of(c: &Classification) -> Outcome {
    match c {
        Classification::OptOut { .. } => Outcome::OptedOut,
        Classification::OptIn { .. } => Outcome::OptedIn,
        Classification::Help { .. } => Outcome::Help,
        Classification::PossibleOptOut { .. } => Outcome::PossibleOptOut,
        Classification::NoChange => Outcome::NoChange,
    }
}

/// The language a reply should use: what the sender said, else the language of the keyword.
pub fn language_of(message: &Message, c: &Classification) -> Option<String> {
    let matched = match c {
        Classification::OptOut { language, .. }
        | Classification::OptIn { language, .. }
        | Classification::Help { language, .. }
        | Classification::PossibleOptOut { language, .. } => language.clone(),
        Classification::NoChange => None,
    };
    message.language.clone().or(matched)
}

fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::ExactKeyword => "exact_keyword",
        Rule::CourtesyKeyword => "courtesy_keyword",
        Rule::RevocationPhrase => "revocation_phrase",
        Rule::QuickReplyPayload => "quick_reply_payload",
        Rule::KeywordInSentence => "keyword_in_sentence",
    }
}

fn source_text(content: &Content) -> Option<String> {
    match content {
        Content::Text(t) => Some(t.clone()),
        Content::Button { payload, title } => Some(match title {
            Some(title) => format!("{title} [payload: {payload}]"),
            None => format!("[payload: {payload}]"),
        }),
        Content::Preference(Preference::Stop) => Some("user_preferences: stop".into()),
        Content::Preference(Preference::Resume) => Some("user_preferences: resume".into()),
    }
}

/// The event a consent-changing message appends, sealed later by the ledger.
pub fn event_for(
    r: &Resolved,
    c: &Classification,
    kind: SourceKind,
    current: &ContactConsent,
    at: Position,
    attributed: &Attributed,
) -> Option<ConsentEvent> {
    let request = request_of(c)?;
    let event_type: EventType = event_type_for(request);
    let (keyword, rule) = match c {
        Classification::OptOut { keyword, rule, .. }
        | Classification::OptIn { keyword, rule, .. } => (keyword.clone(), *rule),
        _ => unreachable!("request_of returned Some"),
    };
    Some(ConsentEvent {
        event_id: ConsentEvent::id_for(&r.tenant, &r.message.message_id, event_type),
        partition: at.partition,
        seq: at.seq,
        tenant: r.tenant.clone(),
        contact: r.contact.clone(),
        channel: r.message.channel.clone(),
        event_type,
        purposes: purposes_for(request, current),
        occurred_at: r.message.occurred_at,
        recorded_at: at.recorded_at,
        source: EventSource {
            kind,
            message_id: r.message.message_id.clone(),
            keyword: Some(keyword),
            rule: Some(rule_name(rule).to_string()),
            text: source_text(&r.message.content),
            language: language_of(&r.message, c),
            context_message_id: r.message.context_message_id.clone(),
            topic: r.origin.topic.clone(),
            kafka_partition: r.origin.kafka_partition,
            offset: r.origin.offset,
            line: r.origin.line,
        },
        campaign_id: attributed.campaign_id.clone(),
        attribution: attributed.attribution,
        prev_hash: String::new(),
        hash: String::new(),
    })
}

/// The reply an appended event earns: a confirmation only when it changed the customer's
/// status, so a second STOP does not get a second "you are unsubscribed".
pub fn reply_for_event(
    before: &ContactConsent,
    after: &ContactConsent,
    event: &ConsentEvent,
) -> Option<ReplyKind> {
    if !before.is_transition(after, event) {
        return None;
    }
    Some(match event.event_type {
        EventType::OptedOut => ReplyKind::OptOutConfirmation,
        EventType::OptedIn => ReplyKind::OptInConfirmation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::consent::Status;
    use crate::domain::event::Purpose;
    use crate::domain::inbound::TenantRef;
    use chrono::TimeZone;

    fn msg(id: &str, at: i64, content: Content) -> Resolved {
        Resolved {
            tenant: "acme".into(),
            contact: Contact::from_stored("+33612345678".into()),
            message: Message {
                tenant: TenantRef::Name("acme".into()),
                channel: "whatsapp".into(),
                message_id: id.into(),
                from: "33612345678".into(),
                occurred_at: Utc.timestamp_opt(at, 0).unwrap(),
                content,
                context_message_id: None,
                campaign_id: None,
                language: None,
            },
            origin: Origin::default(),
        }
    }

    /// Given the events so far, when `messages` arrive in order, then: their outcomes,
    /// the replies sent and the final state.
    fn run(messages: &[Resolved]) -> (Vec<Outcome>, Vec<Option<ReplyKind>>, ContactConsent) {
        let keywords = KeywordSet::defaults(&["fr", "en"]);
        let mut state = ContactConsent::default();
        let (mut outcomes, mut replies) = (vec![], vec![]);
        for (i, r) in messages.iter().enumerate() {
            let (c, kind) = classify(&r.message, &keywords);
            outcomes.push(outcome_of(&c));
            let at = Position {
                partition: 0,
                seq: i as u64 + 1,
                recorded_at: Utc.timestamp_opt(9_999_999, 0).unwrap(),
            };
            let attributed = attribute(&r.message, None, None, Duration::hours(72));
            match event_for(r, &c, kind, &state, at, &attributed) {
                Some(e) => {
                    let after = state.apply(&e);
                    replies.push(reply_for_event(&state, &after, &e));
                    state = after;
                }
                None => replies.push(None),
            }
        }
        (outcomes, replies, state)
    }

    fn text(t: &str) -> Content {
        Content::Text(t.into())
    }

    #[test]
    fn stop_then_repeated_stop_confirms_once() {
        let (outcomes, replies, state) = run(&[
            msg("m1", 1_000, text("STOP")),
            msg("m2", 2_000, text("stop svp")),
        ]);
        assert_eq!(outcomes, vec![Outcome::OptedOut, Outcome::OptedOut]);
        assert_eq!(replies, vec![Some(ReplyKind::OptOutConfirmation), None]);
        assert_eq!(state.marketing.status, Status::OptedOut);
        assert_eq!(state.marketing.events, 2);
    }

    #[test]
    fn quick_reply_button_stop_opts_out_as_quick_reply() {
        let keywords = KeywordSet::defaults(&["fr", "en"]);
        let r = msg(
            "b1",
            1_000,
            Content::Button {
                payload: "STOP".into(),
                title: Some("Stop promotions".into()),
            },
        );
        let (c, kind) = classify(&r.message, &keywords);
        assert_eq!(kind, SourceKind::QuickReply);
        assert_eq!(outcome_of(&c), Outcome::OptedOut);
    }

    #[test]
    fn user_preferences_stop_and_resume() {
        let (outcomes, replies, state) = run(&[
            msg("p1", 1_000, Content::Preference(Preference::Stop)),
            msg("p2", 2_000, Content::Preference(Preference::Resume)),
        ]);
        assert_eq!(outcomes, vec![Outcome::OptedOut, Outcome::OptedIn]);
        assert_eq!(
            replies,
            vec![
                Some(ReplyKind::OptOutConfirmation),
                Some(ReplyKind::OptInConfirmation)
            ]
        );
        assert_eq!(state.marketing.status, Status::OptedIn);
    }

    #[test]
    fn late_older_stop_after_start_changes_nothing_and_sends_nothing() {
        let (_, replies, state) = run(&[
            msg("m1", 1_000, text("STOP")),
            msg("m3", 3_000, text("START")),
            msg("m2", 2_000, text("ARRÊT")),
        ]);
        assert_eq!(
            replies,
            vec![
                Some(ReplyKind::OptOutConfirmation),
                Some(ReplyKind::OptInConfirmation),
                None
            ]
        );
        assert_eq!(state.marketing.status, Status::OptedIn);
        assert_eq!(state.marketing.events, 3);
    }

    #[test]
    fn stop_all_revokes_transactional_too() {
        let (_, _, state) = run(&[msg("m1", 1_000, text("STOP ALL"))]);
        assert_eq!(state.transactional.status, Status::OptedOut);
        assert_eq!(state.get(Purpose::Marketing).status, Status::OptedOut);
    }

    #[test]
    fn help_and_chat_append_nothing() {
        let (outcomes, replies, state) = run(&[
            msg("m1", 1_000, text("HELP")),
            msg("m2", 2_000, text("Do you have it in blue?")),
            msg("m3", 3_000, text("I can't stop buying your stuff")),
        ]);
        assert_eq!(
            outcomes,
            vec![Outcome::Help, Outcome::NoChange, Outcome::PossibleOptOut]
        );
        assert_eq!(replies, vec![None, None, None]);
        assert_eq!(state, ContactConsent::default());
    }

    #[test]
    fn explicit_campaign_is_attributed() {
        let mut r = msg("m1", 1_000, text("STOP"));
        r.message.campaign_id = Some("black-friday".into());
        let keywords = KeywordSet::defaults(&["fr"]);
        let (c, kind) = classify(&r.message, &keywords);
        let at = Position {
            partition: 0,
            seq: 1,
            recorded_at: Utc.timestamp_opt(5, 0).unwrap(),
        };
        let sent = sent_ref("wamid.C1", "welcome", 0);
        let attributed = attribute(&r.message, Some(&sent), Some(&sent), Duration::hours(72));
        let e = event_for(&r, &c, kind, &ContactConsent::default(), at, &attributed).unwrap();
        assert_eq!(e.campaign_id.as_deref(), Some("black-friday"));
        assert_eq!(e.attribution, Attribution::Explicit);
        assert_eq!(e.source.language.as_deref(), Some("fr"));
    }

    fn sent_ref(id: &str, campaign: &str, at: i64) -> SentRef {
        SentRef {
            message_id: id.into(),
            contact: Contact::from_stored("+33612345678".into()),
            campaign_id: campaign.into(),
            category: SentCategory::Marketing,
            sent_at: Utc.timestamp_opt(at, 0).unwrap(),
        }
    }

    const H72: i64 = 72 * 3600;

    #[test]
    fn a_reply_to_a_campaign_message_is_attributed_to_that_campaign() {
        let mut r = msg("m1", 10 * H72, text("STOP"));
        r.message.context_message_id = Some("wamid.C1".into());
        let mut replied = sent_ref("wamid.C1", "spring-sale", 0);
        // Even a utility message counts when the customer answered it, long ago or not.
        replied.category = SentCategory::Utility;
        let recent = sent_ref("wamid.C2", "newsletter", 10 * H72 - 60);
        let a = attribute(
            &r.message,
            Some(&replied),
            Some(&recent),
            Duration::hours(72),
        );
        assert_eq!(a.campaign_id.as_deref(), Some("spring-sale"));
        assert_eq!(a.attribution, Attribution::ReplyContext);
    }

    #[test]
    fn without_context_the_last_marketing_send_in_the_window_is_attributed() {
        let r = msg("m1", 1_000_000, text("STOP"));
        let sent = sent_ref("wamid.C1", "flash", 1_000_000 - 3600);
        let a = attribute(&r.message, None, Some(&sent), Duration::hours(72));
        assert_eq!(
            (a.campaign_id.as_deref(), a.attribution),
            (Some("flash"), Attribution::Window)
        );
        let mut utility = sent.clone();
        utility.category = SentCategory::Utility;
        let a = attribute(&r.message, None, Some(&utility), Duration::hours(72));
        assert_eq!(a, Attributed::default());
    }

    #[test]
    fn the_window_boundary_is_inclusive() {
        let r = msg("m1", 1_000_000, text("STOP"));
        let exactly = sent_ref("wamid.C1", "flash", 1_000_000 - H72);
        let a = attribute(&r.message, None, Some(&exactly), Duration::hours(72));
        assert_eq!(a.attribution, Attribution::Window);
        let a_second_more = sent_ref("wamid.C1", "flash", 1_000_000 - H72 - 1);
        let a = attribute(&r.message, None, Some(&a_second_more), Duration::hours(72));
        assert_eq!(a, Attributed::default());
        assert_eq!(a.attribution, Attribution::None);
        // A send after the message cannot be what it answers.
        let later = sent_ref("wamid.C1", "flash", 1_000_001);
        let a = attribute(&r.message, None, Some(&later), Duration::hours(72));
        assert_eq!(a.attribution, Attribution::None);
    }
}
