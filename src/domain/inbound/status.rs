//! WhatsApp delivery statuses (`value.statuses[]`) of messages the business sent. They carry no
//! consent; a billed one tells campaign analytics that a send was delivered or read.
//!
//! A status is read as loose JSON, field by field, because Meta keeps adding fields and
//! changing who the recipient is: `recipient_id` (a number or a group), and since 2026
//! `recipient_user_id` alone for users known by a business-scoped user ID, with the parent
//! spelled `recipient_parent_user_id` (older SDKs: `parent_recipient_user_id`). A delivery is
//! counted against the message id, so none of the recipient fields is needed: a status that
//! names its recipient any of these ways, or not at all, counts the same.

use serde_json::Value;

use super::{invalid, unix_seconds, DecodeError, DeliveryState, DeliveryStatus, Item, TenantRef};

/// A status with a billing category is a business-initiated message Meta counted; one without
/// (a reply inside a customer-service window, a v24 `read` whose pricing came with its
/// `delivered`) says nothing about a campaign and is ignored, as are states such as `played`.
pub(super) fn wa_status(tenant: &TenantRef, status: &Value) -> Result<Item, DecodeError> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let category = text(status.pointer("/pricing/category"))
        .or_else(|| text(status.pointer("/conversation/origin/type")));
    let Some(category) = category else {
        return Ok(Item::Ignored("status"));
    };
    let state = match status.get("status").and_then(Value::as_str) {
        Some("sent") => DeliveryState::Sent,
        Some("delivered") => DeliveryState::Delivered,
        Some("read") => DeliveryState::Read,
        Some("failed") => DeliveryState::Failed,
        _ => return Ok(Item::Ignored("status")),
    };
    let message_id = text(status.get("id"))
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| invalid("WhatsApp status", "missing id".into()))?;
    let at = match status.get("timestamp") {
        Some(Value::String(s)) => unix_seconds(s)?,
        Some(Value::Number(n)) => unix_seconds(&n.to_string())?,
        other => {
            return Err(DecodeError::InvalidTimestamp(
                other.map(|v| v.to_string()).unwrap_or_default(),
            ))
        }
    };
    Ok(Item::Status(DeliveryStatus {
        tenant: tenant.clone(),
        message_id,
        state,
        at,
        category,
        path: None,
    }))
}
