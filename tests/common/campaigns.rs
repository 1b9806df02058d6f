//! A generated campaign history: what a tenant sends over a month and how people react, for
//! the attribution, stats and HTML report tests.

use super::{wa_button, wa_text, PHONE_NUMBER_ID};

/// One campaign: id, day offset from the first send, sends, STOPs among its recipients.
pub struct Campaign {
    pub id: &'static str,
    pub day: i64,
    pub sent: u64,
    pub stops: u64,
}

/// Four ordinary weekly campaigns around 1%, one flash sale at 6% that must be flagged, and a
/// 30-recipient test send at 10% that must not be (too few sends to mean anything).
pub const HISTORY: [Campaign; 6] = [
    Campaign {
        id: "weekly-1",
        day: 0,
        sent: 400,
        stops: 4,
    },
    Campaign {
        id: "weekly-2",
        day: 7,
        sent: 450,
        stops: 4,
    },
    Campaign {
        id: "weekly-3",
        day: 14,
        sent: 420,
        stops: 5,
    },
    Campaign {
        id: "flash-sale",
        day: 15,
        sent: 400,
        stops: 24,
    },
    Campaign {
        id: "weekly-4",
        day: 21,
        sent: 380,
        stops: 3,
    },
    Campaign {
        id: "vip-test",
        day: 22,
        sent: 30,
        stops: 3,
    },
];

/// 2026-11-02T09:00:00Z.
pub const T0: i64 = 1_793_610_000;

pub fn sent(
    tenant: &str,
    message_id: &str,
    to: &str,
    campaign: &str,
    category: &str,
    at: i64,
) -> String {
    serde_json::json!({"type": "sent", "tenant": tenant, "message_id": message_id, "to": to,
        "campaign_id": campaign, "category": category,
        "sent_at": chrono::DateTime::from_timestamp(at, 0).unwrap().to_rfc3339()})
    .to_string()
}

pub fn wa_status(message_id: &str, status: &str, ts: i64, to: &str) -> String {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "33180884200", "phone_number_id": PHONE_NUMBER_ID},
            "statuses": [{"id": message_id, "status": status, "timestamp": ts.to_string(), "recipient_id": to,
                          "conversation": {"id": "conv", "origin": {"type": "marketing"}},
                          "pricing": {"billable": true, "pricing_model": "CBP", "category": "marketing"}}]
        }}]}]
    })
    .to_string()
}

/// The whole history as JSON lines for tenant `PHONE_NUMBER_ID` (webhooks map to it by
/// default). Each campaign goes to its own block of contacts; half the STOPs are typed (window
/// attribution), half are the template's quick reply (reply context); every tenth recipient
/// asks for help; 90% of sends get a `delivered` status.
pub fn history() -> String {
    history_for(PHONE_NUMBER_ID)
}

/// The same, with sent records for `tenant`: the tenant the config maps the webhooks'
/// `phone_number_id` to.
pub fn history_for(tenant: &str) -> String {
    let mut lines = Vec::new();
    for (c, campaign) in HISTORY.iter().enumerate() {
        let at = T0 + campaign.day * 86_400;
        for i in 0..campaign.sent {
            let to = format!("3367{c:02}{i:05}");
            let id = format!("wamid.{}-{i}", campaign.id);
            lines.push(sent(
                tenant,
                &id,
                &format!("+{to}"),
                campaign.id,
                "marketing",
                at + i as i64,
            ));
            if i % 10 != 9 {
                lines.push(wa_status(&id, "delivered", at + i as i64 + 5, &to));
            }
            let reply_at = at + 3_600 + i as i64;
            if i < campaign.stops {
                lines.push(if i % 2 == 0 {
                    wa_text(
                        &to,
                        &format!("wamid.in-{}-{i}", campaign.id),
                        reply_at,
                        "STOP",
                    )
                } else {
                    wa_button(
                        &to,
                        &format!("wamid.in-{}-{i}", campaign.id),
                        reply_at,
                        "STOP",
                        "Se désabonner",
                        &id,
                    )
                });
            } else if i % 10 == 5 {
                lines.push(wa_text(
                    &to,
                    &format!("wamid.in-{}-{i}", campaign.id),
                    reply_at,
                    "AIDE",
                ));
            }
        }
    }
    lines.join("\n") + "\n"
}
