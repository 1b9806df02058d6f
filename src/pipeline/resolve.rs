//! Resolving what a record names against the config: its tenant (by name or WhatsApp
//! `phone_number_id`) and its contact (normalized with the tenant's region). A record that
//! names an unknown tenant or an unusable contact is rejected with its reason, never guessed.

use chrono::{DateTime, Utc};

use crate::config::Settings;
use crate::domain::analytics::SentRef;
use crate::domain::contact::{self, Contact};
use crate::domain::decide::{Link, Origin, Resolved};
use crate::domain::inbound::{DecodeError, LinkClaim, Message, SentMessage, TenantRef};
use crate::domain::tenant::TenantId;

pub(crate) fn tenant(settings: &Settings, tenant: &TenantRef) -> Result<TenantId, DecodeError> {
    settings
        .resolve_tenant(tenant)
        .map_err(DecodeError::UnknownTenant)
}

pub(crate) fn contact(
    settings: &Settings,
    tenant: &TenantId,
    input: &str,
) -> Result<Contact, DecodeError> {
    let profile = settings.profile(tenant);
    contact::normalize(input, profile.region).map_err(|e| DecodeError::InvalidContact {
        input: contact::mask(input),
        reason: e.to_string(),
    })
}

/// `now` is the batch's recording time: the message's claimed time is held to the tenant's
/// clock bounds against it.
pub(crate) fn message(
    settings: &Settings,
    message: Message,
    origin: &Origin,
    now: DateTime<Utc>,
) -> Result<Resolved, DecodeError> {
    let tenant = tenant(settings, &message.tenant)?;
    let contact = contact(settings, &tenant, &message.from)?;
    let links = message
        .links
        .iter()
        .filter_map(|claim| link(settings, &tenant, claim))
        .collect();
    let time = settings
        .profile(&tenant)
        .clock
        .effective(&message.claimed_at, now);
    Ok(Resolved {
        tenant,
        contact,
        links,
        message,
        origin: origin.clone(),
        time,
    })
}

/// A link whose identifiers do not both normalize is dropped, never the message: the STOP it
/// may carry counts under its sender, and a link is only made from what is certain.
fn link(settings: &Settings, tenant: &TenantId, claim: &LinkClaim) -> Option<Link> {
    let one = contact(settings, tenant, &claim.contact).ok();
    let other = contact(settings, tenant, &claim.linked).ok();
    match (one, other) {
        (Some(one), Some(other)) if one != other => Some(Link {
            contact: one,
            linked: other,
            source: claim.source,
        }),
        (Some(_), Some(_)) => None,
        _ => {
            tracing::warn!(
                tenant = %tenant,
                contact = %contact::mask(&claim.contact),
                linked = %contact::mask(&claim.linked),
                "a link names an identifier that is not a number or a user ID; not linked"
            );
            None
        }
    }
}

pub(crate) fn sent(
    settings: &Settings,
    sent: SentMessage,
) -> Result<(TenantId, SentRef), DecodeError> {
    let tenant = tenant(settings, &sent.tenant)?;
    let contact = contact(settings, &tenant, &sent.to)?;
    Ok((
        tenant,
        SentRef {
            message_id: sent.message_id,
            contact,
            campaign_id: sent.campaign_id,
            category: sent.category,
            sent_at: sent.sent_at,
        },
    ))
}
