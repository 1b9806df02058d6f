//! Given a person's events, when one identifier is asked about, then its consent.

use super::*;
use crate::domain::consent::Status;
use crate::domain::event::tests::sample;
use crate::domain::event::LinkSource;

const NUMBER: &str = "+33612345678";
const USER_ID: &str = "FR.13491208655302741918";
const NEW_NUMBER: &str = "+33698765432";
const NEW_USER_ID: &str = "FR.99991208655302741918";

fn c(id: &str) -> Contact {
    Contact::from_stored(id.to_string())
}

fn consent(event_type: EventType, contact: &str, at: i64, seq: u64) -> ConsentEvent {
    let mut e = sample(event_type, at, seq);
    e.contact = c(contact);
    e
}

fn link(contact: &str, linked: &str, source: LinkSource, at: i64, seq: u64) -> ConsentEvent {
    let mut e = sample(EventType::IdentityLinked, at, seq);
    e.contact = c(contact);
    e.linked_contact = Some(c(linked));
    e.link_source = Some(source);
    e.purposes = Vec::new();
    e
}

fn marketing(asked: &str, events: &[ConsentEvent]) -> Status {
    let asked = c(asked);
    Person::new(&asked, events).consent().marketing.status
}

#[test]
fn given_a_link_when_a_stop_comes_under_the_user_id_then_the_number_is_opted_out_too() {
    let events = [
        link(NUMBER, USER_ID, LinkSource::Message, 1_000, 1),
        consent(EventType::OptedOut, USER_ID, 2_000, 2),
    ];
    assert_eq!(marketing(NUMBER, &events), Status::OptedOut);
    assert_eq!(marketing(USER_ID, &events), Status::OptedOut);
}

#[test]
fn given_a_stop_under_one_identifier_when_a_later_start_comes_under_the_other_then_both_are_in() {
    let events = [
        consent(EventType::OptedOut, USER_ID, 2_000, 1),
        link(NUMBER, USER_ID, LinkSource::Message, 3_000, 2),
        consent(EventType::OptedIn, NUMBER, 4_000, 3),
    ];
    assert_eq!(marketing(NUMBER, &events), Status::OptedIn);
    assert_eq!(marketing(USER_ID, &events), Status::OptedIn);
}

#[test]
fn given_a_late_older_stop_under_the_other_identifier_then_the_newer_start_still_holds() {
    let events = [
        link(NUMBER, USER_ID, LinkSource::Message, 1_000, 1),
        consent(EventType::OptedIn, NUMBER, 4_000, 2),
        consent(EventType::OptedOut, USER_ID, 3_000, 3),
    ];
    assert_eq!(marketing(USER_ID, &events), Status::OptedIn);
}

#[test]
fn given_a_stop_and_a_start_at_the_same_time_under_two_identifiers_then_the_stop_wins() {
    for (stop_seq, start_seq) in [(2, 3), (3, 2)] {
        let events = [
            link(NUMBER, USER_ID, LinkSource::Message, 1_000, 1),
            consent(EventType::OptedOut, USER_ID, 5_000, stop_seq),
            consent(EventType::OptedIn, NUMBER, 5_000, start_seq),
        ];
        assert_eq!(marketing(NUMBER, &events), Status::OptedOut);
        assert_eq!(marketing(USER_ID, &events), Status::OptedOut);
    }
}

#[test]
fn given_no_links_then_the_person_is_the_identifier_alone() {
    let events = [consent(EventType::OptedOut, NUMBER, 1_000, 1)];
    let asked = c(NUMBER);
    let person = Person::new(&asked, &events);
    assert!(person.others().is_empty());
    assert_eq!(person.retired_at(), None);
    assert_eq!(person.consent().marketing.status, Status::OptedOut);
}

fn number_change() -> Vec<ConsentEvent> {
    vec![
        link(NUMBER, USER_ID, LinkSource::Message, 1_000, 1),
        link(NUMBER, NEW_NUMBER, LinkSource::NumberChange, 5_000, 2),
        link(USER_ID, NEW_USER_ID, LinkSource::UserIdChange, 5_000, 3),
        link(NEW_NUMBER, NEW_USER_ID, LinkSource::Message, 5_000, 4),
    ]
}

#[test]
fn given_a_number_change_then_the_old_identifiers_are_suppressed_and_the_new_ones_are_not() {
    let events = number_change();
    assert_eq!(marketing(NUMBER, &events), Status::OptedOut);
    assert_eq!(marketing(USER_ID, &events), Status::OptedOut);
    assert_eq!(marketing(NEW_NUMBER, &events), Status::Unknown);
    assert_eq!(marketing(NEW_USER_ID, &events), Status::Unknown);
    let old = c(NUMBER);
    let person = Person::new(&old, &events);
    assert_eq!(person.retired_at().map(|t| t.timestamp()), Some(5_000));
    assert_eq!(
        person.consent().marketing.event_id,
        Some(events[1].event_id),
        "the proof of the suppression is the change event"
    );
}

#[test]
fn given_a_number_change_when_the_new_number_starts_then_the_old_one_stays_suppressed() {
    let mut events = number_change();
    events.push(consent(EventType::OptedIn, NEW_NUMBER, 6_000, 5));
    assert_eq!(marketing(NEW_NUMBER, &events), Status::OptedIn);
    assert_eq!(marketing(NEW_USER_ID, &events), Status::OptedIn);
    assert_eq!(marketing(NUMBER, &events), Status::OptedOut);
    let asked = c(NEW_NUMBER);
    let person = Person::new(&asked, &events);
    assert_eq!(
        person.applies_to(EventType::OptedIn),
        vec![c(NEW_USER_ID)],
        "an opt-in does not reach the retired identifiers"
    );
    assert_eq!(person.applies_to(EventType::OptedOut).len(), 3);
}

#[test]
fn given_a_number_change_when_the_old_number_itself_starts_then_it_is_opted_in() {
    let mut events = number_change();
    events.push(consent(EventType::OptedIn, NUMBER, 7_000, 5));
    assert_eq!(marketing(NUMBER, &events), Status::OptedIn);
}

#[test]
fn given_a_number_change_when_the_old_number_starts_then_the_new_number_is_not_restarted() {
    let mut events = number_change();
    events.push(consent(EventType::OptedOut, NEW_NUMBER, 6_000, 5));
    events.push(consent(EventType::OptedIn, NUMBER, 7_000, 6));
    assert_eq!(marketing(NEW_NUMBER, &events), Status::OptedOut);
    assert_eq!(marketing(NEW_USER_ID, &events), Status::OptedOut);
}

#[test]
fn given_a_number_change_when_the_old_number_stops_then_the_new_number_stops_too() {
    let mut events = number_change();
    events.push(consent(EventType::OptedOut, NUMBER, 7_000, 5));
    assert_eq!(marketing(NEW_NUMBER, &events), Status::OptedOut);
}

#[test]
fn given_an_opt_in_before_the_change_then_it_still_counts_for_the_new_identifiers() {
    let mut events = vec![consent(EventType::OptedIn, NUMBER, 500, 9)];
    events.extend(number_change());
    assert_eq!(marketing(NEW_NUMBER, &events), Status::OptedIn);
    assert_eq!(marketing(NUMBER, &events), Status::OptedOut);
}
