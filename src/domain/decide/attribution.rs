//! Which campaign an inbound message answers. Pure: the commit path looks the candidates up
//! (the sent message the customer replied to, the last marketing send to the contact) and
//! this decides between them, boundary included.

use chrono::Duration;

use super::Resolved;
use crate::domain::analytics::SentRef;
use crate::domain::event::Attribution;
use crate::domain::inbound::SentCategory;

/// The campaign a message answers, and how sure we are of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributed {
    pub campaign_id: Option<String>,
    pub attribution: Attribution,
}

/// Which campaign a message answers, most certain route first: the campaign the record names;
/// the sent message the customer replied to (`context_message_id`), whatever its category,
/// since the customer pointed at it; else the last marketing message sent to the contact no
/// more than `window` before the message (inclusive: exactly `window` before still counts),
/// its time being the bounded one, so a forged time cannot reach a campaign of another day.
pub fn attribute(
    r: &Resolved,
    replied_to: Option<&SentRef>,
    last_marketing: Option<&SentRef>,
    window: Duration,
) -> Attributed {
    if let Some(id) = &r.message.campaign_id {
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
            && s.sent_at <= r.time.at
            && r.time.at - s.sent_at <= window
    }) {
        return Attributed {
            campaign_id: Some(sent.campaign_id.clone()),
            attribution: Attribution::Window,
        };
    }
    Attributed::default()
}
