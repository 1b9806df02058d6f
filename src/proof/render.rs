//! The forms of an access export a support agent sends to the person who asked: plain text
//! and a self-contained HTML page. Only the JSON form is verifiable; these say so and name the
//! key that signed it.

use std::fmt::Write as _;

use super::export::{to_bytes, ProofFile};
use super::fingerprint;
use crate::domain::event::{ConsentEvent, EventType};

/// The forms an access export is written in; only `Json` is verifiable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Json,
    Html,
    Text,
}

impl Form {
    /// `json`, `html` or `text`; the error says which are.
    pub fn parse(name: &str) -> Result<Form, String> {
        match name {
            "json" => Ok(Form::Json),
            "html" => Ok(Form::Html),
            "text" => Ok(Form::Text),
            other => Err(format!(
                "format={other}: an access export is json, html or text"
            )),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Form::Json => "application/json",
            Form::Html => "text/html; charset=utf-8",
            Form::Text => "text/plain; charset=utf-8",
        }
    }

    /// The file in this form.
    pub fn bytes(self, file: &ProofFile) -> Vec<u8> {
        match self {
            Form::Json => to_bytes(file),
            Form::Html => html(file).into_bytes(),
            Form::Text => text(file).into_bytes(),
        }
    }
}

fn what(e: &ConsentEvent) -> String {
    match e.event_type {
        EventType::IdentityLinked => format!(
            "{} and {} recorded as the same person ({})",
            e.contact,
            e.linked_contact.as_ref().map(|c| c.as_str()).unwrap_or("?"),
            e.link_source
                .map(|s| serde_json::to_value(s)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("")
                    .to_string())
                .unwrap_or_default()
        ),
        EventType::Erased => format!(
            "{} erased at the business's request ({})",
            std::iter::once(&e.contact)
                .chain(&e.linked)
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            e.erasure
                .as_ref()
                .map(|r| format!("{}: {}", r.requested_by, r.reason))
                .unwrap_or_default()
        ),
        t => {
            let purposes: Vec<&str> = e.purposes.iter().map(|p| p.as_str()).collect();
            let verb = if t == EventType::OptedOut {
                "withdrew consent"
            } else {
                "gave consent"
            };
            format!("{} {verb} to {}", e.contact, purposes.join(" and "))
        }
    }
}

fn source(e: &ConsentEvent) -> String {
    let mut parts = vec![format!(
        "source: {}",
        serde_json::to_value(e.source.kind)
            .unwrap_or_default()
            .as_str()
            .unwrap_or("")
    )];
    if let Some(text) = &e.source.text {
        parts.push(format!("message: {text:?}"));
    }
    if let Some(k) = &e.source.keyword {
        parts.push(format!("keyword: {k}"));
    }
    parts.push(format!("message id: {}", e.source.message_id));
    if let Some(c) = &e.campaign_id {
        parts.push(format!("campaign: {c}"));
    }
    parts.join(", ")
}

/// The export as plain text.
pub fn text(file: &ProofFile) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Consent history of {} ({})", file.contact, file.tenant);
    let _ = writeln!(
        out,
        "Identifiers of this person: {}",
        file.identifiers.join(", ")
    );
    let _ = writeln!(out, "Generated at {}", file.generated_at.to_rfc3339());
    let _ = writeln!(out);
    for e in file.readable() {
        let _ = writeln!(out, "{}  {}", e.occurred_at.to_rfc3339(), what(e));
        let _ = writeln!(out, "    {}", source(e));
        let _ = writeln!(
            out,
            "    recorded {}, event {}, hash {}",
            e.recorded_at.to_rfc3339(),
            e.event_id,
            e.hash
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Every event above is part of a hash chain signed with the key {} (fingerprint {}).\nThe JSON form of this export can be checked with `consent-ledger verify-export` or scripts/verify_export.py.",
        file.public_key,
        fingerprint(&file.public_key)
    );
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The export as a self-contained HTML page (no script, no external resource).
pub fn html(file: &ProofFile) -> String {
    let mut rows = String::new();
    for e in file.readable() {
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&e.occurred_at.to_rfc3339()),
            esc(&what(e)),
            esc(&source(e)),
            esc(&e.hash)
        );
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Consent history of {contact}</title>\n\
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:70em}}td,th{{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top}}table{{border-collapse:collapse}}code{{font-size:11px;word-break:break-all}}</style></head>\n\
<body><h1>Consent history of {contact}</h1>\n<p>Tenant {tenant}. Identifiers of this person: {ids}. Generated at {at}.</p>\n\
<table><thead><tr><th>When</th><th>What</th><th>How</th><th>Hash</th></tr></thead><tbody>\n{rows}</tbody></table>\n\
<p>Every event above is part of a hash chain signed with the key <code>{key}</code> (fingerprint {fp}). The JSON form of this export can be checked with <code>consent-ledger verify-export</code> or <code>scripts/verify_export.py</code>.</p>\n</body></html>\n",
        contact = esc(&file.contact),
        tenant = esc(file.tenant.as_str()),
        ids = esc(&file.identifiers.join(", ")),
        at = esc(&file.generated_at.to_rfc3339()),
        key = esc(&file.public_key),
        fp = fingerprint(&file.public_key),
    )
}
