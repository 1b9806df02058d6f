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
    input: impl BufRead,
    limit: usize,
    out: &mut Answer<'_>,
) -> Result<Read, StreamError> {
    for line in Lines::new(input, limit) {
        match line {
            Line::Item {
                number,
                text,
                contact,
            } => {
                let at = Position::Line(number);
                match contact {
                    Ok(contact) => checker.one(&contact, at, out)?,
                    Err(e) => checker.not_a_contact(&text, &e.to_string(), at, out)?,
                }
            }
            Line::CutShort(detail) => return Ok(Read::CutShort(detail)),
        }
    }
    Ok(Read::Whole)
}

/// One line of a body, as read.
#[derive(Debug)]
pub enum Line {
    /// A line with something on it: its number (from 1), its text trimmed, and the contact
    /// it names or why it names none.
    Item {
        number: u64,
        text: String,
        contact: Result<String, InvalidLine>,
    },
    /// The body stopped early, and why; always the last line.
    CutShort(String),
}

/// The lines of a body, read one at a time so that it is never held whole. Pure apart from
/// the reader, so that the fuzz target `check_ndjson` reads bodies as the handler does.
pub struct Lines<R> {
    input: R,
    /// `api.max_body_bytes`, for the message of a body cut short by it.
    limit: usize,
    number: u64,
    buf: Vec<u8>,
    ended: bool,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R, limit: usize) -> Self {
        Lines {
            input,
            limit,
            number: 0,
            buf: Vec::new(),
            ended: false,
        }
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        while !self.ended {
            self.buf.clear();
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => self.ended = true,
                Ok(_) => {
                    self.number += 1;
                    // Excel and Notepad start a UTF-8 file with a byte order mark; CSV imports
                    // skip it too.
                    let bytes = match self.buf.strip_prefix(UTF8_BOM) {
                        Some(rest) if self.number == 1 => rest,
                        _ => &self.buf[..],
                    };
                    let text = String::from_utf8_lossy(bytes);
                    let text = text.trim();
                    if text.is_empty() {
                        continue;
                    }
                    return Some(Line::Item {
                        number: self.number,
                        text: text.to_string(),
                        contact: item(text),
                    });
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Line::CutShort(cut_short(&e, self.limit)));
                }
            }
        }
        None
    }
}

/// Why a body stopped early, for the answer's last line.
fn cut_short(e: &std::io::Error, limit: usize) -> String {
    if is_too_large(e) {
        format!(
            "the request body is over the {limit}-byte limit (api.max_body_bytes); \
             the lines above were answered, the rest was not read"
        )
    } else if is_body_timeout(e) {
        "the request body did not arrive whole in time (api.body_timeout_secs); \
         the lines above were answered, the rest was not read"
            .to_string()
    } else {
        format!("the request body could not be read to its end: {e}")
    }
}

/// A line that starts like JSON but is not the JSON of a contact.
#[derive(Debug, thiserror::Error)]
#[error("invalid JSON: {0}")]
pub struct InvalidLine(#[from] serde_json::Error);

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
