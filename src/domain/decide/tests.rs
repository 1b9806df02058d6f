//! Given the events so far, when a command arrives, then these events and this reply.

use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::domain::clock::Claimed;
use crate::domain::consent::Status;
use crate::domain::event::tests::tenant;
use crate::domain::event::{Purpose, SourceKind};
use crate::domain::inbound::{Content, Preference, SentCategory, TenantRef};
use crate::domain::keywords::KeywordSet;

const H72: i64 = 72 * 3600;

fn msg(id: &str, at: i64, content: Content) -> Resolved {
    Resolved {
        tenant: tenant("acme"),
        contact: Contact::from_stored("+33612345678".into()),
        links: Vec::new(),
        message: Message {
            tenant: TenantRef::Name("acme".into()),
            channel: "whatsapp".into(),
            message_id: id.into(),
            from: "33612345678".into(),
            claimed_at: Claimed::at(at.to_string(), Utc.timestamp_opt(at, 0).unwrap()),
            content,
            context_message_id: None,
            campaign_id: None,
            language: None,
            links: Vec::new(),
            path: None,
        },
        origin: Origin::default(),
        time: EffectiveTime {
            at: Utc.timestamp_opt(at, 0).unwrap(),
            corrected: false,
            claimed: None,
            earliest: Utc.timestamp_opt(at, 0).unwrap(),
        },
    }
}

fn text(t: &str) -> Content {
    Content::Text(t.into())
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

/// The world a scenario runs in: the contact's consent so far (the fold of the given
/// events) and what the ledger knows of past sends.
struct Given {
    consent: ContactConsent,
    seq: u64,
    replied_to: Option<SentRef>,
    last_marketing: Option<SentRef>,
    linked: Linked,
}

impl Given {
    fn nothing() -> Given {
        Given {
            consent: ContactConsent::default(),
            seq: 0,
            replied_to: None,
            last_marketing: None,
            linked: Linked::default(),
        }
    }

    /// When `message` arrives: the decision, with its events folded into the state as the
    /// ledger would (sealed at the next seq).
    fn when(&mut self, message: &Resolved) -> Decision {
        let classified = classify(&message.message, &KeywordSet::defaults(&["fr", "en"]));
        self.when_command(Command::Message {
            message,
            classified: &classified,
        })
    }

    fn when_command(&mut self, command: Command<'_>) -> Decision {
        let state = State {
            consent: &self.consent,
            decided: &self.consent,
            replied_to: self.replied_to.as_ref(),
            last_marketing: self.last_marketing.as_ref(),
            attribution_window: Duration::hours(72),
            now: Utc.timestamp_opt(9_999_999, 0).unwrap(),
            linked: &self.linked,
        };
        let decision = decide(state, command);
        for e in &decision.events {
            let mut sealed = e.clone();
            self.seq += 1;
            sealed.seq = self.seq;
            self.consent = self.consent.apply(&sealed);
        }
        decision
    }
}

fn reply_kind(d: &Decision) -> Option<ReplyKind> {
    d.reply.as_ref().map(|r| r.kind)
}

#[test]
fn given_nothing_when_stop_then_one_unsealed_opt_out_and_a_confirmation() {
    let mut given = Given::nothing();
    let d = given.when(&msg("m1", 1_000, text("STOP")));
    assert_eq!(d.outcome, Outcome::OptedOut);
    assert_eq!(d.events.len(), 1);
    let e = &d.events[0];
    assert_eq!(e.event_type, EventType::OptedOut);
    assert_eq!(e.purposes, vec![Purpose::Marketing]);
    assert_eq!((e.seq, e.prev_hash.as_str(), e.hash.as_str()), (0, "", ""));
    assert_eq!(
        e.event_id,
        ConsentEvent::id_for(&tenant("acme"), "m1", EventType::OptedOut)
    );
    assert_eq!(reply_kind(&d), Some(ReplyKind::OptOutConfirmation));
    assert!(d.acted());
}

#[test]
fn given_an_opt_out_when_stop_again_then_an_event_but_no_second_confirmation() {
    let mut given = Given::nothing();
    given.when(&msg("m1", 1_000, text("STOP")));
    let d = given.when(&msg("m2", 2_000, text("stop svp")));
    assert_eq!(d.outcome, Outcome::OptedOut);
    assert_eq!(d.events.len(), 1);
    assert_eq!(d.reply, None);
    assert_eq!(given.consent.marketing.status, Status::OptedOut);
    assert_eq!(given.consent.marketing.events, 2);
}

#[test]
fn when_a_quick_reply_button_says_stop_then_an_opt_out_from_a_quick_reply() {
    let d = Given::nothing().when(&msg(
        "b1",
        1_000,
        Content::Button {
            payload: "STOP".into(),
            title: Some("Stop promotions".into()),
        },
    ));
    assert_eq!(d.outcome, Outcome::OptedOut);
    assert_eq!(d.events[0].source.kind, SourceKind::QuickReply);
}

#[test]
fn given_user_preferences_stop_when_resume_then_opted_in_with_both_confirmations() {
    let mut given = Given::nothing();
    let stop = given.when(&msg("p1", 1_000, Content::Preference(Preference::Stop)));
    let resume = given.when(&msg("p2", 2_000, Content::Preference(Preference::Resume)));
    assert_eq!(reply_kind(&stop), Some(ReplyKind::OptOutConfirmation));
    assert_eq!(reply_kind(&resume), Some(ReplyKind::OptInConfirmation));
    assert_eq!(given.consent.marketing.status, Status::OptedIn);
}

#[test]
fn given_stop_then_start_when_an_older_stop_arrives_late_then_history_only_and_no_reply() {
    let mut given = Given::nothing();
    given.when(&msg("m1", 1_000, text("STOP")));
    given.when(&msg("m3", 3_000, text("START")));
    let late = given.when(&msg("m2", 2_000, text("ARRÊT")));
    assert_eq!(late.events.len(), 1, "the late STOP stays in history");
    assert_eq!(late.reply, None);
    assert_eq!(given.consent.marketing.status, Status::OptedIn);
    assert_eq!(given.consent.marketing.events, 3);
}

#[test]
fn when_stop_all_then_every_purpose_is_revoked() {
    let mut given = Given::nothing();
    let d = given.when(&msg("m1", 1_000, text("STOP ALL")));
    assert_eq!(d.events[0].purposes, Purpose::ALL.to_vec());
    assert_eq!(given.consent.transactional.status, Status::OptedOut);
}

#[test]
fn when_help_then_the_help_reply_and_no_event() {
    let d = Given::nothing().when(&msg("m1", 1_000, text("HELP")));
    assert_eq!(d.outcome, Outcome::Help);
    assert!(d.events.is_empty());
    assert_eq!(reply_kind(&d), Some(ReplyKind::Help));
    assert!(
        d.acted(),
        "a help reply is remembered, so a redelivery is not answered twice"
    );
}

#[test]
fn when_chat_or_a_keyword_in_a_sentence_then_nothing_to_remember() {
    let mut given = Given::nothing();
    let chat = given.when(&msg("m2", 2_000, text("Do you have it in blue?")));
    let sentence = given.when(&msg("m3", 3_000, text("I can't stop buying your stuff")));
    assert_eq!(chat.outcome, Outcome::NoChange);
    assert_eq!(sentence.outcome, Outcome::PossibleOptOut);
    assert!(!chat.acted() && !sentence.acted());
    assert_eq!(given.consent, ContactConsent::default());
}

#[test]
fn given_a_recent_campaign_when_a_possible_opt_out_then_a_signal_for_it() {
    let mut given = Given::nothing();
    given.last_marketing = Some(sent_ref("wamid.C1", "flash", 1_000 - 60));
    let d = given.when(&msg("m1", 1_000, text("I can't stop buying your stuff")));
    assert_eq!(
        d.signal,
        Some(Signal {
            kind: SignalKind::PossibleOptOut,
            campaign_id: "flash".into()
        })
    );
}

#[test]
fn when_the_record_names_its_campaign_then_it_is_attributed_explicitly() {
    let mut r = msg("m1", 1_000, text("STOP"));
    r.message.campaign_id = Some("black-friday".into());
    let mut given = Given::nothing();
    given.replied_to = Some(sent_ref("wamid.C1", "welcome", 0));
    given.last_marketing = given.replied_to.clone();
    let d = given.when(&r);
    let e = &d.events[0];
    assert_eq!(e.campaign_id.as_deref(), Some("black-friday"));
    assert_eq!(e.attribution, Attribution::Explicit);
    assert_eq!(e.source.language.as_deref(), Some("fr"));
}

#[test]
fn when_a_reply_to_a_campaign_message_then_that_campaign_whatever_its_category() {
    let mut r = msg("m1", 10 * H72, text("STOP"));
    r.message.context_message_id = Some("wamid.C1".into());
    let mut replied = sent_ref("wamid.C1", "spring-sale", 0);
    replied.category = SentCategory::Utility;
    let mut given = Given::nothing();
    given.replied_to = Some(replied);
    given.last_marketing = Some(sent_ref("wamid.C2", "newsletter", 10 * H72 - 60));
    let e = &given.when(&r).events[0];
    assert_eq!(e.campaign_id.as_deref(), Some("spring-sale"));
    assert_eq!(e.attribution, Attribution::ReplyContext);
}

#[test]
fn without_context_the_last_marketing_send_in_the_window_is_attributed() {
    let r = msg("m1", 1_000_000, text("STOP"));
    let sent = sent_ref("wamid.C1", "flash", 1_000_000 - 3600);
    let a = attribute(&r, None, Some(&sent), Duration::hours(72));
    assert_eq!(
        (a.campaign_id.as_deref(), a.attribution),
        (Some("flash"), Attribution::Window)
    );
    let mut utility = sent.clone();
    utility.category = SentCategory::Utility;
    let a = attribute(&r, None, Some(&utility), Duration::hours(72));
    assert_eq!(a, Attributed::default());
}

#[test]
fn the_window_boundary_is_inclusive() {
    let r = msg("m1", 1_000_000, text("STOP"));
    let exactly = sent_ref("wamid.C1", "flash", 1_000_000 - H72);
    let a = attribute(&r, None, Some(&exactly), Duration::hours(72));
    assert_eq!(a.attribution, Attribution::Window);
    let a_second_more = sent_ref("wamid.C1", "flash", 1_000_000 - H72 - 1);
    let a = attribute(&r, None, Some(&a_second_more), Duration::hours(72));
    assert_eq!(a, Attributed::default());
    assert_eq!(a.attribution, Attribution::None);
    // A send after the message cannot be what it answers.
    let later = sent_ref("wamid.C1", "flash", 1_000_001);
    let a = attribute(&r, None, Some(&later), Duration::hours(72));
    assert_eq!(a.attribution, Attribution::None);
}

fn record(key: &str, request: Request, at: i64) -> ConsentRecord {
    ConsentRecord {
        origin: RecordOrigin::Api,
        key: key.into(),
        contact: Contact::from_stored("+33612345678".into()),
        request,
        occurred_at: Utc.timestamp_opt(at, 0).unwrap(),
        channel: "web".into(),
        label: Some("web_form".into()),
        proof: Some("Checkbox ticked".into()),
        language: None,
        campaign_id: None,
        line: None,
    }
}

#[test]
fn when_the_business_records_stop_all_then_an_api_event_and_no_reply() {
    let mut given = Given::nothing();
    let stop = record("k1", Request::OptOut { all: true }, 1_000);
    let d = given.when_command(Command::Record {
        tenant: &tenant("acme"),
        record: &stop,
    });
    assert_eq!(d.reply, None);
    let e = &d.events[0];
    assert_eq!(e.event_id, stop.event_id(&tenant("acme")));
    assert_eq!(e.purposes, Purpose::ALL.to_vec());
    assert_eq!(e.source.kind, SourceKind::Api);
    assert_eq!(e.source.message_id, "api:k1");
    assert_eq!(e.source.rule.as_deref(), Some("web_form"));
}

#[test]
fn given_stop_all_when_the_business_records_an_opt_in_then_every_purpose_comes_back() {
    let mut given = Given::nothing();
    given.when(&msg("m1", 1_000, text("STOP ALL")));
    let start = record("k2", Request::OptIn, 2_000);
    let d = given.when_command(Command::Record {
        tenant: &tenant("acme"),
        record: &start,
    });
    assert_eq!(d.events[0].purposes, Purpose::ALL.to_vec());
    assert_eq!(given.consent.marketing.status, Status::OptedIn);
    assert_eq!(given.consent.transactional.status, Status::OptedIn);
}

#[test]
fn given_a_linked_person_when_stop_then_the_event_names_every_identifier_and_start_only_the_active_ones(
) {
    let (old, user_id) = (
        Contact::from_stored("+33611111111".into()),
        Contact::from_stored("FR.1349".into()),
    );
    let mut given = Given::nothing();
    given.linked = Linked {
        all: vec![old.clone(), user_id.clone()],
        active: vec![user_id.clone()],
    };
    let stop = given.when(&msg("wamid.1", 1_000, text("STOP")));
    assert_eq!(stop.events[0].linked, vec![old, user_id.clone()]);
    let start = given.when(&msg("wamid.2", 2_000, text("START")));
    assert_eq!(start.events[0].linked, vec![user_id]);
}

#[test]
fn a_link_event_carries_both_identifiers_its_source_and_no_purpose() {
    let mut r = msg("wamid.9", 1_000, Content::Notice { recurs: true });
    let link = Link {
        contact: Contact::from_stored("+33612345678".into()),
        linked: Contact::from_stored("FR.1349".into()),
        source: LinkSource::Message,
    };
    r.links = vec![link.clone()];
    let now = Utc.timestamp_opt(2_000, 0).unwrap();
    let e = link_event(&r, &link, vec![link.linked.clone()], now);
    assert_eq!(e.event_type, EventType::IdentityLinked);
    assert_eq!(e.contact, link.contact);
    assert_eq!(e.linked_contact, Some(link.linked.clone()));
    assert_eq!(e.link_source, Some(LinkSource::Message));
    assert!(e.purposes.is_empty());
    assert_eq!(e.source.kind, SourceKind::Identity);
    assert_eq!(e.event_id, link_event(&r, &link, Vec::new(), now).event_id);
    let classified = classify(&r.message, &KeywordSet::defaults(&["en"]));
    assert_eq!(outcome_of(&classified.classification), Outcome::NoChange);
}

fn provider_stop(text: &str) -> Content {
    Content::ProviderOptOut {
        word: "STOP".into(),
        text: text.into(),
    }
}

#[test]
fn when_twilio_reports_stop_for_a_text_the_tables_do_not_know_then_an_opt_out_without_our_reply() {
    let mut given = Given::nothing();
    let d = given.when(&msg("SM1", 1_000, provider_stop("Stopp bitte nicht mehr")));
    assert_eq!(d.outcome, Outcome::OptedOut);
    assert_eq!(d.reply, None, "Twilio answered the customer already");
    let e = &d.events[0];
    assert_eq!(e.source.kind, SourceKind::Provider);
    assert_eq!(e.source.keyword.as_deref(), Some("STOP"));
    assert_eq!(e.source.rule.as_deref(), Some("provider_opt_out"));
    assert_eq!(e.source.text.as_deref(), Some("Stopp bitte nicht mehr"));
    assert_eq!(e.purposes, vec![Purpose::Marketing]);
    assert_eq!(given.consent.marketing.status, Status::OptedOut);
}

#[test]
fn when_twilio_reports_stop_for_stop_all_then_every_purpose_and_still_no_reply() {
    let mut given = Given::nothing();
    let d = given.when(&msg("SM2", 1_000, provider_stop("STOP ALL")));
    assert_eq!(d.events[0].purposes, Purpose::ALL.to_vec());
    assert_eq!(d.reply, None);
    assert_eq!(given.consent.transactional.status, Status::OptedOut);
}
