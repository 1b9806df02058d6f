//! An NDJSON (or plain text) check request: one contact per line, answered as each line is
//! read, so the body is never held whole.

use std::io::BufRead;

use serde::Deserialize;

use super::super::server::is_body_timeout;
use super::super::stream::{is_too_large, StreamError};
use super::answer::{Answer, Position};
use super::Checker;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// How the body ended.
pub enum Read {
    /// Every line was read and answered: the summary may follow.
    Whole,
    /// The body stopped early (over `limit` bytes, too slow, client gone), and why: the
    /// answer ends with this as its `error` line, never with a summary that would make it
    /// look complete.
    CutShort(String),
}

/// Answers every line of `input`, and says whether the body was read whole.
pub fn check_lines(
    checker: &mut Checker<'_>,
    mut input: impl BufRead,
    limit: usize,
    out: &mut Answer<'_>,
) -> Result<Read, StreamError> {
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(Read::Whole),
            Ok(_) => {}
            Err(e) => {
                let detail = if is_too_large(&e) {
                    format!(
                        "the request body is over the {limit}-byte limit (api.max_body_bytes); \
                         the lines above were answered, the rest was not read"
                    )
                } else if is_body_timeout(&e) {
                    "the request body did not arrive whole in time (api.body_timeout_secs); \
                     the lines above were answered, the rest was not read"
                        .to_string()
                } else {
                    format!("the request body could not be read to its end: {e}")
                };
                return Ok(Read::CutShort(detail));
            }
        }
        number += 1;
        // Excel and Notepad start a UTF-8 file with a byte order mark; CSV imports skip it too.
        let bytes = match line.strip_prefix(UTF8_BOM) {
            Some(rest) if number == 1 => rest,
            _ => &line[..],
        };
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let at = Position::Line(number);
        match item(text) {
            Ok(contact) => checker.one(&contact, at, out)?,
            Err(e) => checker.not_a_contact(text, &e.to_string(), at, out)?,
        }
    }
}

/// A line that starts like JSON but is not the JSON of a contact.
#[derive(Debug, thiserror::Error)]
#[error("invalid JSON: {0}")]
pub(super) struct InvalidLine(#[from] serde_json::Error);

/// The contact on one line: a JSON string, `{"contact": ...}`, or the bare text.
pub(super) fn item(text: &str) -> Result<String, InvalidLine> {
    #[derive(Deserialize)]
    struct Line {
        contact: String,
    }
    Ok(match text.as_bytes()[0] {
        b'"' => serde_json::from_str::<String>(text)?,
        b'{' => serde_json::from_str::<Line>(text)?.contact,
        _ => text.to_string(),
    })
}
