//! The campaign audience filter: which of these contacts may receive a message of this purpose
//! now. Campaigns send whole audiences (a million numbers is ordinary), so the answer is
//! streamed as it is computed from a blocking thread: a JSON request body is held once and
//! walked in place, an NDJSON body is read line by line, and neither answer is built in memory
//! before it is sent. Only the excluded and invalid lists of a JSON answer wait in a buffer,
//! because the JSON shape puts them after `allowed`.
//!
//! Each contact goes through [`query::check_one`], like the CLI's `check`. A contact given
//! twice (in any spelling) is answered once; later copies are counted as duplicates.

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Access, Caller};
use super::consent::PurposeParam;
use super::problem::{Path, Problem, Query};
use super::stream::{self, is_too_large, BodyReader, ChunkWriter, StreamError};
use super::AppState;
use crate::config::TenantProfile;
use crate::domain::event::Purpose;
use crate::ledger::Ledger;
use crate::query::{self, Checked};

pub const NDJSON: &str = "application/x-ndjson";

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckQuery {
    /// Purpose for NDJSON requests (a JSON body says it in `purpose`); default `marketing`.
    #[param(inline)]
    pub purpose: Option<PurposeParam>,
}

/// A JSON check request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Default `marketing`.
    pub purpose: Option<PurposeParam>,
    /// Phone numbers in any spelling the CLI accepts. Numbers given as JSON numbers are read
    /// as their digits; other values are reported as invalid items.
    #[schema(value_type = Vec<String>)]
    pub contacts: Counted,
}

/// The JSON answer. Streamed: `allowed` first, then `excluded`, `invalid` and `counts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    pub purpose: PurposeParam,
    /// Contacts that may be sent to, E.164, in request order, each once.
    pub allowed: Vec<String>,
    pub excluded: Vec<Excluded>,
    pub invalid: Vec<Invalid>,
    pub counts: Counts,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Excluded {
    /// E.164.
    pub contact: String,
    /// `opted_out`, `no_opt_in`, `revoked_all` or
    /// `marketing_opted_out_and_tenant_blocks_transactional`.
    pub reason: String,
    /// Since when (the customer's message time), when known.
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Invalid {
    /// Position in `contacts` (from 0), or line of the NDJSON body (from 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The item as given.
    pub input: String,
    pub reason: String,
}

#[derive(Debug, Default, Clone, Copy, Serialize, ToSchema)]
pub struct Counts {
    /// Items read (blank NDJSON lines excluded).
    pub checked: u64,
    pub allowed: u64,
    pub excluded: u64,
    pub invalid: u64,
    /// Items that repeat an earlier contact, in any spelling; answered once.
    pub duplicates: u64,
}

/// One line of an NDJSON answer, in request order; the last line has `outcome: "summary"`
/// and the counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckLine {
    /// `allowed`, `excluded`, `invalid`, `duplicate`, `summary`, or `error` (the body was cut
    /// short: too large or unreadable; `detail` says why).
    pub outcome: String,
    /// Line of the request body (from 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// E.164 (allowed, excluded, duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// The line as given (invalid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
}

/// The campaign audience filter.
///
/// Send `application/json` (`{"purpose": "marketing", "contacts": [...]}`) for a JSON answer,
/// or `application/x-ndjson` (one contact per line: a JSON string, `{"contact": "..."}`, or
/// the bare number; purpose in the query) for an NDJSON answer streamed line by line as the
/// body is read. `Accept` may ask for the other answer format. Invalid contacts are reported
/// per item; the request as a whole still succeeds. At least 1,000,000 contacts per request.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/consent/check", tag = "consent",
    params(("tenant" = String, Path, description = "Tenant id"), CheckQuery),
    request_body(content(
        (CheckRequest = "application/json"),
        (String = "application/x-ndjson", example = "\"+33612345678\"\n{\"contact\":\"06 12 34 56 78\"}\n+14155552671\n"),
    )),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The audience, filtered", content(
            (CheckResponse = "application/json"),
            (CheckLine = "application/x-ndjson"),
        )),
        (status = 400, description = "Malformed body or query", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "Token of another tenant", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "Body over `api.max_body_bytes`", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor NDJSON", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn check(
    caller: Caller,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<CheckQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    caller.allow(&tenant, Access::Read)?;
    let limit = state.settings.api_max_body_bytes();
    let ndjson_in = match media_type(&headers, header::CONTENT_TYPE).as_deref() {
        Some("application/json") | None => false,
        Some(NDJSON) | Some("application/jsonl") | Some("text/plain") => true,
        Some(other) => {
            return Err(Problem::unsupported_media_type(format!(
                "send the contacts as application/json or {NDJSON}, not {other}"
            )))
        }
    };
    let ndjson_out = match media_type(&headers, header::ACCEPT).as_deref() {
        Some(NDJSON) => true,
        Some("application/json") => false,
        _ => ndjson_in,
    };
    let mut checker = Checker {
        state: state.clone(),
        profile: state.settings.profile(&tenant),
        tenant,
        purpose: q.purpose.unwrap_or_default(),
        seen: HashSet::new(),
        counts: Counts::default(),
        reported: 0,
        failure: None,
    };
    if ndjson_in {
        stream::check_declared_length(&headers, limit)?;
        let reader = BodyReader::spawn(body, limit);
        let content_type = if ndjson_out {
            NDJSON
        } else {
            "application/json"
        };
        return Ok(stream::blocking_response(
            content_type,
            HeaderMap::new(),
            move |w| {
                let mut out = Output::new(ndjson_out, checker.purpose, w)?;
                checker.ndjson(BufReader::with_capacity(64 * 1024, reader), &mut out)?;
                checker.report();
                out.finish(checker.counts)
            },
        ));
    }
    let bytes = stream::read_body(&headers, body, limit).await?;
    // First pass: the whole body is valid before the 200 goes out, so a typo still gets a
    // proper 400; it only counts the contacts, nothing is kept.
    let (bytes, envelope) = tokio::task::spawn_blocking(move || {
        let envelope = serde_json::from_slice::<CheckRequest>(&bytes);
        (bytes, envelope)
    })
    .await
    .map_err(|e| Problem::internal(&e))?;
    let envelope = envelope.map_err(|e| {
        Problem::bad_request(
            "invalid-body",
            "Invalid body",
            format!("the body is not a check request ({{\"purpose\", \"contacts\": [...]}}): {e}"),
        )
    })?;
    if let Some(p) = envelope.purpose {
        checker.purpose = p;
    }
    tracing::debug!(contacts = envelope.contacts.0, "checking an audience");
    let content_type = if ndjson_out {
        NDJSON
    } else {
        "application/json"
    };
    Ok(stream::blocking_response(
        content_type,
        HeaderMap::new(),
        move |w| {
            let mut out = Output::new(ndjson_out, checker.purpose, w)?;
            let mut de = serde_json::Deserializer::from_slice(&bytes);
            let walked = de.deserialize_map(EnvelopeWalk {
                checker: &mut checker,
                out: &mut out,
            });
            checker.report();
            match (walked, checker.failure.take()) {
                (_, Some(e)) => Err(e),
                (Err(e), None) => Err(std::io::Error::other(e).into()),
                (Ok(()), None) => out.finish(checker.counts),
            }
        },
    ))
}

/// The media type of a header, lower-case and without parameters (`; charset=utf-8`).
pub fn media_type(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?;
    let first = v.split(',').next()?;
    Some(first.split(';').next()?.trim().to_ascii_lowercase())
}

struct Checker {
    state: AppState,
    tenant: String,
    profile: Arc<TenantProfile>,
    purpose: PurposeParam,
    /// E.164 digits of the contacts answered so far: 8 bytes a contact, so a million-contact
    /// audience costs a few megabytes.
    seen: HashSet<u64>,
    counts: Counts,
    /// Contacts already added to the metrics.
    reported: u64,
    /// Why a walk of the JSON body stopped, when it was not the JSON.
    failure: Option<StreamError>,
}

/// Where one item's answer goes.
enum Position {
    Index(u64),
    Line(u64),
}

impl Checker {
    fn one(&mut self, input: &str, at: Position, out: &mut Output<'_>) -> Result<(), StreamError> {
        self.counts.checked += 1;
        if self.counts.checked % 10_000 == 0 {
            self.report();
        }
        let purpose: Purpose = self.purpose.into();
        let ledger: &Ledger = &self.state.ledger;
        let checked = query::check_one(ledger, &self.profile, &self.tenant, input, purpose)?;
        let contact = match &checked {
            Checked::Allowed(c) | Checked::Excluded { contact: c, .. } => Some(c),
            Checked::Invalid { .. } => None,
        };
        if let Some(c) = contact {
            let key = c.as_str()[1..].parse::<u64>().unwrap_or(u64::MAX);
            if !self.seen.insert(key) {
                self.counts.duplicates += 1;
                return out.duplicate(c.as_str(), &at);
            }
        }
        match checked {
            Checked::Allowed(c) => {
                self.counts.allowed += 1;
                out.allowed(c.as_str(), &at)
            }
            Checked::Excluded {
                contact,
                reason,
                since,
            } => {
                self.counts.excluded += 1;
                out.excluded(contact.as_str(), reason, since, &at)
            }
            Checked::Invalid { input, reason } => {
                self.counts.invalid += 1;
                out.invalid(&input, &reason, &at)
            }
        }
    }

    fn report(&mut self) {
        let new = self.counts.checked - self.reported;
        self.state.metrics.contacts_checked.inc_by(new);
        self.reported = self.counts.checked;
    }

    /// Lines of an NDJSON (or plain text) body. A body that ends early (too large, client
    /// gone) ends the answer with an `error` line, after the answers already given.
    fn ndjson(&mut self, mut input: impl BufRead, out: &mut Output<'_>) -> Result<(), StreamError> {
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => {
                    let detail = if is_too_large(&e) {
                        format!(
                            "the request body is over the {}-byte limit (api.max_body_bytes); \
                             the lines above were answered, the rest was not read",
                            self.state.settings.api_max_body_bytes()
                        )
                    } else {
                        format!("the request body could not be read to its end: {e}")
                    };
                    return out.error(&detail);
                }
            }
            number += 1;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            match ndjson_item(text) {
                Ok(contact) => self.one(&contact, Position::Line(number), out)?,
                Err(reason) => {
                    self.counts.checked += 1;
                    self.counts.invalid += 1;
                    out.invalid(text, &reason, &Position::Line(number))?;
                }
            }
        }
    }
}

/// The contact on one NDJSON line: a JSON string, `{"contact": ...}`, or the bare text.
fn ndjson_item(text: &str) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Line {
        contact: String,
    }
    match text.as_bytes()[0] {
        b'"' => serde_json::from_str::<String>(text).map_err(|e| format!("invalid JSON: {e}")),
        b'{' => serde_json::from_str::<Line>(text)
            .map(|l| l.contact)
            .map_err(|e| format!("invalid JSON: {e}")),
        _ => Ok(text.to_string()),
    }
}

/// Writes answers in the requested format.
struct Output<'w> {
    w: &'w mut ChunkWriter,
    ndjson: bool,
    /// JSON only: items written to `allowed` so far (for commas), and the serialized
    /// excluded and invalid entries, which come after `allowed`.
    allowed_written: u64,
    excluded: Vec<u8>,
    invalid: Vec<u8>,
}

impl<'w> Output<'w> {
    fn new(ndjson: bool, purpose: PurposeParam, w: &'w mut ChunkWriter) -> std::io::Result<Self> {
        if !ndjson {
            write!(
                w,
                "{{\"purpose\":{},\"allowed\":[",
                serde_json::to_string(&purpose).expect("enum")
            )?;
        }
        Ok(Output {
            w,
            ndjson,
            allowed_written: 0,
            excluded: Vec::new(),
            invalid: Vec::new(),
        })
    }

    fn line(&mut self, line: &CheckLine) -> Result<(), StreamError> {
        serde_json::to_writer(&mut *self.w, line).map_err(std::io::Error::from)?;
        self.w.write_all(b"\n")?;
        Ok(())
    }

    fn ndjson_line(outcome: &str, at: &Position) -> CheckLine {
        CheckLine {
            outcome: outcome.to_string(),
            line: match at {
                Position::Line(n) => Some(*n),
                Position::Index(i) => Some(i + 1),
            },
            contact: None,
            input: None,
            reason: None,
            since: None,
            detail: None,
            counts: None,
        }
    }

    fn allowed(&mut self, contact: &str, at: &Position) -> Result<(), StreamError> {
        if self.ndjson {
            let mut l = Self::ndjson_line("allowed", at);
            l.contact = Some(contact.to_string());
            return self.line(&l);
        }
        if self.allowed_written > 0 {
            self.w.write_all(b",")?;
        }
        self.allowed_written += 1;
        serde_json::to_writer(&mut *self.w, contact).map_err(std::io::Error::from)?;
        Ok(())
    }

    fn excluded(
        &mut self,
        contact: &str,
        reason: &str,
        since: Option<DateTime<Utc>>,
        at: &Position,
    ) -> Result<(), StreamError> {
        if self.ndjson {
            let mut l = Self::ndjson_line("excluded", at);
            l.contact = Some(contact.to_string());
            l.reason = Some(reason.to_string());
            l.since = since;
            return self.line(&l);
        }
        let entry = Excluded {
            contact: contact.to_string(),
            reason: reason.to_string(),
            since,
        };
        append_json(&mut self.excluded, &entry);
        Ok(())
    }

    fn invalid(&mut self, input: &str, reason: &str, at: &Position) -> Result<(), StreamError> {
        if self.ndjson {
            let mut l = Self::ndjson_line("invalid", at);
            l.input = Some(input.to_string());
            l.reason = Some(reason.to_string());
            return self.line(&l);
        }
        let (index, line) = match at {
            Position::Index(i) => (Some(*i), None),
            Position::Line(n) => (None, Some(*n)),
        };
        let entry = Invalid {
            index,
            line,
            input: input.to_string(),
            reason: reason.to_string(),
        };
        append_json(&mut self.invalid, &entry);
        Ok(())
    }

    fn duplicate(&mut self, contact: &str, at: &Position) -> Result<(), StreamError> {
        if self.ndjson {
            let mut l = Self::ndjson_line("duplicate", at);
            l.contact = Some(contact.to_string());
            return self.line(&l);
        }
        Ok(())
    }

    fn error(&mut self, detail: &str) -> Result<(), StreamError> {
        if self.ndjson {
            let mut l = Self::ndjson_line("error", &Position::Index(0));
            l.line = None;
            l.detail = Some(detail.to_string());
            return self.line(&l);
        }
        // A JSON answer has no place for an in-band error: cut the transfer short instead.
        Err(std::io::Error::other(detail.to_string()).into())
    }

    fn finish(mut self, counts: Counts) -> Result<(), StreamError> {
        if self.ndjson {
            let mut l = Self::ndjson_line("summary", &Position::Index(0));
            l.line = None;
            l.counts = Some(counts);
            return self.line(&l);
        }
        self.w.write_all(b"],\"excluded\":[")?;
        self.w.write_all(&std::mem::take(&mut self.excluded))?;
        self.w.write_all(b"],\"invalid\":[")?;
        self.w.write_all(&std::mem::take(&mut self.invalid))?;
        self.w.write_all(b"],\"counts\":")?;
        serde_json::to_writer(&mut *self.w, &counts).map_err(std::io::Error::from)?;
        self.w.write_all(b"}")?;
        Ok(())
    }
}

fn append_json<T: Serialize>(buf: &mut Vec<u8>, value: &T) {
    if !buf.is_empty() {
        buf.push(b',');
    }
    serde_json::to_writer(&mut *buf, value).expect("writing to a Vec cannot fail");
}

/// One item of `contacts`, borrowed from the body when it needs no unescaping.
enum Item<'de> {
    Text(std::borrow::Cow<'de, str>),
    /// Not a string or a number: reported as invalid with this description.
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a phone number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Item<'de>, E> {
                Ok(Item::Text(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Item<'de>, E> {
                Ok(Item::Text(v.to_string().into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item<'de>, E> {
                Ok(Item::Text(v.to_string().into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Item<'de>, E> {
                Ok(Item::Text(v.to_string().into()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Item<'de>, E> {
                Ok(Item::Other("a fractional number"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Item<'de>, E> {
                Ok(Item::Other("a boolean"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Item<'de>, E> {
                Ok(Item::Other("null"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Item::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

/// `contacts` in the validation pass: checks every item's shape, keeps only the count.
#[derive(Debug, Default)]
pub struct Counted(pub u64);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Counted;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of phone numbers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Counted, A::Error> {
                let mut n = 0;
                while seq.next_element::<Item<'de>>()?.is_some() {
                    n += 1;
                }
                Ok(Counted(n))
            }
        }
        d.deserialize_seq(V)
    }
}

/// The second pass over a validated body: answers each contact as it is reached.
struct EnvelopeWalk<'a, 'w> {
    checker: &'a mut Checker,
    out: &'a mut Output<'w>,
}

impl<'de> Visitor<'de> for EnvelopeWalk<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a check request")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "contacts" {
                map.next_value_seed(ContactsWalk {
                    checker: &mut *self.checker,
                    out: &mut *self.out,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct ContactsWalk<'a, 'w> {
    checker: &'a mut Checker,
    out: &'a mut Output<'w>,
}

impl<'de> DeserializeSeed<'de> for ContactsWalk<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ContactsWalk<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of phone numbers")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0u64;
        while let Some(item) = seq.next_element::<Item<'de>>()? {
            let at = Position::Index(index);
            let done = match item {
                Item::Text(text) => self.checker.one(&text, at, self.out),
                Item::Other(what) => {
                    self.checker.counts.checked += 1;
                    self.checker.counts.invalid += 1;
                    let reason = format!("expected a phone number as a string, got {what}");
                    self.out.invalid(what, &reason, &at)
                }
            };
            if let Err(e) = done {
                // serde errors carry only a message: the real one waits in the checker.
                self.checker.failure = Some(e);
                return Err(de::Error::custom("stopped"));
            }
            index += 1;
        }
        Ok(())
    }
}
