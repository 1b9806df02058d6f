//! Who a WhatsApp record says the sender is. Since 2026 Meta identifies a user by phone number,
//! by business-scoped user ID (BSUID), or both, and changes the BSUID with the number. This
//! reads every place a record names two identifiers of its sender, and only those (a vCard the
//! customer forwards is somebody else's card): `from` with `from_user_id`, a `contacts[]` entry
//! with `wa_id` and `user_id`, a BSUID with its parent BSUID, a `system` change notice, and a
//! `contacts` message sent through a `REQUEST_CONTACT_INFO` button.

use schemars::JsonSchema;
use serde::Deserialize;

use super::LinkClaim;
use crate::domain::event::LinkSource;

/// An entry of a webhook's `contacts` array: the sender's profile and identifiers.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct WaProfile {
    #[serde(default)]
    pub wa_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub parent_user_id: Option<String>,
}

/// The `system` object of a change notice. `wa_id` is the new number (`new_wa_id` in older
/// API versions, sometimes a number); the BSUID fields arrived in 2026.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct WaSystem {
    #[serde(rename = "type", default)]
    pub system_type: Option<String>,
    #[serde(default)]
    pub wa_id: Option<String>,
    #[serde(default)]
    pub new_wa_id: Option<serde_json::Value>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub parent_user_id: Option<String>,
    #[serde(default)]
    pub previous_user_id: Option<String>,
    #[serde(default)]
    pub previous_parent_user_id: Option<String>,
}

/// One card of a `contacts` message.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct WaSharedContact {
    /// `contact_request` when the customer answered a `REQUEST_CONTACT_INFO` button with
    /// their own number; `other` for a card they forwarded.
    #[serde(default)]
    pub origin: Option<String>,
    #[serde(default)]
    pub phones: Vec<WaPhone>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct WaPhone {
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub wa_id: Option<String>,
}

/// A sender's identifiers as one message gives them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sender<'a> {
    pub number: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub parent_user_id: Option<&'a str>,
}

impl<'a> Sender<'a> {
    pub fn new(number: Option<&'a str>, user_id: Option<&'a str>, parent: Option<&'a str>) -> Self {
        Sender {
            number: present(number),
            user_id: present(user_id),
            parent_user_id: present(parent),
        }
    }
}

fn present(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// WhatsApp numbers are international digits without the '+': marking them here keeps a
/// tenant's region from reading them as national numbers.
pub fn wa_number(digits: &str) -> String {
    let digits = digits.trim();
    if digits.starts_with('+') {
        digits.to_string()
    } else {
        format!("+{digits}")
    }
}

/// Adds the link `contact` – `linked` unless one side is missing or both are the same.
fn push(
    out: &mut Vec<LinkClaim>,
    contact: Option<String>,
    linked: Option<String>,
    source: LinkSource,
) {
    if let (Some(contact), Some(linked)) = (contact, linked) {
        if contact != linked && !out.iter().any(|l| same_pair(l, &contact, &linked)) {
            out.push(LinkClaim {
                contact,
                linked,
                source,
            });
        }
    }
}

fn same_pair(l: &LinkClaim, a: &str, b: &str) -> bool {
    (l.contact == a && l.linked == b) || (l.contact == b && l.linked == a)
}

/// The links an ordinary message makes: its number with its BSUID, its BSUID with the parent
/// BSUID, and the same from the webhook's `contacts[]` profiles.
pub fn message_links(sender: Sender<'_>, profiles: &[WaProfile]) -> Vec<LinkClaim> {
    let mut out = Vec::new();
    let number = sender.number.map(wa_number);
    let user_id = sender.user_id.map(str::to_string);
    push(
        &mut out,
        number.clone(),
        user_id.clone(),
        LinkSource::Message,
    );
    push(
        &mut out,
        user_id.clone(),
        sender.parent_user_id.map(str::to_string),
        LinkSource::Message,
    );
    // A profile describes one sender, so the identifiers it names together are that person's,
    // whichever message of the webhook it came with.
    for p in profiles {
        let p_number = present(p.wa_id.as_deref()).map(wa_number);
        let p_user = present(p.user_id.as_deref()).map(str::to_string);
        push(&mut out, p_number, p_user.clone(), LinkSource::Message);
        push(
            &mut out,
            p_user,
            present(p.parent_user_id.as_deref()).map(str::to_string),
            LinkSource::Message,
        );
    }
    out
}

/// The links of a `system` change notice: each old identifier to its new one (retiring the
/// old) first, then the old ones together and the new ones together. Empty for notices of other types
/// and for a notice that names no pair.
pub fn change_links(sender: Sender<'_>, system: &WaSystem) -> Vec<LinkClaim> {
    let kind = system.system_type.as_deref().unwrap_or_default();
    let number_change = matches!(kind, "user_changed_number" | "customer_changed_number");
    if !number_change && kind != "user_changed_user_id" {
        return Vec::new();
    }
    let new_user = present(system.user_id.as_deref()).map(str::to_string);
    // Where Meta gives no previous_user_id, a sender BSUID other than the new one is the old.
    let old_user = present(system.previous_user_id.as_deref())
        .or(sender.user_id.filter(|id| Some(*id) != new_user.as_deref()))
        .map(str::to_string);
    let mut out = Vec::new();
    if number_change {
        let new_number = present(system.wa_id.as_deref())
            .map(str::to_string)
            .or_else(|| match &system.new_wa_id {
                Some(serde_json::Value::String(s)) => present(Some(s)).map(str::to_string),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .map(|n| wa_number(&n));
        let old_number = sender.number.map(wa_number);
        // The links that tie each number to its user ID come first, so that the change links
        // after them already see the person's user IDs in the same batch: their events are
        // then keyed by user ID on consent.events whatever other partitions have committed.
        push(
            &mut out,
            old_number.clone(),
            old_user.clone(),
            LinkSource::Message,
        );
        push(
            &mut out,
            new_number.clone(),
            new_user.clone(),
            LinkSource::Message,
        );
        push(
            &mut out,
            old_user.clone(),
            new_user.clone(),
            LinkSource::UserIdChange,
        );
        push(&mut out, old_number, new_number, LinkSource::NumberChange);
    }
    push(
        &mut out,
        old_user,
        new_user.clone(),
        LinkSource::UserIdChange,
    );
    push(
        &mut out,
        present(system.previous_parent_user_id.as_deref()).map(str::to_string),
        present(system.parent_user_id.as_deref()).map(str::to_string),
        LinkSource::UserIdChange,
    );
    push(
        &mut out,
        new_user,
        present(system.parent_user_id.as_deref()).map(str::to_string),
        LinkSource::Message,
    );
    out
}

/// The links of a `contacts` message: the sender's own number, shared through a
/// `REQUEST_CONTACT_INFO` button. A card with any other origin links nothing.
pub fn contact_request_links(sender: Sender<'_>, cards: &[WaSharedContact]) -> Vec<LinkClaim> {
    let me = sender
        .user_id
        .map(str::to_string)
        .or(sender.number.map(wa_number));
    let mut out = Vec::new();
    for card in cards {
        if card.origin.as_deref() != Some("contact_request") {
            continue;
        }
        for phone in &card.phones {
            let number = present(phone.wa_id.as_deref())
                .map(wa_number)
                .or_else(|| present(phone.phone.as_deref()).map(str::to_string));
            push(&mut out, me.clone(), number, LinkSource::ContactRequest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(links: &[LinkClaim]) -> Vec<(String, String, LinkSource)> {
        links
            .iter()
            .map(|l| (l.contact.clone(), l.linked.clone(), l.source))
            .collect()
    }

    #[test]
    fn a_message_with_a_number_and_a_user_id_links_them_once() {
        let sender = Sender::new(Some("33612345678"), Some("FR.1349"), None);
        let profile = WaProfile {
            wa_id: Some("33612345678".into()),
            user_id: Some("FR.1349".into()),
            parent_user_id: Some("FR.ENT.77".into()),
        };
        assert_eq!(
            pairs(&message_links(sender, &[profile])),
            vec![
                ("+33612345678".into(), "FR.1349".into(), LinkSource::Message),
                ("FR.1349".into(), "FR.ENT.77".into(), LinkSource::Message),
            ]
        );
        assert!(message_links(Sender::new(None, Some("FR.1349"), None), &[]).is_empty());
    }

    #[test]
    fn a_number_change_retires_the_old_number_and_the_old_user_id() {
        let sender = Sender::new(Some("16505551234"), None, None);
        let system = WaSystem {
            system_type: Some("user_changed_number".into()),
            wa_id: Some("12195555358".into()),
            user_id: Some("US.2".into()),
            previous_user_id: Some("US.1".into()),
            ..WaSystem::default()
        };
        assert_eq!(
            pairs(&change_links(sender, &system)),
            vec![
                ("+16505551234".into(), "US.1".into(), LinkSource::Message),
                ("+12195555358".into(), "US.2".into(), LinkSource::Message),
                ("US.1".into(), "US.2".into(), LinkSource::UserIdChange),
                (
                    "+16505551234".into(),
                    "+12195555358".into(),
                    LinkSource::NumberChange
                ),
            ]
        );
    }

    #[test]
    fn a_user_id_change_without_a_number_links_the_two_user_ids() {
        let sender = Sender::new(None, Some("US.2"), None);
        let system = WaSystem {
            system_type: Some("user_changed_user_id".into()),
            user_id: Some("US.2".into()),
            previous_user_id: Some("US.1".into()),
            ..WaSystem::default()
        };
        assert_eq!(
            pairs(&change_links(sender, &system)),
            vec![("US.1".into(), "US.2".into(), LinkSource::UserIdChange)]
        );
        let other = WaSystem {
            system_type: Some("customer_identity_changed".into()),
            ..WaSystem::default()
        };
        assert!(change_links(sender, &other).is_empty());
    }

    #[test]
    fn only_a_card_shared_on_request_links_the_sender() {
        let sender = Sender::new(None, Some("US.1349"), None);
        let card = |origin: &str| WaSharedContact {
            origin: Some(origin.into()),
            phones: vec![WaPhone {
                phone: Some("+1 650-555-1234".into()),
                wa_id: Some("16505551234".into()),
            }],
        };
        assert_eq!(
            pairs(&contact_request_links(sender, &[card("contact_request")])),
            vec![(
                "US.1349".into(),
                "+16505551234".into(),
                LinkSource::ContactRequest
            )]
        );
        assert!(contact_request_links(sender, &[card("other")]).is_empty());
    }
}
