//! Resolving what a record names against the config: its tenant (by name or WhatsApp
//! `phone_number_id`) and its contact (normalized with the tenant's region). A record that
//! names an unknown tenant or an unusable contact is rejected with its reason, never guessed.

use chrono::{DateTime, Utc};

use crate::config::Settings;
use crate::domain::analytics::SentRef;
use crate::domain::contact::{self, Contact};
use crate::domain::decide::{Origin, Resolved};
use crate::domain::inbound::{DecodeError, Message, SentMessage, TenantRef};
use crate::domain::tenant::TenantId;

pub(crate) fn tenant(settings: &Settings, tenant: &TenantRef) -> Result<TenantId, DecodeError> {
    settings
        .resolve_tenant(tenant)
        .map_err(DecodeError::UnknownTenant)
}

fn contact(settings: &Settings, tenant: &TenantId, input: &str) -> Result<Contact, DecodeError> {
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
    let time = settings
        .profile(&tenant)
        .clock
        .effective(&message.claimed_at, now);
    Ok(Resolved {
        tenant,
        contact,
        message,
        origin: origin.clone(),
        time,
    })
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
