//! JSON Schemas of every record that crosses a process boundary, generated from the Rust types
//! so the files in schemas/ cannot drift from the code (a test compares them).

use schemars::{schema_for, Schema};

use crate::domain::event::ConsentEvent;
use crate::domain::inbound::{
    ConsentWire, EraseWire, NormalizedInbound, SentRecord, WhatsappWebhook,
};
use crate::domain::replies::OutboundMessage;
use crate::pipeline::deadletter::DeadLetter;
use crate::pipeline::Summary;
use crate::proof::export::ProofFile;
use crate::query::StatusRecord;

/// (file name, schema) of every published schema.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("consent-event.v1.json", schema_for!(ConsentEvent)),
        ("inbound-message.v1.json", schema_for!(NormalizedInbound)),
        ("sent-message.v1.json", schema_for!(SentRecord)),
        ("consent-record.v1.json", schema_for!(ConsentWire)),
        ("erase-record.v1.json", schema_for!(EraseWire)),
        ("whatsapp-webhook.v1.json", schema_for!(WhatsappWebhook)),
        ("outbound-message.v1.json", schema_for!(OutboundMessage)),
        ("dead-letter.v1.json", schema_for!(DeadLetter)),
        ("ingest-summary.v1.json", schema_for!(Summary)),
        ("consent-status.v1.json", schema_for!(StatusRecord)),
        ("access-export.v1.json", schema_for!(ProofFile)),
    ]
}

/// The text written to schemas/NAME: pretty JSON with a trailing newline.
pub fn render(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("schemas serialize");
    text.push('\n');
    text
}
